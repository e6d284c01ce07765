# The real Python client's polling loop, with nothing but the standard library (urllib), run by
# cred-server.test.ts against a real cred-server: sign in as a thermostat subscribed to Light and
# as a switch, post events, and poll subscribedevents as the client does: first
# `?full=true&limit=1`, then `?full=true&after=<the newest id of the last answer>` until an
# answer is empty, the switch posting more between polls. Prints what it posted and every page.
#
#   python3 poll-like-the-client.py <server origin> <API key with write permission>
import json
import sys
import urllib.request

base, apikey = sys.argv[1], sys.argv[2]


def call(method, path, body=None, session=None):
    headers = {'Content-Type': 'application/json'}
    if session is not None:
        headers['Authorization'] = 'Bearer ' + session
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(request) as response:
        return json.load(response)


thermostat = call('POST', '/auth', {'apikey': apikey, 'device': 'Thermostat', 'subscribe': {'Light': {}}})
switch = call('POST', '/auth', {'apikey': apikey, 'device': 'Switch'})


def post(name, count):
    return [call('POST', '/events', {'event': {'name': name, 'value': i}}, switch['sessionKey'])['event']['id']
            for i in range(count)]


def poll(query):
    url = '/clients/%d/subscribedevents?full=true&%s' % (thermostat['id'], query)
    return [event['id'] for event in call('GET', url, session=thermostat['sessionKey'])['events']]


posted = post('Light', 1)
pages = [poll('limit=1')]
cursor = max(pages[0])
for _ in range(3):
    posted += post('Light', 4)
    post('Door', 2)
while True:
    page = poll('after=%d' % cursor)
    if not page:
        break
    pages.append(page)
    cursor = max(page)
    if len(pages) <= 3:
        posted += post('Light', 3)
print(json.dumps({'posted': posted, 'pages': pages}))
