// The README's curl walk-through and live delivery examples, run as written against a real
// cred-server: each command of their ```sh blocks in order, its answer compared with the output
// the README shows under it (the `# …` lines). In the shown output `...` stands for any text and
// `<write key>`-like placeholders for a value printed there first and sent by later commands.
import { execFileSync, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { sandbox, startServer } from './process-helper.js'

const root = join(import.meta.dirname, '..')

const curlMissing = (() => {
  try {
    execFileSync('curl', ['--version'], { stdio: 'ignore' })
    return false
  } catch {
    return true
  }
})()
if (curlMissing && process.env.CI === 'true') throw new Error('curl is missing: in CI the README walk-through must run')

interface Step {
  command: string
  /** the output shown under it, one entry a line; null when none is shown */
  shown: string[] | null
}

/** The ```sh blocks of the README from the heading `from` up to the heading `to`, as steps. */
function readmeSteps (from: string, to: string): Step[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const start = readme.indexOf(`\n## ${from}\n`)
  const end = readme.indexOf(`\n## ${to}\n`, start)
  if (start === -1 || end === -1) throw new Error(`README.md has no sections "${from}" … "${to}"`)
  const steps: Step[] = []
  for (const [, block] of readme.slice(start, end).matchAll(/```sh\n([\s\S]*?)```/g)) {
    let open = false // the last command goes on: a line ending in `\`, or a quote left open
    for (const line of block!.replace(/\n$/, '').split('\n')) {
      const last = steps.at(-1)
      if (line.startsWith('#')) {
        if (last === undefined) throw new Error(`README.md: output before any command: ${line}`)
        const text = line.slice(1)
        // `#   more` continues the line above it (a long JSON answer wrapped); `# text` is a line
        if (/^ {2,}/.test(text) && last.shown !== null) last.shown[last.shown.length - 1] += text.trimStart()
        else (last.shown ??= []).push(text.replace(/^ /, ''))
        open = false
      } else if (open && last !== undefined) {
        last.command += '\n' + line
      } else {
        steps.push({ command: line, shown: null })
      }
      const command = steps.at(-1)!.command
      open = !line.startsWith('#') && (line.endsWith('\\') || (command.split("'").length - 1) % 2 === 1)
    }
  }
  return steps
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/**
 * The shown output as a pattern: `...` is any text; a placeholder already known is its value,
 * a new one is captured (a key or session key: no quote, no space).
 */
function shownPattern (shown: string[], known: Map<string, string>): { pattern: RegExp, names: string[] } {
  const names: string[] = []
  const source = shown.join('\n').split(/(\.\.\.|<[a-z ]+>)/).map((part, i) => {
    if (i % 2 === 0) return escape(part)
    if (part === '...') return '[\\s\\S]*?'
    const value = known.get(part)
    if (value !== undefined) return escape(value)
    names.push(part)
    return '([^"\\s]+)'
  }).join('')
  return { pattern: new RegExp(`^${source}$`), names }
}

t.test('README: the curl walk-through and live delivery print what the README shows', { skip: curlMissing && 'curl is not installed' }, async (t) => {
  const box = sandbox(t)
  const server = await startServer(t, { ...box, env: { ...box.env, PORT: '0', HOST: '127.0.0.1' } })
  const known = new Map<string, string>()
  const origin = `localhost:${server.port}`

  /** The command as the user runs it here: this checkout's cred-gen, the server's port, the values printed before. */
  const commandLine = (command: string) => command
    .replaceAll('npx cred-gen', `node ${JSON.stringify(join(root, 'dist', 'scripts', 'cred-gen.js'))}`)
    .replaceAll('localhost:5000', origin)
    .replace(/<[a-z ]+>/g, (placeholder) => {
      const value = known.get(placeholder)
      if (value === undefined) throw new Error(`README.md uses ${placeholder} before any output shows it: ${command}`)
      return value
    })

  const spawnShell = (command: string) => {
    const child = spawn('bash', ['-c', commandLine(command)], { cwd: box.cwd, env: box.env, stdio: ['ignore', 'pipe', 'pipe'] })
    t.teardown(() => { child.kill('SIGKILL') })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk })
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
    const ended = new Promise<number | null>((resolve) => child.once('close', resolve))
    return { child, ended, output: () => stdout.trimEnd(), errors: () => stderr }
  }

  const compare = (step: Step, output: string) => {
    if (step.shown === null) return
    const { pattern, names } = shownPattern(step.shown, known)
    // the README's port is 5000: this server's is another
    const answer = output.replaceAll(origin, 'localhost:5000')
    const match = pattern.exec(answer)
    t.ok(match, `${step.command.split('\n')[0]}\n  prints what the README shows:\n${step.shown.join('\n')}\n  it printed:\n${answer}`)
    names.forEach((name, i) => { if (match?.[i + 1] !== undefined) known.set(name, match[i + 1]!) })
  }

  const until = async (condition: () => boolean, ms: number) => {
    for (const deadline = Date.now() + ms; !condition() && Date.now() < deadline;) await new Promise((resolve) => setTimeout(resolve, 50))
  }

  const steps = readmeSteps('Walk-through with curl', 'MQTT')
  t.ok(steps.length >= 10, `the README's walk-through has its commands (${steps.length})`)
  // a stream (`curl -N`) or a long poll (`wait=`) stays open while the next commands run
  const open: Array<{ step: Step, shell: ReturnType<typeof spawnShell>, stream: boolean }> = []
  for (const step of steps) {
    const stream = /^curl -N /.test(step.command)
    if (stream || /[?&]wait=/.test(step.command)) {
      const shell = spawnShell(step.command)
      open.push({ step, shell, stream })
      // a stream starts with the events posted after it opened: it must be open before the next post
      if (stream) await until(() => shell.output().startsWith(': connected'), 10_000)
      continue
    }
    for (const poll of open.filter((item) => !item.stream)) t.equal(poll.shell.child.exitCode, null, `${poll.step.command}\n  is still waiting`)
    const shell = spawnShell(step.command)
    const code = await shell.ended
    t.equal(code, 0, `${step.command.split('\n')[0]} exits 0 ${shell.errors()}`)
    compare(step, shell.output())
  }
  for (const { step, shell, stream } of open) {
    if (stream) {
      const { pattern } = shownPattern(step.shown ?? [], new Map())
      await until(() => pattern.test(shell.output().replaceAll(origin, 'localhost:5000')), 10_000)
    } else {
      await Promise.race([shell.ended, new Promise((resolve) => setTimeout(resolve, 10_000))])
    }
    compare(step, shell.output())
    t.ok(step.shown !== null, `${step.command}: the README shows what it prints`)
  }

  // The full form is the same, field for field and in the same order, in a stream message, in
  // GET /events/{id} and in a list.
  const stream = open.find((item) => item.stream)
  const data = /^data: (.*)$/m.exec(stream?.shell.output() ?? '')?.[1]
  t.ok(data, 'a stream message was received')
  const event = JSON.parse(data ?? '{}') as { id: number }
  const get = async (path: string) => {
    const shell = spawnShell(`curl -s 'localhost:5000${path}' -H 'authorization: Bearer <thermostat session>'`)
    await shell.ended
    return shell.output()
  }
  t.equal(await get(`/events/${event.id}`), `{"status":200,"message":"OK","event":${data}}`, 'GET /events/{id}: the stream message\'s data')
  t.equal(await get('/events?full=true&limit=1'), `{"status":200,"message":"OK","events":[${data}]}`, 'GET /events?full=true: the same')
})
