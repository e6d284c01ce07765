import { defineConfig } from 'drizzle-kit'

// Run from the project root: `npm run db:generate`.
export default defineConfig({
  dialect: 'sqlite',
  schema: './db/sqlite/schema.ts',
  out: './db/sqlite/migrations'
})
