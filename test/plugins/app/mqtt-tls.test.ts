import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { bearer, build, tempDir } from '../../helper.js'
import { mqttUnavailable, privateBroker, randomPrefix, sleep, subscribe, waitUntil } from '../../mqtt-helper.js'

if (mqttUnavailable !== null) t.plan(0, mqttUnavailable)

/** A CA, and a certificate it signed for 127.0.0.1, made with openssl in `dir`. */
function certificates (dir: string) {
  const file = (name: string) => join(dir, name)
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' })
  openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=cred test CA')
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1')
  writeFileSync(file('san.ext'), 'subjectAltName=IP:127.0.0.1\n')
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '1', '-extfile', 'san.ext')
  return { ca: file('ca.crt'), cert: file('server.crt'), key: file('server.key') }
}

t.test('mqtts:// with the broker\'s CA, a username and a password: the bridge connects and publishes; a wrong password is retried, HTTP stays ready', async (t) => {
  const dir = tempDir(t, 'cred-mqtt-tls-')
  const { ca, cert, key } = certificates(dir)
  const passwords = join(dir, 'passwords')
  execFileSync('mosquitto_passwd', ['-b', '-c', passwords, 'cred', 'right horse'], { stdio: 'pipe' })
  const broker = await privateBroker(t, undefined, {
    scheme: 'mqtts',
    // (as root, Mosquitto would otherwise become its own user, who cannot read the test's files)
    settings: ['user root', 'allow_anonymous false', `password_file ${passwords}`, `cafile ${ca}`, `certfile ${cert}`, `keyfile ${key}`]
  })
  const prefix = randomPrefix()
  const sub = await subscribe(t, broker.url, `${prefix}/events/#`, { ca: readFileSync(ca), username: 'cred', password: 'right horse' })

  const { app, session } = await build(t, { mqtt: { url: broker.url, ca, username: 'cred', password: 'right horse', topicPrefix: prefix } })
  await waitUntil('the bridge to connect over TLS', async () => (await app.inject({ url: '/health/ready' })).json().mqtt === 'connected')
  const { sessionKey } = await session('write', { device: 'Light Switch', location: 'Hall' })
  const posted = await app.inject({ method: 'POST', url: '/events', headers: bearer(sessionKey), payload: { event: { name: 'Light', location: 'Hall', value: 'On' } } })
  t.equal(posted.statusCode, 201)
  const [message] = await sub.received(1)
  t.equal(message?.topic, `${prefix}/events/Light/Hall`)
  t.match(JSON.parse(message!.payload), { id: posted.json().event.id, name: 'Light', value: 'On' })

  const wrong = await build(t, { mqtt: { url: broker.url, ca, username: 'cred', password: 'wrong horse', topicPrefix: randomPrefix() } })
  await sleep(1500)
  const ready = await wrong.app.inject({ url: '/health/ready' })
  t.equal(ready.statusCode, 200, 'a broker that refuses cred does not make the server unready')
  t.not(ready.json().mqtt, 'connected', 'the bridge is not connected with a wrong password')
  t.match(ready.json().message, /MQTT/i, 'and the body says why')
})
