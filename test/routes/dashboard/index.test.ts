import Fastify from 'fastify'
import t from 'tap'
import cred from '../../../app.js'
import { build, testDatabase } from '../../helper.js'

t.test('GET / serves the dashboard page with security headers; its files are under /dashboard/', async (t) => {
  const { app } = await build(t)
  const page = await app.inject({ url: '/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html; charset=utf-8/)
  t.match(page.body, /<script type="module" src="dashboard\/main\.js"><\/script>/, 'relative URLs: works under any prefix')
  t.notMatch(page.body, /https?:\/\//, 'nothing from another site: no CDN, no web fonts')
  const csp = page.headers['content-security-policy'] as string
  t.match(csp, /default-src 'self'/)
  t.match(csp, /script-src 'self'/)
  t.match(csp, /style-src 'self'(;|$)/, 'no inline styles')
  t.notMatch(csp, /upgrade-insecure-requests/)
  t.equal(page.headers['x-content-type-options'], 'nosniff')

  for (const [file, type] of [['main.js', /javascript/], ['styles.css', /text\/css/], ['icon.svg', /image\/svg\+xml/]] as const) {
    const res = await app.inject({ url: `/dashboard/${file}` })
    t.equal(res.statusCode, 200, file)
    t.match(res.headers['content-type'], type, `${file} content type`)
    t.match(res.headers['content-security-policy'], /default-src 'self'/, `${file} has the headers too`)
  }
  const missing = await app.inject({ url: '/dashboard/nope.js' })
  t.equal(missing.statusCode, 404)
  t.same(missing.json(), { status: 404, message: 'Not Found' })

  const api = await app.inject({ url: '/events' })
  t.equal(api.headers['content-security-policy'], undefined, 'the JSON API gets no helmet headers')
  t.equal(api.headers['x-frame-options'], undefined)

  const spec = (await app.inject({ url: '/documentation/json' })).json()
  t.notOk(spec.paths['/'], 'the page is not in the API document')
  t.notOk(Object.keys(spec.paths).some((path) => path.startsWith('/dashboard')), 'nor its files')
})

t.test('the page tells its scripts the largest list they may ask for (maxPageSize)', async (t) => {
  const { app } = await build(t, { maxPageSize: 7 })
  const page = await app.inject({ url: '/' })
  t.match(page.body, /<meta name="cred-max-page-size" content="7">/)
})

t.test('dashboard: False serves no page and no files', async (t) => {
  const { app } = await build(t, { dashboard: false })
  for (const url of ['/', '/dashboard/main.js']) {
    const res = await app.inject({ url })
    t.equal(res.statusCode, 404, url)
    t.same(res.json(), { status: 404, message: 'Not Found' })
  }
})

t.test('under approot, the page is at /approot/ and /approot redirects there', async (t) => {
  const { app } = await build(t, {}, { prefix: '/cred' })
  const page = await app.inject({ url: '/cred/' })
  t.equal(page.statusCode, 200)
  t.match(page.body, /dashboard\/main\.js/)
  t.equal((await app.inject({ url: '/cred/dashboard/main.js' })).statusCode, 200)
  const bare = await app.inject({ url: '/cred' })
  t.equal(bare.statusCode, 302, 'so that the relative URLs resolve under /cred/')
  t.equal(bare.headers.location, '/cred/')
  t.same(bare.json(), { status: 302, message: 'Found: the dashboard is at /cred/' }, 'in the envelope, like every other answer')
  const query = await app.inject({ url: '/cred?from=bookmark' })
  t.equal(query.headers.location, '/cred/?from=bookmark', 'the query is kept')
  t.equal((await app.inject({ url: '/' })).statusCode, 404, 'nothing outside the prefix')
})

t.test('embedded in a host app, the dashboard is off unless the host asks for it', async (t) => {
  const database = await testDatabase(t, 'sqlite')
  const host = async (config: Record<string, unknown>, prefix: string) => {
    const app = Fastify({ logger: false })
    app.get('/', async () => ({ hello: 'host' }))
    await app.register(cred, { prefix, config })
    await app.ready()
    t.teardown(() => app.close())
    return app
  }
  const off = await host({ database }, '')
  t.same((await off.inject({ url: '/' })).json(), { hello: 'host' }, 'the host keeps its own root page')
  t.equal((await off.inject({ url: '/dashboard/main.js' })).statusCode, 404)
  t.equal((await off.inject({ url: '/events' })).statusCode, 401, 'the rest of cred is there')

  const on = await host({ database, dashboard: true }, '/cred')
  const page = await on.inject({ url: '/cred/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.same((await on.inject({ url: '/' })).json(), { hello: 'host' })
})
