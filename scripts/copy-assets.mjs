// tsc compiles the TypeScript; the SQL migrations travel to dist/ beside the code that applies them,
// and the dashboard's page, styles and icon join its compiled scripts in dist/dashboard.
import { chmodSync, cpSync, existsSync, readdirSync, rmSync } from 'node:fs'

// each dialect's folder (db/sqlite, db/postgres) keeps its migrations
for (const dialect of readdirSync('db').filter((name) => existsSync(`db/${name}/migrations`))) {
  rmSync(`dist/db/${dialect}/migrations`, { recursive: true, force: true })
  cpSync(`db/${dialect}/migrations`, `dist/db/${dialect}/migrations`, { recursive: true })
}
cpSync('dashboard/index.html', 'dist/dashboard/index.html')
cpSync('dashboard/assets', 'dist/dashboard/assets', { recursive: true })
for (const bin of ['dist/scripts/cred-server.js', 'dist/scripts/cred-gen.js']) chmodSync(bin, 0o755)
