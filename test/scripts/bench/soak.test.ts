// `npm run soak` end to end, short: devices posting, polling and streaming against a real
// cred-server, every delivery accounted for. Runs the built script (dist/: run `npm run build` first).
import t from 'tap'
import { backends } from '../../helper.js'
import { runBench } from '../../process-helper.js'

t.setTimeout(120_000)
// each run makes its own server and database
t.jobs = 3

for (const backend of backends) {
  t.test(`a few devices for a few seconds on ${backend}: nothing lost, the server exits cleanly`, async (t) => {
    const { code, stdout, stderr } = await runBench(t, 'soak', ['--json', '--devices', '6', '--seconds', '2', '--post-interval', '0.5', '--poll-interval', '0.2', '--drain', '5',
      ...({ sqlite: [], postgresql: ['--postgres'], mariadb: ['--mariadb'] }[backend])])
    t.equal(code, 0, 'exits 0', { stderr: stderr.slice(-4000) })
    const out = JSON.parse(stdout)
    t.same(out.settings, { devices: 6, streaming: 3, polling: 3, seconds: 2, database: backend === 'sqlite' ? 'sqlite3' : backend })
    t.equal(out.errors, 0)
    t.ok(out.requests.post >= 6 && out.requests.poll > 0 && out.requests.stream === 3 && out.requests.auth === 6, 'every kind of request made')
    t.ok(out.deliveries.expected > 0 && out.deliveries.received === out.deliveries.expected, 'every expected delivery received')
    t.same([out.deliveries.lost, out.deliveries.duplicated, out.deliveries.unexpected, out.deliveries.altered], [0, 0, 0, 0])
    t.equal(out.deliveries.completeSubscribers, 6)
    t.ok(out.serverRssMB.start > 10 && out.serverRssMB.peak >= out.serverRssMB.connected, 'server RSS')
    t.equal(out.serverExit, 0, 'exit code 0 after SIGTERM')
    t.equal(out.pass, true)
  })
}

t.test('a table by default; --devices 1 is refused', async (t) => {
  const { code, stdout } = await runBench(t, 'soak', ['--devices', '2', '--seconds', '1', '--drain', '5'])
  t.equal(code, 0)
  t.match(stdout, /^ {2}pass true$/m)
  t.match(stdout, /^ {2}deliveries: expected \d+, received \d+, lost 0, duplicated 0/m)
  const bad = await runBench(t, 'soak', ['--devices', '1'])
  t.equal(bad.code, 2)
  t.match(bad.stderr, /--devices must be a number >= 2\nUsage: npm run soak/)
})
