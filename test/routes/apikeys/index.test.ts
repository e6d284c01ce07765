import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import t from 'tap'
import { bearer, build, forEachBackend } from '../../helper.js'

forEachBackend(t, async (t, backend) => {
  t.test('admin creates keys; the secret appears only in the POST response and works at /auth', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const admin = await session('admin')
    for (const permission of ['read', 'write', 'admin']) {
      const res = await app.inject({ method: 'POST', url: '/apikeys', headers: bearer(admin.sessionKey), payload: { permission } })
      t.equal(res.statusCode, 201)
      const body = res.json()
      t.equal(body.status, 201)
      t.equal(body.message, 'Created API Key')
      t.match(body.apikey, { id: Number, permission, created: /^\d{4}-\d\d-\d\dT/, apikey: /^[A-Za-z0-9_-]{43}$/, uri: `http://localhost:80/apikeys/${body.apikey.id}` })
      const auth = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: body.apikey.apikey } })
      t.equal(auth.statusCode, 201, 'the new key authenticates')
      const got = await app.inject({ url: `/apikeys/${body.apikey.id}`, headers: bearer(admin.sessionKey) })
      t.same(got.json(), {
        status: 200,
        message: 'OK',
        apikey: { id: body.apikey.id, permission, created: body.apikey.created, revoked: null, uri: body.apikey.uri }
      }, 'GET never shows the secret')
    }
    const list = await app.inject({ url: '/apikeys?full=true', headers: bearer(admin.sessionKey) })
    t.equal(list.json().apikeys.length, 4)
    t.notOk(list.body.includes('"apikey":"'), 'no secret in the list')
    t.same(list.json().apikeys.map((k: { permission: string }) => k.permission), ['admin', 'write', 'read', 'admin'])
    const short = await app.inject({ url: '/apikeys?limit=1', headers: bearer(admin.sessionKey) })
    t.same(Object.keys(short.json().apikeys[0]).sort(), ['id', 'uri'])
  })

  t.test('a bad permission is 400 Invalid Permissions', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const admin = await session('admin')
    for (const permission of ['root', '', 'READ']) {
      const res = await app.inject({ method: 'POST', url: '/apikeys', headers: bearer(admin.sessionKey), payload: { permission } })
      t.equal(res.statusCode, 400)
      t.same(res.json(), { status: 400, message: 'Invalid Permissions' })
    }
    const missing = await app.inject({ method: 'POST', url: '/apikeys', headers: bearer(admin.sessionKey), payload: {} })
    t.equal(missing.statusCode, 400)
    t.match(missing.json().message, /permission/)
  })

  t.test('only admin may use /apikeys; unknown id is 404 API Key Not Found', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    for (const permission of ['read', 'write'] as const) {
      const { sessionKey } = await session(permission)
      for (const req of [{ url: '/apikeys' }, { url: '/apikeys/1' }, { method: 'POST' as const, url: '/apikeys', payload: { permission: 'read' } }]) {
        const res = await app.inject({ ...req, headers: bearer(sessionKey) })
        t.equal(res.statusCode, 403, `${permission} ${req.url}`)
        t.same(res.json(), { status: 403, message: 'Insufficient Permissions' })
      }
    }
    const admin = await session('admin')
    const missing = await app.inject({ url: '/apikeys/424242', headers: bearer(admin.sessionKey) })
    t.equal(missing.statusCode, 404)
    t.same(missing.json(), { status: 404, message: 'API Key Not Found' })
    for (const method of ['GET', 'DELETE'] as const) {
      const zero = await app.inject({ method, url: '/apikeys/0', headers: bearer(admin.sessionKey) })
      t.equal(zero.statusCode, 404, `${method} /apikeys/0`)
      t.same(zero.json(), { status: 404, message: 'API Key Not Found' })
      const hex = await app.inject({ method, url: '/apikeys/0x1', headers: bearer(admin.sessionKey) })
      t.equal(hex.statusCode, 400, `${method} /apikeys/0x1 is not key 1`)
    }
  })

  t.test('a key that is almost right is refused', async (t) => {
    const { app, key } = await build(t, {}, { backend })
    const apikey = await key('admin')
    for (const wrong of [apikey.slice(1), apikey.toUpperCase(), `${apikey} `]) {
      const res = await app.inject({ method: 'POST', url: '/auth', payload: { apikey: wrong } })
      t.equal(res.statusCode, 401)
    }
  })
})

t.test('keys and sessions are stored only as SHA-256 hashes', async (t) => {
  const { app, session, config } = await build(t)
  const admin = await session('admin')
  const created = (await app.inject({ method: 'POST', url: '/apikeys', headers: bearer(admin.sessionKey), payload: { permission: 'read' } })).json().apikey
  await app.close()
  const file = config.database.database
  const stored = [file, `${file}-wal`].filter(existsSync).map((f) => readFileSync(f).toString('latin1')).join('')
  t.ok(stored.includes(createHash('sha256').update(created.apikey).digest('hex')), 'the key\'s hash is stored')
  t.notOk(stored.includes(created.apikey), 'the key itself is not')
  t.ok(stored.includes(createHash('sha256').update(admin.sessionKey).digest('hex')), 'the session\'s hash is stored')
  t.notOk(stored.includes(admin.sessionKey), 'the session key itself is not')
})

forEachBackend(t, async (t, backend) => {
  t.test('DELETE /apikeys/:id revokes: /auth refuses the key, its sessions get 401 at once', async (t) => {
    const { app, session } = await build(t, {}, { backend })
    const admin = await session('admin')
    const created = (await app.inject({ method: 'POST', url: '/apikeys', headers: bearer(admin.sessionKey), payload: { permission: 'write' } })).json().apikey
    const device = (await app.inject({ method: 'POST', url: '/auth', payload: { apikey: created.apikey } })).json()
    t.equal((await app.inject({ url: '/clients/me', headers: bearer(device.sessionKey) })).statusCode, 200)

    const res = await app.inject({ method: 'DELETE', url: `/apikeys/${created.id}`, headers: bearer(admin.sessionKey) })
    t.equal(res.statusCode, 200)
    t.match(res.json(), { status: 200, message: 'Revoked API Key', apikey: { id: created.id, permission: 'write', revoked: /^\d{4}-.*Z$/ } })
    t.notOk(res.json().apikey.apikey, 'no secret')

    t.same((await app.inject({ url: '/clients/me', headers: bearer(device.sessionKey) })).json(), { status: 401, message: 'Not Authenticated' }, 'its session is refused')
    t.same((await app.inject({ method: 'POST', url: '/auth', payload: { apikey: created.apikey } })).json(), { status: 401, message: 'Invalid API Key' }, '/auth refuses the key')

    const shown = (await app.inject({ url: `/apikeys/${created.id}`, headers: bearer(admin.sessionKey) })).json().apikey
    t.equal(shown.revoked, res.json().apikey.revoked, 'the full form shows when')
    const fresh = (await app.inject({ url: '/apikeys?full=true', headers: bearer(admin.sessionKey) })).json().apikeys
    t.equal(fresh.find((k: { id: number }) => k.id !== created.id).revoked, null, 'unrevoked keys show null')

    const again = await app.inject({ method: 'DELETE', url: `/apikeys/${created.id}`, headers: bearer(admin.sessionKey) })
    t.equal(again.json().apikey.revoked, shown.revoked, 'revoking again changes nothing')
    const missing = await app.inject({ method: 'DELETE', url: '/apikeys/99999', headers: bearer(admin.sessionKey) })
    t.same(missing.json(), { status: 404, message: 'API Key Not Found' })
    const writer = await session('write')
    const refused = await app.inject({ method: 'DELETE', url: `/apikeys/${created.id}`, headers: bearer(writer.sessionKey) })
    t.equal(refused.statusCode, 403)
  })

  t.test('the last unrevoked admin key cannot be revoked', async (t) => {
    const { app, session, repos } = await build(t, {}, { backend })
    const admin = await session('admin')
    const keys = await repos.apikeys.list({})
    const adminKeyId = keys.find((k) => k.permission === 'admin')!.id
    const res = await app.inject({ method: 'DELETE', url: `/apikeys/${adminKeyId}`, headers: bearer(admin.sessionKey) })
    t.equal(res.statusCode, 400)
    t.match(res.json(), { status: 400, message: /last admin key/ })
    const second = await repos.apikeys.create('admin')
    const ok = await app.inject({ method: 'DELETE', url: `/apikeys/${adminKeyId}`, headers: bearer(admin.sessionKey) })
    t.equal(ok.statusCode, 200, 'with a second admin key it can')
    t.equal((await app.inject({ url: '/apikeys', headers: bearer(admin.sessionKey) })).statusCode, 401, 'and the admin\'s own session ended with it')
    const other = (await app.inject({ method: 'POST', url: '/auth', payload: { apikey: second.apikey } })).json()
    const last = await app.inject({ method: 'DELETE', url: `/apikeys/${second.id}`, headers: bearer(other.sessionKey) })
    t.equal(last.statusCode, 400, 'now that one is the last')
  })

  t.test('two admin keys revoked at once: one stays', async (t) => {
    const { repos } = await build(t, {}, { backend })
    const a = await repos.apikeys.create('admin')
    const b = await repos.apikeys.create('admin')
    const results = await Promise.all([repos.apikeys.revoke(a.id, Date.now()), repos.apikeys.revoke(b.id, Date.now())])
    t.same(results.map((r) => r.outcome).sort(), ['last-admin', 'revoked'])
  })
})
