// Listener: accept with timeouts, async iteration, closing.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

import { rejectsWith, shm, uniqueName, within } from './helpers.mjs'

const { Keypair, Listener, Stream, codes } = shm
const T = { timeout: 60000 }

test('accept times out with SHMSOCK_TIMEOUT, then still accepts', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('acc')
  const listener = Listener.bind(name, { keypair })
  try {
    assert.equal(listener.name, name)
    assert.ok(listener.publicKey.equals(keypair.publicKey))
    assert.equal(listener.publicKeyText, keypair.publicKeyText)
    const started = Date.now()
    await rejectsWith(listener.accept({ timeout: 100 }), codes.TIMEOUT)
    assert.ok(Date.now() - started >= 90)
    const [c, s] = await Promise.all([Stream.connect(name, { serverKey: keypair.publicKey }), listener.accept({ timeout: 5000 })])
    await c.send('hi')
    assert.equal(String(await s.recv()), 'hi')
    await Promise.all([c.close(), s.close()])
  } finally {
    listener.close()
  }
})

test('async iteration over incoming streams ends when the listener closes', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('iter')
  const listener = Listener.bind(name, { keypair })
  const accepted = []
  const serving = (async () => {
    for await (const s of listener) {
      accepted.push(s)
      s.send(`you are #${accepted.length}`)
    }
  })()
  const clients = []
  for (let i = 0; i < 3; i++) clients.push(await Stream.connect(name, { serverKey: keypair.publicKey }))
  const greetings = await Promise.all(clients.map((c) => c.recv({ timeout: 5000 })))
  assert.deepEqual(greetings.map(String).sort(), ['you are #1', 'you are #2', 'you are #3'])
  listener.close()
  await within(serving, 5000, 'iteration end')
  assert.equal(listener.closed, true)
  await rejectsWith(listener.accept(), codes.CLOSED)
  // Accepted streams stay connected.
  await clients[0].send('still here')
  const s = accepted.find((x) => x.peerPublicKey.equals(clients[0].localPublicKey))
  assert.equal(String(await s.recv({ timeout: 5000 })), 'still here')
  await Promise.all([...clients, ...accepted].map((x) => x.close()))
})

test('closing a listener rejects its pending accepts with SHMSOCK_CLOSED', T, async () => {
  const listener = Listener.bind(uniqueName('closeacc'), { keypair: Keypair.generate() })
  const a = listener.accept()
  const b = listener.accept({ timeout: 60000 })
  listener.close()
  listener.close()
  await rejectsWith(a, codes.CLOSED)
  await rejectsWith(b, codes.CLOSED)
})

test('binding a name in use fails with SHMSOCK_ADDRESS_IN_USE, a bad name with SHMSOCK_INVALID_NAME', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('dup')
  const listener = Listener.bind(name, { keypair })
  try {
    assert.throws(() => Listener.bind(name, { keypair }), (e) => e.code === codes.ADDRESS_IN_USE)
    assert.throws(() => Listener.bind('no/slashes', { keypair }), (e) => e.code === codes.INVALID_NAME)
    assert.throws(() => Listener.bind(uniqueName('ring'), { keypair, ringSize: 1000 }), (e) => e.code === codes.INVALID_ARGUMENT)
    assert.throws(() => Listener.bind(uniqueName('be'), { keypair, backend: 'carrier-pigeon' }), (e) => e.code === codes.INVALID_ARGUMENT)
  } finally {
    listener.close()
  }
  const again = Listener.bind(name, { keypair })
  again.close()
})

test('large messages beyond maxReassemblyBytes wait in their rings, and every one arrives whole', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('reasm')
  assert.throws(() => Listener.bind(uniqueName('re'), { keypair, maxReassemblyBytes: 'lots' }), TypeError)
  // 4 KiB rings: a 9,000-byte message takes several frames and never fits a
  // ring whole; a 10,000-byte budget holds one such message at a time.
  const listener = Listener.bind(name, { keypair, ringSize: 4096, maxReassemblyBytes: 10000 })
  const clients = []
  const servers = []
  try {
    for (let i = 0; i < 3; i++) {
      const accepting = listener.accept({ timeout: 10000 })
      clients.push(await Stream.connect(name, { serverKey: keypair.publicKey }))
      servers.push(await accepting)
    }
    const messages = clients.map((_, i) => Buffer.alloc(9000, i + 1))
    // Each receive waits for room in turn: one that is never woken when room
    // comes back times out.
    const received = servers.map((s) => s.recv({ timeout: 10000 }))
    await Promise.all(clients.map((c, i) => c.send(messages[i])))
    const got = await Promise.all(received)
    got.forEach((m, i) => assert.ok(m.equals(messages[i]), `message ${i} arrived changed`))
    // And again, the other way round.
    const again = servers.map((s) => s.recv({ timeout: 10000 }))
    for (const i of [2, 1, 0]) await clients[i].send(messages[i])
    ;(await Promise.all(again)).forEach((m, i) => assert.ok(m.equals(messages[i])))
  } finally {
    for (const s of [...clients, ...servers]) s.close()
    listener.close()
  }
})

test('maxPendingHandshakes(PerUid): wrong types are TypeErrors, 0 or less SHMSOCK_INVALID_ARGUMENT; listeners and servers with them serve clients', T, async () => {
  const keypair = Keypair.generate()
  const isTypeError = (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE'
  const isInvalid = (e) => e.code === codes.INVALID_ARGUMENT
  for (const option of ['maxPendingHandshakes', 'maxPendingHandshakesPerUid']) {
    for (const bad of ['8', 1.5, NaN, Infinity, true, {}, [4]]) {
      assert.throws(() => Listener.bind(uniqueName('mph'), { keypair, [option]: bad }), isTypeError, `${option}: ${String(bad)}`)
      assert.throws(() => shm.createServer({ keypair, [option]: bad }), isTypeError)
      assert.throws(() => shm.listen(uniqueName('mph'), { keypair, [option]: bad }), isTypeError)
    }
    for (const bad of [0, -1, 2 ** 32]) {
      assert.throws(() => Listener.bind(uniqueName('mph'), { keypair, [option]: bad }), isInvalid, `${option}: ${bad}`)
      assert.throws(() => shm.createServer({ keypair, [option]: bad }), isInvalid)
    }
  }
  // The native layer refuses 0 too (the core's Options::validate), with the code.
  const native = createRequire(import.meta.url)('../lib/native.js')
  for (const opts of [{ maxPendingHandshakes: 0 }, { maxPendingHandshakesPerUid: 0 }]) {
    assert.throws(() => native.NativeListener.bind(uniqueName('mph'), keypair._n, opts), isInvalid)
  }

  // One handshake at a time still serves clients one after another.
  for (const options of [{ maxPendingHandshakes: 1 }, { maxPendingHandshakesPerUid: 1 }, { maxPendingHandshakes: 1, maxPendingHandshakesPerUid: 1 }]) {
    const name = uniqueName('mph')
    const listener = Listener.bind(name, { keypair, ...options })
    try {
      for (let i = 0; i < 3; i++) {
        const [c, s] = await within(
          Promise.all([Stream.connect(name, { serverKey: keypair.publicKey }), listener.accept({ timeout: 10000 })]),
          10000,
          `client ${i + 1}`
        )
        await c.send(`hello ${i}`)
        assert.equal(String(await s.recv({ timeout: 10000 })), `hello ${i}`)
        await Promise.all([c.close(), s.close()])
      }
    } finally {
      listener.close()
    }
  }
  const name = uniqueName('mphsrv')
  const server = shm.createServer({ keypair, maxPendingHandshakes: 1, maxPendingHandshakesPerUid: 1 })
  server.on('data', (conn, data) => conn.send(data))
  server.listen(name)
  try {
    // One after another (clients connecting at once may find the one place
    // taken: SHMSOCK_RESOURCE_EXHAUSTED); all stay connected.
    const clients = []
    for (let i = 0; i < 3; i++) {
      const c = await within(Stream.connect(name, { serverKey: keypair.publicKey }), 10000, `client ${i + 1} of the server`)
      clients.push(c)
      await c.send(`echo ${i}`)
      assert.equal(String(await c.recv({ timeout: 10000 })), `echo ${i}`)
    }
    assert.equal(server.connections.size, 3)
    await Promise.all(clients.map((c) => c.close()))
  } finally {
    await server.close()
  }
})
