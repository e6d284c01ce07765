// tsc compiles the TypeScript; the SQL migrations travel to dist/ beside the code that applies them,
// and the dashboard's page, styles and icon join its compiled scripts in dist/dashboard.
import { chmodSync, cpSync, rmSync } from 'node:fs'

rmSync('dist/db/migrations', { recursive: true, force: true })
cpSync('db/migrations', 'dist/db/migrations', { recursive: true })
cpSync('dashboard/index.html', 'dist/dashboard/index.html')
cpSync('dashboard/assets', 'dist/dashboard/assets', { recursive: true })
for (const bin of ['dist/scripts/cred-server.js', 'dist/scripts/cred-gen.js']) chmodSync(bin, 0o755)
