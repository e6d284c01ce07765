// ESLint with neostandard, the Fastify ecosystem's style (standard, for TypeScript too).
import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['dist/**', 'coverage/**', '.tap/**', 'node_modules/**', 'artifacts/**']
  }),
  {
    rules: {
      // `void promise;` marks a promise deliberately not awaited (its errors are handled inside)
      'no-void': ['error', { allowAsStatement: true }],
      // TypeBox's `const X = Type.Object(…)` with `type X = Static<typeof X>` is one name for a
      // schema and its type; TypeScript itself reports real redeclarations (typescript-eslint
      // advises against this rule in TypeScript code)
      '@typescript-eslint/no-redeclare': 'off'
    }
  }
]
