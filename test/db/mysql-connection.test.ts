// Which MariaDB / MySQL errors mean "the database cannot serve now" (a 503, a one-line start
// error), without a server: errors as mysql2 builds them from the server's error packets.
import { constants, generateKeyPairSync, privateDecrypt, randomBytes } from 'node:crypto'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { resolveConfig } from '../../config/resolve.js'
import { DatabaseUnavailableError, openDatabase } from '../../db/index.js'
import { isUnavailable, openConnection, reason } from '../../db/mysql/connection.js'

/** An error as mysql2 makes it of a server's error packet: `code` is its name for `errno`, if it knows one. */
const serverError = (errno: number, code: string | undefined, message: string) => Object.assign(new Error(message), { errno, code, fatal: true })
const timeouts = { connectSeconds: 5, callMs: 12_000 }

t.test('errors of MySQL 8 and MariaDB that mean the server cannot serve now', async (t) => {
  t.ok(isUnavailable(serverError(1045, 'ER_ACCESS_DENIED_ERROR', "Access denied for user 'cred'@'10.0.0.11' (using password: YES)")), 'both: access denied')
  t.ok(isUnavailable(serverError(4031, 'ER_CLIENT_INTERACTION_TIMEOUT', 'The client was disconnected by the server because of inactivity.')),
    'MySQL 8: an idle connection closed after wait_timeout')
  t.ok(isUnavailable(serverError(3032, 'ER_SERVER_OFFLINE_MODE', 'The server is currently in offline mode')), 'MySQL 8: offline_mode')
  // mysql2 names MySQL's error numbers only
  t.ok(isUnavailable(serverError(1927, undefined, 'Connection was killed')), "MariaDB's ER_CONNECTION_KILLED, which mysql2 gives no code")
  t.ok(isUnavailable(new Error('Failed query', { cause: serverError(1927, undefined, 'Connection was killed') })), '... under drizzle\'s wrapper too')
  t.notOk(isUnavailable(serverError(1064, 'ER_PARSE_ERROR', 'You have an error in your SQL syntax')), 'a fault of the statement is not')
  t.notOk(isUnavailable(serverError(9999, undefined, 'an error neither server has')), 'nor an unknown number')
})

t.test('MySQL 8 asking for the RSA key over a connection without TLS: a 503, and a start error that says what to do', async (t) => {
  // mysql2 refuses to fetch the key that caching_sha2_password's full authentication needs
  const refused = Object.assign(new Error("Server requested authentication using caching_sha2_password, which needs the server's RSA public key. ..."),
    { code: 'PUBLIC_KEY_RETRIEVAL_NOT_ALLOWED', fatal: true })
  t.ok(isUnavailable(refused))
  const why = reason(refused, timeouts)
  t.match(why, /caching_sha2_password/)
  t.match(why, /database\.serverPublicKey/)
  t.match(why, /\(PUBLIC_KEY_RETRIEVAL_NOT_ALLOWED\)$/)
  t.notMatch(why, /\n/, 'one line')
})

/**
 * A server that speaks just enough of MySQL 8's protocol to ask for caching_sha2_password's full
 * authentication over plain TCP (the first login after a MySQL 8 server starts), then answers
 * every statement OK. `passwords` gets each password a client sent, decrypted with the key.
 */
async function sha2Server (t: Test) {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' }
  })
  const passwords: string[] = []
  const packet = (seq: number, payload: Buffer) => {
    const header = Buffer.alloc(4)
    header.writeUIntLE(payload.length, 0, 3)
    header[3] = seq
    return Buffer.concat([header, payload])
  }
  const ok = Buffer.from([0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00])
  // LONG_PASSWORD, FOUND_ROWS, LONG_FLAG, CONNECT_WITH_DB, PROTOCOL_41, TRANSACTIONS, SECURE_CONNECTION,
  // MULTI_STATEMENTS, MULTI_RESULTS, PLUGIN_AUTH, PLUGIN_AUTH_LENENC_CLIENT_DATA
  const capabilities = 0x1 | 0x2 | 0x4 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x10000 | 0x20000 | 0x80000 | 0x200000
  const server = createServer((socket) => {
    const scramble = randomBytes(20)
    const hello = Buffer.alloc(4)
    hello.writeUInt32LE(1)
    const flags = Buffer.alloc(9)
    flags.writeUInt16LE(capabilities & 0xffff, 0)
    flags[2] = 45 // utf8mb4_general_ci
    flags.writeUInt16LE(0x0002, 3) // autocommit
    flags.writeUInt16LE(capabilities >>> 16, 5)
    flags[7] = 21
    socket.write(packet(0, Buffer.concat([
      Buffer.from([0x0a]), Buffer.from('8.0.36\0'), hello, scramble.subarray(0, 8), Buffer.from([0]), flags.subarray(0, 8),
      Buffer.alloc(10), scramble.subarray(8), Buffer.from([0]), Buffer.from('caching_sha2_password\0')
    ])))
    let state: 'response' | 'password' | 'commands' = 'response'
    let buffered = Buffer.alloc(0)
    socket.on('data', (data) => {
      buffered = Buffer.concat([buffered, data])
      while (buffered.length >= 4 && buffered.length >= 4 + buffered.readUIntLE(0, 3)) {
        const length = buffered.readUIntLE(0, 3)
        const seq = buffered[3]!
        const payload = buffered.subarray(4, 4 + length)
        buffered = buffered.subarray(4 + length)
        if (state === 'response') {
          // the client's token is not checked: the server "has not seen" this user since it started
          socket.write(packet(seq + 1, Buffer.from([0x01, 0x04])))
          state = 'password'
        } else if (state === 'password') {
          const xored = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha1' }, payload)
          const plain = Buffer.from(xored.map((byte, i) => byte ^ scramble[i % scramble.length]!))
          passwords.push(plain.subarray(0, plain.indexOf(0)).toString('utf8'))
          socket.write(packet(seq + 1, ok))
          state = 'commands'
        } else if (payload[0] === 0x01) {
          socket.end() // COM_QUIT
        } else {
          socket.write(packet(seq + 1, ok))
        }
      }
    })
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  const port = (server.address() as AddressInfo).port
  const keyFile = join(t.testdir({ 'mysql-public-key.pem': publicKey }), 'mysql-public-key.pem')
  return { port, keyFile, passwords }
}

t.test('MySQL 8, a caching_sha2_password user over a connection without TLS: with database.serverPublicKey the password goes encrypted with it', async (t) => {
  const server = await sha2Server(t)
  const database = { type: 'mysql', host: '127.0.0.1', port: server.port, user: 'cred', password: 'change-me', database: 'cred' }

  const withKey = resolveConfig({ database: { ...database, serverPublicKey: server.keyFile } }, 'test').database
  const connection = await openConnection(withKey, timeouts)
  t.teardown(() => connection.destroy())
  t.same(server.passwords, ['change-me'], 'the server read the password with its private key')

  // without the key, mysql2 will not ask the server for it over plain TCP: the start fails, one line
  const error = await openDatabase(resolveConfig({ database }, 'test').database).then(() => null, (err: unknown) => err)
  t.ok(error instanceof DatabaseUnavailableError, `DatabaseUnavailableError, got ${String(error)}`)
  t.match((error as Error).message, new RegExp(`^cannot connect to MariaDB / MySQL at 127\\.0\\.0\\.1:${server.port} \\(database 'cred'\\): .*set database\\.serverPublicKey.*\\(PUBLIC_KEY_RETRIEVAL_NOT_ALLOWED\\)$`))
  t.same(server.passwords, ['change-me'], 'and no password was sent')
})

t.test('database.serverPublicKey: only with MySQL; a file that cannot be read stops the start with one line naming it', async (t) => {
  t.throws(() => resolveConfig({ database: { type: 'postgresql', database: 'cred', serverPublicKey: '/etc/key.pem' } }, 'test'),
    { message: /database\.serverPublicKey.*only used with MySQL/ })
  const error = await openDatabase(resolveConfig({ database: { type: 'mysql', host: '127.0.0.1', port: 1, database: 'cred', serverPublicKey: '/no/such/key.pem' } }, 'test').database)
    .then(() => null, (err: unknown) => err)
  t.ok(error instanceof DatabaseUnavailableError, `DatabaseUnavailableError, got ${String(error)}`)
  t.match((error as Error).message, /^cannot connect to MariaDB \/ MySQL at 127\.0\.0\.1:1 \(database 'cred'\): .*\/no\/such\/key\.pem/)
  t.notMatch((error as Error).message, /\n/, 'one line')
})
