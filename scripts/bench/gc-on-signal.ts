// Preloaded into the benchmark's cred-server processes (node --expose-gc --import this):
// SIGUSR2 runs a full garbage collection, so RSS read right after it holds live memory, not
// garbage that has not been collected yet. Nothing else changes in the server.
const gc = (globalThis as { gc?: () => void }).gc
if (gc !== undefined) {
  process.on('SIGUSR2', () => {
    gc()
    process.stdout.write(`${JSON.stringify({ level: 30, msg: 'bench: gc done' })}\n`)
  })
}
