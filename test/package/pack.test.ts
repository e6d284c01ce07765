// What `npm pack` (and so `npm publish`) puts in the package: the built service, its docs and
// sample config, and nothing a user of the package does not run (tests, benchmarks, sources).
import { execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'

const root = fileURLToPath(new URL('../..', import.meta.url))

t.test('the npm package holds dist/, README, LICENSE and credrc.yaml, and no tests, benchmarks or sources', async (t) => {
  // --ignore-scripts: the package is built already (npm test builds first); prepare would build again
  const output = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8' })
  const [pack] = JSON.parse(output) as Array<{ files: Array<{ path: string }> }>
  const files = pack!.files.map((file) => file.path)
  for (const needed of ['package.json', 'README.md', 'LICENSE', 'credrc.yaml', 'dist/app.js', 'dist/app.d.ts',
    'dist/scripts/cred-server.js', 'dist/scripts/cred-gen.js', 'dist/dashboard/index.html']) {
    t.ok(files.includes(needed), needed)
  }
  t.ok(files.some((file) => /^dist\/db\/\w+\/migrations\/.+\.sql$/.test(file)), 'the SQL migrations the server applies at start')
  const outside = files.filter((file) => !file.startsWith('dist/') && !['package.json', 'README.md', 'LICENSE', 'credrc.yaml'].includes(file))
  t.same(outside, [], 'nothing else outside dist/ (no test/, no sources, no docs of the developers)')
  t.same(files.filter((file) => /(^|\/)test\/|\.test\.|\/bench\/|\.map$|tsbuildinfo/.test(file)), [], 'no tests, benchmarks, source maps or build state')
  t.same(files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts')), [], 'no TypeScript sources')
})
