import { Validator } from '@seriousme/openapi-schema-validator'
import t from 'tap'
import { build } from './helper.js'

const routes: Array<[string, string, string[]]> = [
  ['post', '/auth', ['201', '400', '401', '403', '413', '415', '429']],
  ['get', '/auth', ['201', '400', '401', '403', '429']],
  ['delete', '/auth', ['204', '401', '403']],
  ['get', '/events', ['200', '400', '401', '403', '429']],
  ['post', '/events', ['201', '400', '401', '403', '413', '415']],
  ['get', '/events/{id}', ['200', '400', '401', '403', '404']],
  ['get', '/events/stream', ['200', '400', '401', '403', '429']],
  ['get', '/clients/{id}/subscribedevents/stream', ['200', '400', '401', '403', '404', '429']],
  ['get', '/clients', ['200', '400', '401', '403']],
  ['get', '/clients/me', ['200', '401', '403']],
  ['get', '/clients/{id}', ['200', '400', '401', '403', '404']],
  ['get', '/clients/{id}/events', ['200', '400', '401', '403', '404', '429']],
  ['get', '/clients/{id}/subscribedevents', ['200', '400', '401', '403', '404', '429']],
  ['get', '/apikeys', ['200', '400', '401', '403']],
  ['post', '/apikeys', ['201', '400', '401', '403', '413', '415']],
  ['get', '/apikeys/{id}', ['200', '400', '401', '403', '404']],
  ['delete', '/apikeys/{id}', ['200', '400', '401', '403', '404']],
  ['get', '/health/live', ['200']],
  ['get', '/health/ready', ['200', '503']],
  ['get', '/metrics', ['200']]
]

t.test('GET /documentation/json is a valid OpenAPI 3.1 document of every route', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ url: '/documentation/json' })
  t.equal(res.statusCode, 200)
  const spec = res.json()
  t.match(spec.openapi, /^3\.1\./)

  const result = await new Validator().validate(spec)
  t.same(result.errors, undefined, 'no validation errors')
  t.equal(result.valid, true)

  t.same(Object.keys(spec.components.securitySchemes).sort(), ['bearerSession', 'cookieSession', 'metricsToken'])
  const documented = Object.entries(spec.paths as Record<string, Record<string, unknown>>)
    .flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method} ${path}`)).sort()
  t.same(documented, routes.map(([method, path]) => `${method} ${path}`).sort(), 'exactly the API\'s routes')

  for (const [method, path, statuses] of routes) {
    const op = spec.paths[path][method]
    t.ok(op.summary, `${method} ${path} has a summary`)
    t.equal(op.tags?.length, 1, `${method} ${path} has a tag`)
    t.same(Object.keys(op.responses).sort(), statuses.sort(), `${method} ${path} documents its statuses`)
    for (const status of statuses) {
      if (status === '204') continue
      const type = status !== '200' ? 'application/json' : path.endsWith('/stream') ? 'text/event-stream' : path === '/metrics' ? 'text/plain' : 'application/json'
      t.ok(op.responses[status].content[type].schema, `${method} ${path} ${status} has a ${type} schema`)
    }
    if ((path === '/auth' && method !== 'delete') || path.startsWith('/health/') || path === '/metrics') t.notOk(op.security, `${path} needs no session`)
    else t.same(op.security, [{ bearerSession: [] }, { cookieSession: [] }], `${method} ${path} names the session schemes`)
    if (path.includes('{id}')) {
      t.ok(op.parameters.some((p: { in: string, name: string, required: boolean }) => p.in === 'path' && p.name === 'id' && p.required), `${method} ${path} documents its id`)
    }
  }
  t.ok(spec.paths['/events'].post.requestBody.content['application/json'].schema.properties.event, 'request body documented')
  t.same(Object.keys(spec.paths['/auth'].post.requestBody.content).sort(), ['application/json', 'application/x-www-form-urlencoded'], 'POST /auth reads forms too')
  t.same(Object.keys(spec.paths['/events'].post.requestBody.content), ['application/json'], 'the other routes only JSON')
  for (const method of ['post', 'get', 'delete']) {
    t.match(spec.paths['/auth'][method].responses['403'].description, /another origin.*`cors` setting/, `${method} /auth documents its cross-origin refusal`)
  }
  t.same(spec.paths['/events'].get.parameters.map((p: { name: string }) => p.name), ['full', 'before', 'after', 'limit', 'offset', 'wait'])
  t.ok(spec.paths['/events/stream'].get.parameters.some((p: { in: string, name: string }) => p.in === 'header' && p.name === 'last-event-id'), 'Last-Event-ID documented')
  for (const [method, path] of [['delete', '/auth'], ['delete', '/apikeys/{id}']] as const) {
    t.match(spec.paths[path][method].description, /streams are closed and .*long polls answer 401/, `${method} ${path} says what happens to open streams and long polls`)
  }
  for (const path of ['/events', '/events/stream', '/clients/{id}/events', '/clients/{id}/subscribedevents', '/clients/{id}/subscribedevents/stream']) {
    const { responses } = spec.paths[path].get
    t.match(responses['401'].description, /session ends or its API key is revoked/, `GET ${path}: the 401 of an ended session`)
    t.match(responses['429'].description, /maxStreamsPerSession.*maxStreamsPerKey/, `GET ${path}: the 429 names both limits`)
  }
  const idempotencyKey = spec.paths['/events'].post.parameters.find((p: { in: string, name: string }) => p.in === 'header' && p.name === 'idempotency-key')
  t.match(idempotencyKey, { required: false, schema: { type: 'string', minLength: 1, maxLength: 255 }, description: /24 hours/ }, 'Idempotency-Key documented')
  t.match(spec.paths['/events'].post.responses['201'].headers['idempotent-replayed'], { description: /Idempotency-Key/ }, 'and the Idempotent-Replayed answer')
})

t.test('the list routes document their cap: limit at most maxPageSize (a 400 beyond), after= pages from the cursor', async (t) => {
  const { app } = await build(t, { maxPageSize: 50 })
  const spec = (await app.inject({ url: '/documentation/json' })).json()
  for (const path of ['/events', '/clients', '/clients/{id}/events', '/clients/{id}/subscribedevents', '/apikeys']) {
    const parameters = spec.paths[path].get.parameters as Array<{ name: string, description?: string, schema: Record<string, unknown> }>
    const limit = parameters.find((p) => p.name === 'limit')!
    t.equal(limit.schema.maximum, 50, `${path}: limit's maximum is maxPageSize`)
    t.match(limit.description, /at most 50 .*a larger limit is a 400/, `${path}: limit says a larger one is a 400`)
    t.match(parameters.find((p) => p.name === 'after')!.description, /Without `limit`, the page is the \(at most 50\) items right after it/, `${path}: after says where a page starts`)
  }
})

t.test('GET /documentation serves Swagger UI', async (t) => {
  const { app } = await build(t)
  const res = await app.inject({ url: '/documentation' })
  const page = res.statusCode === 302 ? await app.inject({ url: res.headers.location as string }) : res
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /swagger/i)
})

t.test('every JSON answer in the document has an example that is a real answer of its status', async (t) => {
  const { app } = await build(t, { metrics: true })
  const spec = (await app.inject({ url: '/documentation/json' })).json()
  let checked = 0
  for (const [path, operations] of Object.entries(spec.paths as Record<string, Record<string, { responses: Record<string, { content?: Record<string, { example?: { status?: unknown, message?: unknown } }> }> }>>)) {
    for (const [method, operation] of Object.entries(operations)) {
      for (const [code, response] of Object.entries(operation.responses)) {
        const json = response.content?.['application/json']
        if (json === undefined) continue
        t.equal(json.example?.status, Number(code), `${method} ${path} ${code}: the example's status`)
        t.type(json.example?.message, 'string', `${method} ${path} ${code}: and a message`)
        checked++
      }
    }
  }
  t.ok(checked > 80, `${checked} answers checked`)
  const notFound = (path: string) => spec.paths[path].get.responses['404'].content['application/json'].example.message
  t.same([notFound('/events/{id}'), notFound('/clients/{id}'), notFound('/apikeys/{id}')], ['Event Not Found', 'Client Not Found', 'API Key Not Found'], 'each 404 with its own message')
  t.equal(spec.paths['/events'].post.responses['201'].content['application/json'].example.message, 'Created Event')
})
