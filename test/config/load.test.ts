import { mkdirSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { loadConfig, parseCredrc, searchPlaces } from '../../config/load.js'
import { ConfigError, resolveConfig } from '../../config/resolve.js'
import { tempDir } from '../process-helper.js'

// The two examples of the original server's README (../shared/seed/cred-server-README.txt),
// copied verbatim: flat, with `host` and `port` given twice.
const readmeSqlite = `SSL: False
approot: ''
host: '*'
port: 5000
scheduler: False
schedulerPeriod: 30
pingtimeout: 240
type: 'sqlite3'
user: ''
password: ''
host: ''
port: ''
database: 'cred-server.db'
`

const readmePostgres = `SSL: False
approot: ''
host: '*'
port: 5000
scheduler: False
schedulerPeriod: 30
pingtimeout: 240
type: 'postgresql'
user: 'scott'
password: 'tiger'
host: 'localhost'
port: '5432'
database: 'mydatabase'
`

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..')

interface Places {
  cwd: string
  home: string
  dataHome: string
  dataDirs: string[]
  env: NodeJS.ProcessEnv
}

/** Empty temp directories for the four search places, and an env pointing at them. */
function places (t: Test): Places {
  const root = tempDir(t, 'cred-config-')
  const dirs = {
    cwd: join(root, 'work'),
    home: join(root, 'home'),
    dataHome: join(root, 'data-home'),
    dataDirs: [join(root, 'data-dir-1'), join(root, 'data-dir-2')]
  }
  for (const dir of [dirs.cwd, dirs.home, dirs.dataHome, ...dirs.dataDirs]) mkdirSync(dir)
  return { ...dirs, env: { HOME: dirs.home, XDG_DATA_HOME: dirs.dataHome, XDG_DATA_DIRS: dirs.dataDirs.join(':') } }
}

function write (file: string, text: string): string {
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, text)
  return file
}

/** The ConfigError `fn` throws. */
function configError (t: Test, fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    t.ok(err instanceof ConfigError, `a ConfigError, got ${String(err)}`)
    t.notOk((err as Error).message.includes('\n'), 'one line')
    return err as ConfigError
  }
  t.fail('no error thrown')
  return new ConfigError('', null, 'none')
}

t.test('searchPlaces: the four places of API.md, in order', async (t) => {
  t.same(searchPlaces({ cwd: '/w', env: { HOME: '/h', XDG_DATA_HOME: '/xdg', XDG_DATA_DIRS: '/sys1:/sys2' }, platform: 'linux' }), [
    { dir: '/w', names: ['credrc', 'credrc.yaml', 'credrc.yml'] },
    { dir: '/h', names: ['.credrc'] },
    { dir: '/xdg/cred-server', names: ['credrc'] },
    { dir: '/sys1/cred-server', names: ['credrc'] }
  ])
  const defaults = searchPlaces({ cwd: '/w', env: { HOME: '/h' }, platform: 'linux' })
  t.equal(defaults[2]?.dir, '/h/.local/share/cred-server', 'XDG_DATA_HOME defaults to ~/.local/share')
  t.equal(defaults[3]?.dir, '/usr/local/share/cred-server', 'XDG_DATA_DIRS defaults to /usr/local/share')
  const empty = searchPlaces({ cwd: '/w', env: { HOME: '/h', XDG_DATA_HOME: '', XDG_DATA_DIRS: '' }, platform: 'linux' })
  t.equal(empty[2]?.dir, '/h/.local/share/cred-server', 'an empty XDG_DATA_HOME is unset')
  t.equal(empty[3]?.dir, '/usr/local/share/cred-server', 'an empty XDG_DATA_DIRS is unset')
  const mac = searchPlaces({ cwd: '/w', env: { HOME: '/Users/me', XDG_DATA_HOME: '/xdg' }, platform: 'darwin' })
  t.equal(mac[2]?.dir, '/Users/me/Library/Application Support/cred-server', 'macOS user app data directory')
})

t.test('the first place found wins, in the order of API.md', async (t) => {
  const p = places(t)
  const files = [
    join(p.cwd, 'credrc'),
    join(p.cwd, 'credrc.yaml'),
    join(p.cwd, 'credrc.yml'),
    join(p.home, '.credrc'),
    join(p.dataHome, 'cred-server', 'credrc'),
    join(p.dataDirs[0]!, 'cred-server', 'credrc')
  ]
  files.forEach((file, i) => write(file, `port: ${6001 + i}\n`))
  // only the FIRST entry of XDG_DATA_DIRS is searched
  write(join(p.dataDirs[1]!, 'cred-server', 'credrc'), 'port: 6999\n')
  for (const [i, file] of files.entries()) {
    const { config, file: found } = loadConfig(undefined, { cwd: p.cwd, env: p.env, platform: 'linux' })
    t.equal(found, file, `place ${i + 1} found`)
    t.equal(config.port, 6001 + i, `settings of ${file}`)
    writeFileSync(file, '# nothing but a comment\n')
    const empty = loadConfig(undefined, { cwd: p.cwd, env: p.env, platform: 'linux' })
    t.equal(empty.file, file, 'a file without settings is still the one found')
    t.equal(empty.config.port, 5000, '... and gives the defaults')
    writeFileSync(file, '')
    t.equal(loadConfig(undefined, { cwd: p.cwd, env: p.env, platform: 'linux' }).file, file, 'an empty file is found too')
    rmSync(file)
  }
  const none = loadConfig(undefined, { cwd: p.cwd, env: p.env, platform: 'linux' })
  t.equal(none.file, null, 'second XDG_DATA_DIRS entry is not searched: defaults')
  t.equal(none.config.port, 5000)
})

t.test('XDG_DATA_HOME unset: ~/.local/share/cred-server/credrc', async (t) => {
  const p = places(t)
  const file = write(join(p.home, '.local', 'share', 'cred-server', 'credrc'), 'port: 6101\n')
  write(join(p.dataDirs[0]!, 'cred-server', 'credrc'), 'port: 6102\n')
  const { XDG_DATA_HOME: _unset, ...env } = p.env
  const loaded = loadConfig(undefined, { cwd: p.cwd, env, platform: 'linux' })
  t.equal(loaded.file, file)
  t.equal(loaded.config.port, 6101)
})

t.test('macOS: ~/Library/Application Support/cred-server/credrc', async (t) => {
  const p = places(t)
  const mac = write(join(p.home, 'Library', 'Application Support', 'cred-server', 'credrc'), 'port: 6201\n')
  const xdg = write(join(p.dataHome, 'cred-server', 'credrc'), 'port: 6202\n')
  t.equal(loadConfig(undefined, { cwd: p.cwd, env: p.env, platform: 'darwin' }).file, mac)
  t.equal(loadConfig(undefined, { cwd: p.cwd, env: p.env, platform: 'linux' }).file, xdg)
})

t.test('no file anywhere: the built-in defaults', async (t) => {
  const p = places(t)
  const { config, file } = loadConfig(undefined, { cwd: p.cwd, env: p.env, platform: 'linux' })
  t.equal(file, null)
  t.match(config, {
    SSL: false,
    approot: '',
    host: '*',
    port: 5000,
    scheduler: false,
    schedulerPeriod: 30,
    pingtimeout: 240,
    database: { type: 'sqlite3', kind: 'sqlite', database: 'cred-server.db' }
  })
  t.notOk('url' in config.database)
})

t.test('the shipped credrc.yaml is the defaults, in the nested layout', async (t) => {
  const p = places(t)
  const sample = loadConfig(join(repoRoot, 'credrc.yaml'), { cwd: p.cwd, env: p.env })
  const defaults = loadConfig(undefined, { cwd: p.cwd, env: p.env })
  t.same(sample.config, defaults.config)
  t.equal(sample.file, join(repoRoot, 'credrc.yaml'))
})

t.test('--config PATH beats the search, relative to the working directory', async (t) => {
  const p = places(t)
  write(join(p.cwd, 'credrc'), 'port: 6301\n')
  write(join(p.home, '.credrc'), 'port: 6302\n')
  const file = write(join(p.cwd, 'conf', 'other.yaml'), 'port: 6303\n')
  const loaded = loadConfig('conf/other.yaml', { cwd: p.cwd, env: p.env })
  t.equal(loaded.file, file)
  t.equal(loaded.config.port, 6303)
  t.equal(loadConfig(file, { cwd: p.cwd, env: p.env }).config.port, 6303, 'an absolute path too')
})

t.test('the nested layout', async (t) => {
  const p = places(t)
  const file = write(join(p.cwd, 'credrc.yml'), `
SSL: False
approot: 'cred'
host: '127.0.0.1'
port: 8080
scheduler: True
schedulerPeriod: 10
pingtimeout: 60
database:
  type: 'postgresql+psycopg2'
  user: 'scott'
  password: 'tiger'
  host: 'db.example'
  port: 5433
  database: 'creddb'
  poolSize: 4
`)
  const { config, file: found } = loadConfig(undefined, { cwd: p.cwd, env: p.env })
  t.equal(found, file)
  t.match(config, {
    approot: '/cred',
    host: '127.0.0.1',
    port: 8080,
    scheduler: true,
    schedulerPeriod: 10,
    pingtimeout: 60,
    database: { type: 'postgresql+psycopg2', kind: 'postgresql', user: 'scott', password: 'tiger', host: 'db.example', port: 5433, database: 'creddb', poolSize: 4 }
  })
  t.equal(config.database.host, 'db.example', 'the server host and the database host are apart')
})

t.test("the original README's flat layout, verbatim", async (t) => {
  const p = places(t)
  write(join(p.cwd, 'credrc'), readmeSqlite)
  const { config } = loadConfig(undefined, { cwd: p.cwd, env: p.env })
  t.equal(config.host, '*', 'the first host is the server host')
  t.equal(config.port, 5000, 'the first port is the server port')
  t.equal(config.database.type, 'sqlite3')
  t.equal(config.database.kind, 'sqlite')
  t.equal(config.database.database, 'cred-server.db')
  t.equal(config.database.host, '', 'the host after type: is the database host')
  t.equal(config.database.port, '', 'the port after type: is the database port')
  t.same(config, loadConfig(undefined, { cwd: places(t).cwd, env: p.env }).config, 'same as the defaults')

  const pg = parseCredrc(readmePostgres, 'README')
  t.same(pg, {
    SSL: false,
    approot: '',
    host: '*',
    port: 5000,
    scheduler: false,
    schedulerPeriod: 30,
    pingtimeout: 240,
    database: { type: 'postgresql', user: 'scott', password: 'tiger', host: 'localhost', port: '5432', database: 'mydatabase' }
  })
  const resolved = resolveConfig(pg, 'README')
  t.match(resolved, { host: '*', port: 5000, database: { kind: 'postgresql', host: 'localhost', port: '5432', user: 'scott' } })
})

t.test('MariaDB / MySQL: every type name, nested and flat', async (t) => {
  for (const type of ['mysql', 'mariadb', 'mysql+pymysql', 'mysql+mysqldb', 'mysql+mysqlconnector', 'MySQL']) {
    const nested = resolveConfig(parseCredrc(`database:\n  type: '${type}'\n  user: cred\n  host: db.example\n  port: 3306\n  database: credevents\n`, 'rc'), 'rc')
    t.match(nested.database, { type, kind: 'mysql', user: 'cred', host: 'db.example', port: 3306, database: 'credevents', pollInterval: 100 }, `nested ${type}`)
    const flat = resolveConfig(parseCredrc(`host: '*'\nport: 5000\ntype: '${type}'\nuser: cred\npassword: pw\nhost: db.example\nport: '3306'\ndatabase: credevents\npollInterval: 50\n`, 'rc'), 'rc')
    t.match(flat, { host: '*', port: 5000, database: { kind: 'mysql', user: 'cred', password: 'pw', host: 'db.example', port: '3306', database: 'credevents', pollInterval: 50 } }, `flat ${type}`)
  }
})

t.test('parseCredrc: a key given twice, or both layouts at once, is an error', async (t) => {
  const twice = configError(t, () => parseCredrc('port: 1\nport: 2\n', 'rc'))
  t.equal(twice.key, 'port')
  const both = configError(t, () => parseCredrc("type: 'sqlite3'\ndatabase:\n  database: x.db\n", 'rc'))
  t.equal(both.key, 'database')
  t.same(parseCredrc('', 'rc'), {}, 'an empty file is no settings')
  t.same(parseCredrc('# only a comment\n', 'rc'), {})
})

t.test('DATABASE_URL overrides the database section', async (t) => {
  const p = places(t)
  write(join(p.cwd, 'credrc'), "port: 7000\ndatabase:\n  type: 'sqlite3'\n  database: 'file.db'\n")
  const pg = loadConfig(undefined, { cwd: p.cwd, env: { ...p.env, DATABASE_URL: 'postgres://scott:t%40ger@db.example:5433/creddb' } })
  t.equal(pg.config.port, 7000, 'the rest of the file still applies')
  t.match(pg.config.database, {
    kind: 'postgresql',
    user: 'scott',
    password: 't@ger',
    host: 'db.example',
    port: '5433',
    database: 'creddb',
    url: 'postgres://scott:t%40ger@db.example:5433/creddb'
  })
  const sqlite = loadConfig(undefined, { cwd: p.cwd, env: { ...p.env, DATABASE_URL: 'sqlite:///var/lib/cred/cred.db' } })
  t.match(sqlite.config.database, { kind: 'sqlite', database: '/var/lib/cred/cred.db' })
  const unset = loadConfig(undefined, { cwd: p.cwd, env: { ...p.env, DATABASE_URL: '' } })
  t.equal(unset.config.database.database, 'file.db', 'an empty DATABASE_URL is unset')

  const bad = configError(t, () => loadConfig(undefined, { cwd: p.cwd, env: { ...p.env, DATABASE_URL: 'not a url' } }))
  t.equal(bad.key, 'DATABASE_URL')
  const unknown = configError(t, () => loadConfig(undefined, { cwd: p.cwd, env: { ...p.env, DATABASE_URL: 'mssql://u:p@h/db' } }))
  t.equal(unknown.key, 'DATABASE_URL', 'an unknown type in DATABASE_URL is blamed on DATABASE_URL, not on the file')
  t.match(unknown.message, /'mssql'.*mysql:\/\//)
  for (const scheme of ['mysql', 'mariadb']) {
    const url = `${scheme}://cred:s%2Fcret@db.example:3307/credevents`
    const my = loadConfig(undefined, { cwd: p.cwd, env: { ...p.env, DATABASE_URL: url } })
    t.match(my.config.database, {
      kind: 'mysql', type: scheme, user: 'cred', password: 's/cret', host: 'db.example', port: '3307', database: 'credevents', url
    }, `DATABASE_URL=${scheme}://`)
  }
})

t.test('a bad config is a ConfigError: one line naming the file and the key', async (t) => {
  const cases: Array<[string, string, string | null, RegExp]> = [
    ['unknown key', 'port: 5000\nprot: 5001\n', 'prot', /unknown setting/],
    ['unknown database key', 'database:\n  type: sqlite3\n  name: x.db\n', 'database.name', /unknown setting/],
    ['port not a number', "port: 'abc'\n", 'port', /integer.*"abc"/],
    ['port out of range', 'port: 70000\n', 'port', /65535/],
    ['scheduler not a boolean', "scheduler: 'yes'\n", 'scheduler', /boolean.*"yes"/],
    ['database port a list', 'database:\n  port: [1]\n', 'database.port', /string or integer, got a list/],
    ['logLevel not a level', 'logLevel: verbose\n', 'logLevel', /one of fatal, error, warn, info, debug, trace, silent/],
    ['database section a list', 'database:\n  - a\n', 'database', /mapping/],
    ['empty database section', 'port: 5000\ndatabase:\n', 'database', /mapping/],
    ['unknown database type', "database:\n  type: 'oracle'\n", 'database.type', /unknown database type 'oracle' \(use 'sqlite3', 'postgresql' or 'mysql'\)/],
    ['unknown database type, flat', "type: 'oracle'\nuser: ''\n", 'database.type', /unknown database type 'oracle'/],
    ['PostgreSQL without a database name', 'database:\n  type: postgresql\n  host: localhost\n', 'database.database', /name the PostgreSQL database/],
    ['MariaDB without a database name', 'database:\n  type: mariadb\n  host: localhost\n', 'database.database', /name the MariaDB \/ MySQL database/],
    ['pollInterval too short', 'database:\n  pollInterval: 1\n', 'database.pollInterval', /greater or equal to 10, got number 1/],
    ['broken YAML', "port: 5000\nhost: '*\n", 'host', /unreadable YAML at line \d+/],
    ['broken YAML, flow', 'port: [1,\n', 'port', /unreadable YAML at line \d+/],
    ['not a mapping', '- port\n- 5000\n', null, /mapping/],
    ['SSL True without sslcert', 'SSL: True\nsslkey: key.pem\n', 'sslcert', /certificate/],
    ['SSL True without sslkey', 'SSL: True\nsslcert: cert.pem\n', 'sslkey', /key file/],
    ['requestTimeout shorter than headersTimeout', 'headersTimeout: 20\nrequestTimeout: 15\n', 'requestTimeout', /at least headersTimeout \(20\), got 15/],
    ['headersTimeout zero', 'headersTimeout: 0\n', 'headersTimeout', /greater or equal to 1, got number 0/],
    ['cors origin with a path', "cors: ['https://ui.example/app']\n", 'cors', /'https:\/\/ui\.example\/app' is not an origin: write scheme:\/\/host\[:port\]/],
    ['cors origin with a trailing slash', "cors: ['https://ui.example/']\n", 'cors', /'https:\/\/ui\.example\/' is not an origin/],
    ['cors origin without a scheme', "cors: ['ui.example']\n", 'cors', /'ui\.example' is not an origin/],
    ['cors origin with another scheme', "cors: ['ftp://ui.example']\n", 'cors', /'ftp:\/\/ui\.example' is not an origin/],
    ['cors origin with a bad port', "cors: ['http://ui.example:99999']\n", 'cors', /is not an origin/],
    ["cors '*' inside a list", "cors: ['*']\n", 'cors', /write cors: '\*', not in a list/],
    ['cors not a list', "cors: 'https://ui.example'\n", 'cors', /Expected/],
    ['trustProxy not an address', "trustProxy: 'proxy.example'\n", 'trustProxy', /'proxy\.example' is not an IP address, a CIDR range/],
    ['trustProxy a bad entry after a comma', "trustProxy: '10.0.0.1, 10.0.0.0/33'\n", 'trustProxy', /'10\.0\.0\.0\/33' is not/],
    ['trustProxy a bad list entry', "trustProxy: ['loopback', '::1/129']\n", 'trustProxy', /'::1\/129' is not/],
    ['trustProxy a number of hops', 'trustProxy: 1\n', 'trustProxy', /number of proxy hops is not supported/],
    ['an unknown mqtt key', "mqtt:\n  url: 'mqtt://b'\n  qos: 2\n", 'mqtt.qos', /unknown setting/],
    ['mqtt not a mapping', "mqtt: 'mqtt://b'\n", 'mqtt', /expected a mapping, got string/],
    ['mqtt.url not an MQTT URL', "mqtt:\n  url: 'http://broker:1883'\n", 'mqtt.url', /'http:\/\/broker:1883' is not an MQTT broker's URL/],
    ['mqtt.url not a URL', "mqtt:\n  url: 'broker'\n", 'mqtt.url', /'broker' is not a URL/],
    ['mqtt.ca without mqtts', "mqtt:\n  url: 'mqtt://b'\n  ca: 'ca.pem'\n", 'mqtt.ca', /only used with an mqtts:\/\/ url/],
    ['mqtt.topicPrefix with a wildcard', "mqtt:\n  topicPrefix: 'home/#'\n", 'mqtt.topicPrefix', /'home\/#' must be topic levels/],
    ['mqtt.topicPrefix with an empty level', "mqtt:\n  topicPrefix: 'home/'\n", 'mqtt.topicPrefix', /must be topic levels/],
    ['mqtt.publicUrl with a path', "mqtt:\n  publicUrl: 'http://cred/x'\n", 'mqtt.publicUrl', /is not scheme:\/\/host\[:port\]/]
  ]
  for (const [name, text, key, detail] of cases) {
    t.test(name, async (t) => {
      const p = places(t)
      const file = write(join(p.cwd, 'credrc'), text)
      const err = configError(t, () => loadConfig(undefined, { cwd: p.cwd, env: p.env }))
      t.equal(err.key, key)
      t.equal(err.source, file)
      t.ok(err.message.startsWith(`Invalid configuration in ${file}`), err.message)
      if (key !== null) t.ok(err.message.includes(`at key '${key}'`), err.message)
      t.match(err.message, detail)
    })
  }
})

t.test('cors: none by default; listed origins are kept as a browser writes them', async (t) => {
  t.same(resolveConfig({}, 'test').cors, [], 'no cross-origin access by default')
  t.same(resolveConfig({ cors: ['https://UI.example:443', 'http://ui.example:80', 'http://[::1]:8080', 'https://ui.example'] }, 'test').cors,
    ['https://ui.example', 'http://ui.example', 'http://[::1]:8080'])
  t.equal(resolveConfig({ cors: '*' }, 'test').cors, '*')
})

t.test('trustProxy: off by default; True, addresses, CIDR ranges and named ranges as Fastify reads them', async (t) => {
  t.equal(resolveConfig({}, 'test').trustProxy, false)
  for (const value of [true, '127.0.0.1', '10.0.0.1, 192.168.0.0/16', ['::1', 'fd00::/8', 'loopback', 'uniquelocal'], '']) {
    t.same(resolveConfig({ trustProxy: value }, 'test').trustProxy, value, JSON.stringify(value))
  }
})

t.test('a broken file found first stops the search', async (t) => {
  const p = places(t)
  const file = write(join(p.cwd, 'credrc'), 'port: [\n')
  write(join(p.home, '.credrc'), 'port: 6401\n')
  const err = configError(t, () => loadConfig(undefined, { cwd: p.cwd, env: p.env }))
  t.equal(err.source, file)
})

t.test('--config with a missing file', async (t) => {
  const p = places(t)
  write(join(p.cwd, 'credrc'), 'port: 6501\n')
  const err = configError(t, () => loadConfig('missing.yaml', { cwd: p.cwd, env: p.env }))
  t.equal(err.source, join(p.cwd, 'missing.yaml'))
  t.match(err.message, /file not found/)
  const dir = configError(t, () => loadConfig('.', { cwd: p.cwd, env: p.env }))
  t.match(dir.message, /cannot read/, 'a directory is no file either')
})

t.test('SSL True with both files set is valid (the files are read by cred-server)', async (t) => {
  const config = resolveConfig({ SSL: true, sslcert: 'cert.pem', sslkey: 'key.pem' }, 'test')
  t.match(config, { SSL: true, sslcert: 'cert.pem', sslkey: 'key.pem' })
})

t.test('approot is normalised to "" or "/path" without a trailing slash', async (t) => {
  const cases: Array<[string, string]> = [
    ['', ''],
    ['/', ''],
    ['  ', ''],
    ['cred', '/cred'],
    ['/cred', '/cred'],
    ['/cred/', '/cred'],
    ['cred/', '/cred'],
    [' /cred// ', '/cred'],
    ['//cred', '/cred'],
    ['api/cred', '/api/cred'],
    ['/api//cred/', '/api/cred']
  ]
  for (const [given, expected] of cases) {
    t.equal(resolveConfig({ approot: given }, 'test').approot, expected, JSON.stringify(given))
  }
  const p = places(t)
  write(join(p.cwd, 'credrc'), "approot: 'cred/'\n")
  t.equal(loadConfig(undefined, { cwd: p.cwd, env: p.env }).config.approot, '/cred', 'from a file too')
})
