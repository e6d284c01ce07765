import { defineConfig } from 'drizzle-kit'

// Run from the project root: `npm run db:generate`.
export default defineConfig({
  dialect: 'mysql',
  schema: './db/mysql/schema.ts',
  out: './db/mysql/migrations'
})
