// tsc compiles the TypeScript; the SQL migrations travel to dist/ beside the code that applies them,
// and the dashboard's page, styles and icon join its compiled scripts in dist/dashboard.
// Output left behind by a source file that was moved or deleted is removed: autoload would
// still load a stale plugin or route from dist/.
import { chmodSync, cpSync, existsSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'

function removeOrphans (dir) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) {
      removeOrphans(path)
      continue
    }
    const compiled = /^dist\/(.+)\.(js|d\.ts|js\.map)$/.exec(path)
    if (compiled !== null && !existsSync(`${compiled[1]}.ts`)) rmSync(path)
  }
}

for (const dir of ['app', 'config', 'db', 'lib', 'plugins', 'routes', 'schemas', 'scripts']) {
  if (existsSync(join('dist', dir))) removeOrphans(join('dist', dir))
}
for (const file of ['app.js', 'app.d.ts', 'app.js.map']) {
  if (existsSync(join('dist', file)) && !existsSync('app.ts')) rmSync(join('dist', file))
}
// each dialect's folder (db/sqlite, db/postgres) keeps its migrations
for (const dialect of readdirSync('db').filter((name) => existsSync(`db/${name}/migrations`))) {
  rmSync(`dist/db/${dialect}/migrations`, { recursive: true, force: true })
  cpSync(`db/${dialect}/migrations`, `dist/db/${dialect}/migrations`, { recursive: true })
}
rmSync('dist/db/migrations', { recursive: true, force: true })
cpSync('dashboard/index.html', 'dist/dashboard/index.html')
cpSync('dashboard/assets', 'dist/dashboard/assets', { recursive: true })
for (const bin of ['dist/scripts/cred-server.js', 'dist/scripts/cred-gen.js']) chmodSync(bin, 0o755)
