// Preloaded into the soak's cred-server (node --expose-gc --import this, spawned with an IPC
// channel): the message 'gc' runs a full garbage collection and is answered 'gc-done', so the
// RSS read right after it holds live memory rather than garbage not collected yet. Nothing
// else changes in the server, and the channel does not keep it alive.
const gc = (globalThis as { gc?: () => void }).gc
if (process.send !== undefined) {
  process.on('message', (message) => {
    if (message !== 'gc') return
    gc?.()
    process.send?.('gc-done')
  })
  process.channel?.unref()
}

export {}
