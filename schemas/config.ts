import { Type, type Static } from '@sinclair/typebox'

/** Settings of the `database:` section (or the flat layout's keys after `type:`). */
export const DatabaseSettings = Type.Object({
  type: Type.String({
    description: "'sqlite3' (default), 'postgresql' (also 'postgres', 'postgresql+psycopg2', ...) or 'mysql' (also 'mariadb', 'mysql+pymysql', ...)"
  }),
  user: Type.String(),
  password: Type.String(),
  host: Type.String(),
  port: Type.Union([Type.String(), Type.Integer({ minimum: 0, maximum: 65535 })]),
  database: Type.String({ description: 'SQLite file path, or PostgreSQL / MariaDB database name' }),
  poolSize: Type.Integer({ minimum: 1, maximum: 1000, description: 'PostgreSQL / MariaDB connection pool size' }),
  pollInterval: Type.Integer({
    minimum: 10,
    maximum: 1000,
    description: "MariaDB / MySQL: ms between an instance's checks for other instances' events and ended sessions"
  }),
  serverPublicKey: Type.String({
    description: "MySQL 8: file (PEM) of the server's RSA public key, for caching_sha2_password users over a connection without TLS; '' = none"
  })
}, { additionalProperties: false })

/** Settings of the `mqtt:` section: the bridge to an MQTT broker (docs/mqtt.md). */
export const MqttSettings = Type.Object({
  url: Type.String({ description: "the broker, mqtt://host[:port] or mqtts://host[:port]; '' (default) = no bridge" }),
  username: Type.String({ description: "user name at the broker; '' = none" }),
  password: Type.String({ description: "password at the broker; '' = none" }),
  ca: Type.String({ description: "CA certificate file (PEM) that signed the broker's certificate, for mqtts://; '' = the system's CAs" }),
  topicPrefix: Type.String({ minLength: 1, description: 'first topic level(s): events go to <topicPrefix>/events/..., devices post to <topicPrefix>/post/...' }),
  publicUrl: Type.String({
    description: "scheme://host[:port] of cred as devices reach it, for the `uri` of published events; '' = http(s)://<host>:<port> of these settings"
  })
}, { additionalProperties: false })

export const Settings = Type.Object({
  SSL: Type.Boolean(),
  sslcert: Type.String({ description: 'PEM certificate file, required when SSL is True' }),
  sslkey: Type.String({ description: 'PEM private key file, required when SSL is True' }),
  approot: Type.String(),
  host: Type.String({ description: "interface to listen on; '*' = all interfaces" }),
  port: Type.Integer({ minimum: 0, maximum: 65535 }),
  scheduler: Type.Boolean(),
  schedulerPeriod: Type.Integer({ minimum: 1 }),
  pingtimeout: Type.Integer({ minimum: 1 }),
  bodyLimit: Type.Integer({ minimum: 1024, description: 'largest accepted request body, in bytes' }),
  maxPageSize: Type.Integer({
    minimum: 1,
    description: 'most items one list answer holds: the largest `limit` accepted (a larger one is a 400), and the page size without one'
  }),
  streamHeartbeat: Type.Integer({ minimum: 1, description: 'seconds between heartbeat comments on idle event streams' }),
  streamBufferLimit: Type.Integer({ minimum: 1, description: 'events a stream may fall behind before it is closed' }),
  shutdownGrace: Type.Integer({
    minimum: 1,
    description: 'seconds that requests in progress get to finish on SIGTERM/SIGINT; then cred-server exits anyway, with code 1'
  }),
  headersTimeout: Type.Integer({
    minimum: 1,
    description: 'seconds a client has to send a request\'s headers (cred-server; a slower client is cut off)'
  }),
  requestTimeout: Type.Integer({
    minimum: 1,
    description: 'seconds a client has to send a whole request, body included (cred-server; at least headersTimeout)'
  }),
  sessionTimeout: Type.Integer({ minimum: 0, description: 'seconds a session may go unused before it is refused; 0 = never' }),
  maxSubscriptions: Type.Integer({ minimum: 1, description: 'event names one client may subscribe to' }),
  maxStreamsPerSession: Type.Integer({
    minimum: 1, description: 'event streams and waiting long polls one session may hold open at once, per instance'
  }),
  maxStreamsPerKey: Type.Integer({
    minimum: 1, description: 'event streams and waiting long polls all sessions of one API key may hold open at once, per instance'
  }),
  authRateLimit: Type.Integer({ minimum: 1, description: 'failed /auth attempts allowed per client IP per minute' }),
  cors: Type.Union([Type.Literal('*'), Type.Array(Type.String())], {
    description: "origins (scheme://host[:port]) whose pages may call cred with the session cookie; [] = none (default); '*' = any (logged as a warning)"
  }),
  trustProxy: Type.Union([Type.Boolean(), Type.String(), Type.Array(Type.String())], {
    description: "Fastify's trustProxy for cred-server: False (default), True, or the addresses/CIDR ranges of trusted proxies (a number of hops is refused)"
  }),
  logLevel: Type.Union([
    Type.Literal('fatal'), Type.Literal('error'), Type.Literal('warn'),
    Type.Literal('info'), Type.Literal('debug'), Type.Literal('trace'), Type.Literal('silent')
  ]),
  metrics: Type.Boolean({
    description: 'serve Prometheus metrics at GET /metrics (True for cred-server; False when embedded, unless the host sets it)'
  }),
  metricsToken: Type.String({ description: "when set, GET /metrics requires 'Authorization: Bearer <metricsToken>'; '' = no protection" }),
  dashboard: Type.Boolean({
    description: 'serve the live dashboard web page at the root URL (True for cred-server; False when embedded, unless the host sets it)'
  }),
  database: DatabaseSettings,
  mqtt: MqttSettings
}, { additionalProperties: false })

export type MqttSettings = Static<typeof MqttSettings>
export type DatabaseSettings = Static<typeof DatabaseSettings>
export type Settings = Static<typeof Settings>

/** What a caller may pass: any subset of the settings, database section included. */
export type SettingsInput = Partial<Omit<Settings, 'database' | 'mqtt'>> & { database?: Partial<DatabaseSettings>, mqtt?: Partial<MqttSettings> }

export type DatabaseKind = 'sqlite' | 'postgresql' | 'mysql'

/** Settings after validation, with the derived values the service uses. */
export interface CredConfig extends Settings {
  /** approot normalised to '' or '/path' without a trailing slash */
  approot: string
  database: DatabaseSettings & { kind: DatabaseKind, url?: string }
}

export const defaultSettings: Settings = {
  SSL: false,
  sslcert: '',
  sslkey: '',
  approot: '',
  host: '*',
  port: 5000,
  scheduler: false,
  schedulerPeriod: 30,
  pingtimeout: 240,
  bodyLimit: 1048576,
  maxPageSize: 1000,
  streamHeartbeat: 15,
  streamBufferLimit: 1000,
  shutdownGrace: 10,
  headersTimeout: 10,
  requestTimeout: 30,
  sessionTimeout: 0,
  maxSubscriptions: 100,
  maxStreamsPerSession: 10,
  maxStreamsPerKey: 1000,
  authRateLimit: 10,
  cors: [],
  trustProxy: false,
  logLevel: 'info',
  metrics: true,
  metricsToken: '',
  dashboard: true,
  database: {
    type: 'sqlite3',
    user: '',
    password: '',
    host: '',
    port: '',
    database: 'cred-server.db',
    poolSize: 10,
    pollInterval: 100,
    serverPublicKey: ''
  },
  mqtt: {
    url: '',
    username: '',
    password: '',
    ca: '',
    topicPrefix: 'cred',
    publicUrl: ''
  }
}
