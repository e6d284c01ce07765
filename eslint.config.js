// ESLint with neostandard, the Fastify ecosystem's style (standard, for TypeScript too).
import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['dist/**', 'coverage/**', '.tap/**', 'node_modules/**']
})
