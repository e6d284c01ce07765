import { defineConfig } from 'drizzle-kit'

// Run from the project root: `npm run db:generate`.
export default defineConfig({
  dialect: 'postgresql',
  schema: './db/postgres/schema.ts',
  out: './db/postgres/migrations'
})
