// Stream.connect runs on the JavaScript thread: the HELLO goes out at once, a
// libuv poll handle waits for the server's answer and a timerfd for the
// handshake's deadline; a server that is not there yet (`wait`) or whose queue
// is full is waited for through the same poll handle; no thread waits. An
// aborted connect closes its socket at once. (A listener with no pending accept takes no client: the
// kernel queues the client's socket and nobody answers its HELLO.)
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'

import { newShmsockThreads, rejectsWith, shm, sleep, threads, uniqueName, within } from './helpers.mjs'

const { Keypair, Listener, Stream, codes } = shm
const T = { timeout: 60000 }

/** A listener of a fresh endpoint that accepts only when asked. */
function silentServer(prefix) {
  const keypair = Keypair.generate()
  const name = uniqueName(prefix)
  return { keypair, name, listener: Listener.bind(name, { keypair }) }
}

/** Resolves once `check()` is true; rejects after `turns` looks 10 ms apart. */
async function until(check, what, turns = 1000) {
  for (let i = 0; !check(); i++) {
    if (i >= turns) throw new Error(`${what}: not reached after ${turns} looks`)
    await sleep(10)
  }
}

test('a connect waits for the answer on the JavaScript thread (no thread), then messages flow', T, async () => {
  const { keypair, name, listener } = silentServer('nothread')
  try {
    const before = threads()
    const connecting = Stream.connect(name, { serverKey: keypair.publicKey })
    // Some turns of the loop while the HELLO waits in the listener's queue.
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
    await sleep(20)
    assert.deepEqual(newShmsockThreads(before), [], 'a thread waits for the connect')
    const accepted = listener.accept({ timeout: 10000 })
    const client = await within(connecting, 10000, 'connect')
    const server = await within(accepted, 10000, 'accept')
    try {
      await client.send('ping')
      assert.equal(String(await server.recv({ timeout: 5000 })), 'ping')
      await server.send('pong')
      assert.equal(String(await client.recv({ timeout: 5000 })), 'pong')
      assert.deepEqual(client.peerPublicKey, keypair.publicKey)
    } finally {
      await Promise.all([client.close(), server.close()])
    }
  } finally {
    listener.close()
  }
})

test('a server that never answers: the connect times out after handshakeTimeout while the loop runs', T, async () => {
  // A socket on the endpoint's path that takes the connection and never
  // answers (a shmsock Listener runs handshakes even while nobody accepts).
  const keypair = Keypair.generate()
  const name = uniqueName('silent')
  const held = []
  const listener = createServer((socket) => held.push(socket))
  await new Promise((resolve) => listener.listen(join(process.env.SHMSOCK_RUNTIME_DIR, `${name}.sock`), resolve))
  let ticks = 0
  const ticker = setInterval(() => ticks++, 5)
  try {
    const before = threads()
    let threadsWhileWaiting = null
    const connecting = Stream.connect(name, { serverKey: keypair.publicKey, handshakeTimeout: 300 })
    connecting.catch(() => {})
    // Looked at from a timer of the loop while the connect waits.
    setTimeout(() => (threadsWhileWaiting = newShmsockThreads(before)), 20)
    await within(rejectsWith(connecting, codes.TIMEOUT), 20000, 'the timed-out connect')
    assert.ok(ticks > 0, 'the event loop did not run while the connect waited')
    assert.deepEqual(threadsWhileWaiting, [], 'a thread waited for the connect')
  } finally {
    clearInterval(ticker)
    for (const socket of held) socket.destroy()
    listener.close()
  }
})

test('an aborted connect rejects with ABORT_ERR and closes its socket: the accept skips that client', T, async () => {
  const { keypair, name, listener } = silentServer('aborted')
  try {
    const ac = new AbortController()
    let resolved = false
    const connecting = Stream.connect(name, { serverKey: keypair.publicKey, signal: ac.signal })
    connecting.then(
      () => (resolved = true),
      () => {},
    )
    await new Promise((r) => setImmediate(r))
    ac.abort()
    await assert.rejects(within(connecting, 5000, 'aborted connect'), (e) => e.code === 'ABORT_ERR')
    // The accept takes the queued socket, whose client is gone: its HELLO is
    // read, the rest fails, and the accept waits on for another client.
    let accepted = null
    const accepting = listener.accept().then(
      (stream) => (accepted = stream),
      (err) => err,
    )
    await until(() => listener.rejectedCount === 1, 'the listener counting the aborted client')
    assert.equal(accepted, null, 'the accept took the aborted client')
    assert.equal(resolved, false)
    listener.close()
    const err = await within(accepting, 5000, 'the accept after close')
    assert.equal(err.code, codes.CLOSED)
    // A connect aborted before its start touches no socket at all.
    await assert.rejects(Stream.connect(name, { serverKey: keypair.publicKey, signal: AbortSignal.abort() }), (e) => e.code === 'ABORT_ERR')
  } finally {
    listener.close()
  }
})

test('connects side by side each complete when the server answers it', T, async () => {
  const { keypair, name, listener } = silentServer('sidebyside')
  try {
    const connecting = [1, 2, 3].map(() => Stream.connect(name, { serverKey: keypair.publicKey }))
    const servers = []
    for (let i = 0; i < 3; i++) servers.push(await within(listener.accept({ timeout: 10000 }), 10000, 'accept'))
    const clients = await within(Promise.all(connecting), 10000, 'connects')
    for (const [i, client] of clients.entries()) await client.send(`hello ${i}`)
    const got = await Promise.all(servers.map(async (s) => String(await s.recv({ timeout: 5000 }))))
    assert.deepEqual(got.sort(), ['hello 0', 'hello 1', 'hello 2'])
    await Promise.all([...clients, ...servers].map((s) => s.close()))
  } finally {
    listener.close()
  }
})

test('a connect with wait finds a server that binds later, with no thread', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('later')
  const before = threads()
  const connecting = Stream.connect(name, { serverKey: keypair.publicKey, wait: 30000 })
  let listener
  try {
    await sleep(100)
    assert.deepEqual(newShmsockThreads(before), [], 'a thread waits for the server')
    listener = Listener.bind(name, { keypair })
    const server = await within(listener.accept(), 10000, 'accept')
    const client = await within(connecting, 10000, 'connect')
    await client.send('found')
    assert.equal(String(await within(server.recv(), 10000, 'recv')), 'found')
    await Promise.all([client.close(), server.close()])
    // A wait that ends first: NOT_FOUND.
    await rejectsWith(Stream.connect(uniqueName('never'), { serverKey: keypair.publicKey, wait: 100 }), codes.NOT_FOUND)
  } finally {
    if (listener) listener.close()
    await Promise.allSettled([connecting])
  }
})

test('a server whose queue of waiting connections is full: the connect waits for room on the JavaScript thread', T, async () => {
  const { keypair, name, listener } = silentServer('fullqueue')
  // More clients than the queue holds (16): the last ones find it full.
  const count = 24
  const before = threads()
  const connecting = Array.from({ length: count }, () => Stream.connect(name, { serverKey: keypair.publicKey, handshakeTimeout: 30000 }))
  try {
    await sleep(50)
    assert.deepEqual(newShmsockThreads(before), [], 'a thread waits for room')
    const servers = []
    for (let i = 0; i < count; i++) servers.push(await within(listener.accept({ timeout: 20000 }), 20000, `accept ${i}`))
    const clients = await within(Promise.all(connecting), 20000, 'connects')
    assert.equal(clients.length, count)
    await Promise.all([...clients, ...servers].map((s) => s.close()))
  } finally {
    listener.close()
    await Promise.allSettled(connecting)
  }
})
