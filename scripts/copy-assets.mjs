// tsc compiles the TypeScript; the SQL migrations travel to dist/ beside the code that applies them.
import { chmodSync, cpSync, rmSync } from 'node:fs'

rmSync('dist/db/migrations', { recursive: true, force: true })
cpSync('db/migrations', 'dist/db/migrations', { recursive: true })
for (const bin of ['dist/scripts/cred-server.js', 'dist/scripts/cred-gen.js']) chmodSync(bin, 0o755)
