// The README's embedding section, run as written: a host app registering cred, and the way to
// its first API key. Its two code blocks are taken from the README itself, so they stay true.
import { execFile, spawn } from 'node:child_process'
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { request, sandbox } from './process-helper.js'

const root = join(import.meta.dirname, '..')

/** The ```js block of the README whose first line is `// <name>: …`. */
function readmeBlock (name: string): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const block = new RegExp('```js\\n(// ' + name.replace('.', '\\.') + ':[^\\n]*\\n[\\s\\S]*?)```').exec(readme)
  if (block === null) throw new Error(`README.md has no js block starting with // ${name}:`)
  return block[1]!
}

t.test('README: a host app embeds cred, gets its first key with createApiKey, and serves the API', async (t) => {
  const box = sandbox(t)
  // the app's own node_modules: this package (as its users install it, by name) and Fastify
  mkdirSync(join(box.cwd, 'node_modules'))
  symlinkSync(root, join(box.cwd, 'node_modules', 'cred-server'))
  symlinkSync(join(root, 'node_modules', 'fastify'), join(box.cwd, 'node_modules', 'fastify'))
  writeFileSync(join(box.cwd, 'host.mjs'), readmeBlock('host.mjs'))
  writeFileSync(join(box.cwd, 'first-key.mjs'), readmeBlock('first-key.mjs'))

  const host = spawn(process.execPath, ['host.mjs'], { cwd: box.cwd, env: { ...box.env, PORT: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { host.kill('SIGKILL') })
  let output = ''
  const listening = new Promise<string>((resolve, reject) => {
    host.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk
      const address = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)
      if (address !== null) resolve(address[1]!)
    })
    host.once('exit', (code) => reject(new Error(`the host app ended (${code}): ${output}`)))
  })
  const origin = await listening
  const hint = output.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { msg: string }).find((line) => line.msg.startsWith('no API keys exist yet'))
  t.match(hint?.msg, /createApiKey\(config, 'admin'\) from 'cred-server'/, 'the warning names the way for an embedding app')
  t.notMatch(hint?.msg, /cred-gen/, 'not cred-gen, which would make a database of its own')

  const { stdout } = await promisify(execFile)(process.execPath, ['first-key.mjs'], { cwd: box.cwd, env: box.env })
  const apikey = stdout.trim()
  t.match(apikey, /^[\w-]{43}$/, 'first-key.mjs prints the new key')

  const signIn = await fetch(`${origin}/cred/auth`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ apikey, device: 'Panel' }) })
  t.equal(signIn.status, 201, 'the running host app accepts the key')
  const { sessionKey } = await signIn.json() as { sessionKey: string }
  const events = await fetch(`${origin}/cred/events`, { headers: { authorization: `Bearer ${sessionKey}` } })
  t.equal(events.status, 200)
  t.same(await events.json(), { status: 200, message: 'OK', events: [] })
  const home = await request(`${origin}/`)
  t.same(home.json(), { hello: 'from the host app' }, 'beside the host app\'s own routes')
})
