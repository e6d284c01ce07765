// Which MariaDB / MySQL errors mean "the database cannot serve now" (a 503, a one-line start
// error), without a server: errors as mysql2 builds them from the server's error packets.
import t from 'tap'
import { isUnavailable, reason } from '../../db/mysql/connection.js'

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
  t.match(why, /docs\/mariadb\.md/)
  t.match(why, /\(PUBLIC_KEY_RETRIEVAL_NOT_ALLOWED\)$/)
  t.notMatch(why, /\n/, 'one line')
})
