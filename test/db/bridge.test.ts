// What the MQTT bridge keeps in the database (its cursor, its devices' clients) and which
// process runs it, on every backend.
import t, { type Test } from 'tap'
import { resolveConfig } from '../../config/resolve.js'
import { openDatabase, type Repositories } from '../../db/index.js'
import { backends, forEachBackend, postgresAdmin, testDatabase, type Backend, type TestDatabase } from '../helper.js'

async function open (t: Test, database: TestDatabase): Promise<Repositories> {
  const repos = await openDatabase(resolveConfig({ database }, 'test').database)
  t.teardown(() => repos.close())
  return repos
}

const fresh = async (t: Test, backend: Backend) => open(t, await testDatabase(t, backend))

t.test('a bridge\'s state: none at first, then its cursor and API key as saved', async (t) => {
  forEachBackend(t, async (t, backend) => {
    const repos = await fresh(t, backend)
    t.equal(await repos.bridge.state('mqtt'), undefined)
    await repos.bridge.create('mqtt', { lastEventId: 7, apikeyId: null })
    t.same(await repos.bridge.state('mqtt'), { lastEventId: 7, apikeyId: null })
    const { id } = await repos.apikeys.create('write')
    await repos.bridge.saveApikey('mqtt', id)
    await repos.bridge.saveCursor('mqtt', 42)
    t.same(await repos.bridge.state('mqtt'), { lastEventId: 42, apikeyId: id })
    t.equal(await repos.bridge.state('other'), undefined, 'bridges are kept apart by name')
  })
})

t.test('a device\'s client: found by API key, device and location (none is its own location)', async (t) => {
  forEachBackend(t, async (t, backend) => {
    const repos = await fresh(t, backend)
    const { id: key } = await repos.apikeys.create('write')
    const { id: other } = await repos.apikeys.create('write')
    const make = async (apikeyId: number, device: string, location: string | null) =>
      (await repos.clients.create({ apikeyId, device, location, subscriptions: [] })).id
    const hall = await make(key, 'Lamp', 'Hall')
    const nowhere = await make(key, 'Lamp', null)
    await make(other, 'Lamp', 'Kitchen')
    t.equal(await repos.bridge.deviceClient(key, 'Lamp', 'Hall'), hall)
    t.equal(await repos.bridge.deviceClient(key, 'Lamp', null), nowhere)
    t.equal(await repos.bridge.deviceClient(key, 'Lamp', 'Kitchen'), undefined, 'another key\'s client is not the bridge\'s')
    t.equal(await repos.bridge.deviceClient(key, 'Switch', 'Hall'), undefined)
  })
})

t.test('leadership: one holder at a time; released, the next asker gets it', async (t) => {
  forEachBackend(t, async (t, backend) => {
    const database = await testDatabase(t, backend)
    const [a, b] = [await open(t, database), await open(t, database)]
    const lease = await a.bridge.lead('mqtt', () => {})
    t.ok(lease, 'the first asker leads')
    t.equal(await b.bridge.lead('mqtt', () => {}), undefined, 'another does not, while it is held')
    t.equal(await a.bridge.lead('mqtt', () => {}), undefined, 'not even the same process twice')
    const other = await b.bridge.lead('other', () => {})
    t.ok(other, 'roles are apart by name')
    await other?.release()
    await lease!.release()
    const next = await b.bridge.lead('mqtt', () => {})
    t.ok(next, 'released: the next asker leads')
    await next?.release()
  })
})

t.test('PostgreSQL: a lost lock connection is told, and frees the role', { skip: backends.includes('postgresql') ? false : 'PostgreSQL is not reachable' }, async (t) => {
  const database = await testDatabase(t, 'postgresql')
  const [a, b] = [await open(t, database), await open(t, database)]
  let lost = false
  const lease = await a.bridge.lead('mqtt', () => { lost = true })
  t.ok(lease)
  // what a dead process or a cut connection looks like to the server: the session ends
  await postgresAdmin((sql) => sql`select pg_terminate_backend(pid) from pg_stat_activity
    where datname = ${database.database} and query like '%pg_try_advisory_lock%'`)
  for (let i = 0; i < 100 && !lost; i++) await new Promise((resolve) => setTimeout(resolve, 50)) // eslint-disable-line no-unmodified-loop-condition
  t.ok(lost, 'onLost is called')
  const next = await b.bridge.lead('mqtt', () => {})
  t.ok(next, 'another process leads now')
  await next?.release()
})
