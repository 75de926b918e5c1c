// Stream: echo of every size, ordering under backpressure, timeouts, keys,
// closed streams, bad arguments, a peer that dies.
import assert from 'node:assert/strict'
import { createRequire } from 'node:module'
import { test } from 'node:test'

import { newShmsockThreads, pair, rejectsWith, runFixture, shm, sleep, threads, uniqueName, until, within } from './helpers.mjs'

const { Keypair, Listener, Stream, codes } = shm
const T = { timeout: 60000 }

test('echo sizes from 0 B to 6 MiB, both directions', T, async () => {
  const p = await pair()
  try {
    for (const size of [0, 1, 63, 64, 1000, 4096, 65535, 65536, 65537, 300000, 1 << 20, (1 << 20) + 7, 6 << 20]) {
      const msg = Buffer.alloc(size)
      for (let i = 0; i < size; i += 4093) msg[i] = (i * 7 + size) & 0xff
      const [got] = await within(Promise.all([p.server.recv(), p.client.send(msg)]), 30000, `echo ${size}`)
      assert.equal(got.length, size)
      assert.ok(got.equals(msg), `client->server ${size} bytes differ`)
      const [back] = await within(Promise.all([p.client.recv(), p.server.send(got)]), 30000, `reply ${size}`)
      assert.ok(back.equals(msg), `server->client ${size} bytes differ`)
    }
    const s = p.client.stats
    assert.equal(s.messagesSent, 13)
    assert.equal(s.messagesReceived, 13)
  } finally {
    await p.close()
  }
})

test('send takes Buffer, Uint8Array and string; recv gives Buffers', T, async () => {
  const p = await pair()
  try {
    await p.client.send('héllo')
    await p.client.send(new Uint8Array([1, 2, 3]))
    const u8 = new Uint8Array(new ArrayBuffer(16), 4, 3)
    u8.set([7, 8, 9])
    await p.client.send(u8)
    assert.equal((await p.server.recv()).toString(), 'héllo')
    assert.deepEqual([...(await p.server.recv())], [1, 2, 3])
    const r = await p.server.recv()
    assert.ok(Buffer.isBuffer(r))
    assert.deepEqual([...r], [7, 8, 9])
  } finally {
    await p.close()
  }
})

test('many concurrent sends through a small ring arrive complete and in order', T, async () => {
  const p = await pair({ server: { ringSize: 16384 } })
  try {
    assert.equal(p.client.ringSize, 16384)
    const n = 5000
    const sends = []
    for (let i = 0; i < n; i++) {
      const m = Buffer.alloc(100 + (i % 900))
      m.writeUInt32LE(i, 0)
      sends.push(p.client.send(m))
    }
    let received = 0
    for await (const m of p.server) {
      assert.equal(m.readUInt32LE(0), received, 'messages out of order')
      assert.equal(m.length, 100 + (received % 900))
      received += 1
      if (received === n) break
    }
    await within(Promise.all(sends), 20000, 'sends')
    assert.equal(received, n)
    // Interleaved large sends queue behind small ones and keep their order.
    const big = Buffer.alloc(200000, 9)
    const mixed = [p.client.send('a'), p.client.send(big), p.client.send('b')]
    assert.equal((await p.server.recv()).toString(), 'a')
    assert.equal((await p.server.recv()).length, big.length)
    assert.equal((await p.server.recv()).toString(), 'b')
    await Promise.all(mixed)
  } finally {
    await p.close()
  }
})

test('concurrent receives are served in order', T, async () => {
  const p = await pair()
  try {
    const recvs = [p.server.recv(), p.server.recv(), p.server.recv()]
    await p.client.send('1')
    await p.client.send('2')
    await p.client.send('3')
    assert.deepEqual((await Promise.all(recvs)).map(String), ['1', '2', '3'])
  } finally {
    await p.close()
  }
})

test('recv timeout rejects with SHMSOCK_TIMEOUT and loses nothing', T, async () => {
  const p = await pair({ client: { recvTimeout: 100 } })
  try {
    const started = Date.now()
    const err = await rejectsWith(p.client.recv(), codes.TIMEOUT)
    assert.ok(Date.now() - started >= 90, 'timed out too early')
    assert.match(err.message, /timed out/)
    await rejectsWith(p.server.recv({ timeout: 50 }), codes.TIMEOUT)
    await rejectsWith(p.server.recv({ timeout: 0 }), codes.TIMEOUT)
    await p.server.send('late')
    assert.equal((await p.client.recv({ timeout: 5000 })).toString(), 'late')
  } finally {
    await p.close()
  }
})

test('tryRecv and trySend never wait', T, async () => {
  const p = await pair({ server: { ringSize: 4096 } })
  try {
    assert.equal(p.server.tryRecv(), null)
    assert.equal(p.client.trySend('x'), true)
    let got = null
    for (let i = 0; i < 1000 && got === null; i++) {
      got = p.server.tryRecv()
      if (got === null) await new Promise((r) => setImmediate(r))
    }
    assert.equal(String(got), 'x')
    let sent = 0
    while (p.client.trySend(Buffer.alloc(500))) sent++
    assert.ok(sent > 0 && sent < 10, `a 4 KiB ring took ${sent} messages of 500 B`)
  } finally {
    await p.close()
  }
})

test('messages of 0 B to 3 MiB through a 4 KiB ring survive receives that time out, abort or are too small mid-message', T, async () => {
  // Through a 4 KiB ring every large message arrives over many turns, so the
  // receives below often end with part of a message received: the core keeps
  // that part, and the next receive (recv or recvInto) completes it.
  const p = await pair({ server: { ringSize: 4096 } })
  try {
    const sizes = [0, 1, 1000, 4096, 70000, 1 << 20, 3 << 20]
    const msgs = sizes.map((size) => {
      const m = Buffer.alloc(size)
      for (let i = 0; i < size; i += 997) m[i] = (i * 13 + size) & 0xff
      return m
    })
    const sending = Promise.all(msgs.map((m) => p.client.send(m)))
    const big = Buffer.alloc(3 << 20)
    let attempts = 0
    for (const [k, want] of msgs.entries()) {
      let got = null
      while (got === null) {
        attempts++
        const how = attempts % 4
        try {
          if (how === 0) {
            got = await p.server.recv({ timeout: 1 })
          } else if (how === 1) {
            const ac = new AbortController()
            const r = p.server.recv({ signal: ac.signal })
            await sleep(0)
            ac.abort()
            got = await r
          } else if (how === 2) {
            // Too small for all but the first messages: BUFFER_TOO_SMALL keeps it.
            const small = Buffer.alloc(2000)
            got = small.subarray(0, await p.server.recvInto(small, { timeout: 1 }))
          } else {
            got = big.subarray(0, await p.server.recvInto(big, { timeout: 1 }))
          }
        } catch (e) {
          assert.ok([codes.TIMEOUT, codes.BUFFER_TOO_SMALL, 'ABORT_ERR'].includes(e.code), String(e.code))
        }
      }
      assert.equal(got.length, want.length, `message ${k}`)
      assert.ok(got.equals(want), `message ${k} (${want.length} bytes) differs`)
    }
    await within(sending, 30000, 'the sends')
    assert.equal(p.server.stats.messagesReceived, msgs.length)
    assert.ok(attempts > msgs.length, `every receive succeeded at once (${attempts}): nothing was interrupted`)
  } finally {
    await p.close()
  }
})

test('a client pinning the wrong server key gets SHMSOCK_SERVER_KEY_MISMATCH', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('wrongkey')
  const listener = Listener.bind(name, { keypair })
  try {
    const accepted = listener.accept({ timeout: 3000 })
    await rejectsWith(Stream.connect(name, { serverKey: Keypair.generate().publicKey }), codes.SERVER_KEY_MISMATCH)
    // accept() skips refused clients.
    await rejectsWith(accepted, codes.TIMEOUT)
    assert.equal(listener.rejectedCount, 1)
  } finally {
    listener.close()
  }
})

test('a client not on the allow-list gets SHMSOCK_HANDSHAKE_REJECTED', T, async () => {
  const keypair = Keypair.generate()
  const allowed = Keypair.generate()
  const name = uniqueName('allow')
  const listener = Listener.bind(name, { keypair, allowedClients: [allowed.publicKeyText] })
  try {
    const accepted = listener.accept({ timeout: 10000 })
    const err = await rejectsWith(Stream.connect(name, { serverKey: keypair.publicKeyText, keypair: Keypair.generate() }), codes.HANDSHAKE_REJECTED)
    assert.match(err.message, /allow/i)
    const ok = await Stream.connect(name, { serverKey: keypair.publicKey, keypair: allowed })
    const s = await accepted
    assert.ok(s.peerPublicKey.equals(allowed.publicKey))
    assert.ok(ok.peerPublicKey.equals(keypair.publicKey))
    assert.equal(s.peerPublicKeyText, allowed.publicKeyText)
    assert.equal(s.peerFingerprint, allowed.fingerprint)
    assert.equal(s.peerCredentials.pid, process.pid)
    await Promise.all([ok.close(), s.close()])
  } finally {
    listener.close()
  }
})

test('connecting to an endpoint nobody serves fails with SHMSOCK_NOT_FOUND', T, async () => {
  await rejectsWith(Stream.connect(uniqueName('nobody'), { serverKey: Keypair.generate().publicKey }), codes.NOT_FOUND)
  await rejectsWith(Stream.connect('bad/name', { serverKey: Keypair.generate().publicKey }), codes.INVALID_NAME)
  await rejectsWith(Stream.connect(uniqueName('nokey')), codes.INVALID_ARGUMENT)
})

test('a closed stream rejects cleanly; the peer sees a clean close after every message', T, async () => {
  const p = await pair()
  const pendingRecv = p.client.recv().catch((e) => e)
  await p.client.send('last words')
  await p.client.close()
  await p.client.close() // idempotent
  assert.equal(p.client.closed, true)
  assert.equal((await pendingRecv).code, codes.CLOSED)
  await rejectsWith(p.client.send('x'), codes.CLOSED)
  await rejectsWith(p.client.recv(), codes.CLOSED)
  assert.throws(() => p.client.tryRecv(), (e) => e.code === codes.CLOSED)
  assert.equal((await p.server.recv()).toString(), 'last words')
  const err = await rejectsWith(p.server.recv(), codes.PEER_CLOSED)
  assert.ok(err instanceof shm.ShmsockError)
  await rejectsWith(p.server.send('anyone?'), codes.PEER_CLOSED)
  await p.server.close()
  p.listener.close()
})

test('async iteration ends when the peer closes', T, async () => {
  const p = await pair()
  const got = []
  const reading = (async () => {
    for await (const m of p.server) got.push(String(m))
  })()
  for (const m of ['a', 'b', 'c']) await p.client.send(m)
  await p.client.close()
  await within(reading, 5000, 'iteration')
  assert.deepEqual(got, ['a', 'b', 'c'])
  await p.server.close()
  p.listener.close()
})

test('a message larger than the peer accepts fails with SHMSOCK_MESSAGE_TOO_LARGE', T, async () => {
  const p = await pair({ server: { maxMessageSize: 1000 } })
  try {
    await rejectsWith(p.client.send(Buffer.alloc(1001)), codes.MESSAGE_TOO_LARGE)
    await p.client.send(Buffer.alloc(1000))
    assert.equal((await p.server.recv()).length, 1000)
  } finally {
    await p.close()
  }
})

test('wrong argument types throw TypeError', T, async () => {
  const p = await pair()
  try {
    for (const bad of [42, null, undefined, {}, [1, 2], true]) {
      assert.throws(() => p.client.send(bad), TypeError)
      assert.throws(() => p.client.trySend(bad), TypeError)
    }
    assert.throws(() => p.client.recv({ timeout: 'soon' }), TypeError)
    assert.throws(() => p.client.recv('soon'), TypeError)
    assert.throws(() => Stream.connect(42), TypeError)
    assert.throws(() => Stream.connect('x', { serverKey: 42 }), TypeError)
    assert.throws(() => Stream.connect('x', { serverKey: p.keypair.publicKey, ringSize: '1' }), TypeError)
    assert.throws(() => Stream.connect('x', { serverKey: p.keypair.publicKey, keypair: 'me' }), TypeError)
    assert.throws(() => Listener.bind('x', {}), TypeError)
    assert.throws(() => new Stream(), TypeError)
    assert.throws(() => Stream.connect('x', { serverKey: 'shmsock-pk:nope' }), (e) => e.code === codes.INVALID_KEY)
    assert.throws(() => Stream.connect('x', { serverKey: Buffer.alloc(31) }), (e) => e.code === codes.INVALID_KEY)
  } finally {
    await p.close()
  }
})

test('the internal per-message calls (src/hot.rs) throw on bad arguments and unknown streams, never crash', T, async () => {
  const require = createRequire(import.meta.url)
  const hot = require('../lib/native.js').hotCalls()
  const p = await pair()
  try {
    const id = p.client._id
    const code = (c) => (e) => e.code === c
    assert.throws(() => hot.send(id, 1, 'not a buffer'), code(codes.INVALID_ARGUMENT))
    assert.throws(() => hot.send(id, 'op', Buffer.alloc(1)), code(codes.INVALID_ARGUMENT))
    assert.throws(() => hot.send(), code(codes.INVALID_ARGUMENT))
    assert.throws(() => hot.recv(id, 1, 42), code(codes.INVALID_ARGUMENT))
    assert.throws(() => hot.recv({}, 1), code(codes.INVALID_ARGUMENT))
    assert.throws(() => hot.recv(id, 1, undefined, 'soon'), code(codes.INVALID_ARGUMENT))
    assert.throws(() => hot.recv(id, 1, undefined, -1), code(codes.INVALID_ARGUMENT))
    // No stream has this id (or it was collected): the stream is closed.
    assert.throws(() => hot.send(-5, 1, Buffer.alloc(1)), code(codes.CLOSED))
    assert.throws(() => hot.recv(2 ** 40, 1), code(codes.CLOSED))
    // The stream is untouched by all that.
    await p.client.send('still fine')
    assert.equal(String(await p.server.recv()), 'still fine')
  } finally {
    await p.close()
  }
})

test('an operation completed while its own starting call still runs resolves with that result', T, async () => {
  const require = createRequire(import.meta.url)
  const { newOp, started, settle, pending } = require('../lib/dispatch.js')
  // What a JavaScript handler run by the native call (a nested call) can do:
  // report the operation's result before the outer call returns null.
  const op = newOp()
  const got = started(op, null, (v) => `wrapped ${v}`, () => {
    settle(op, null, 'early')
    return null
  })
  assert.equal(await got, 'wrapped early')
  const failing = newOp()
  const failed = started(failing, null, null, () => {
    settle(failing, new Error('early failure'))
    return null
  })
  await assert.rejects(failed, /early failure/)
  // Nothing is left registered, and a stray result for an unknown op is dropped.
  assert.equal(pending.has(op) || pending.has(failing), false)
  settle(newOp(), null, 'nobody waits')
})

test('receives that complete at once still let the event loop turn (timers, immediates, finalizers)', T, async () => {
  const p = await pair()
  try {
    // Every message is in the ring before the receives start, so each one
    // completes at once: without a turn of the loop now and then, the
    // immediate below would wait for all of them.
    const n = 3000
    for (let i = 0; i < n; i++) assert.equal(p.client.trySend(`m${i}`), true)
    let receivedWhenTurned = -1
    let received = 0
    setImmediate(() => {
      receivedWhenTurned = received
    })
    for (; received < n; received++) assert.equal(String(await p.server.recv()), `m${received}`)
    assert.ok(receivedWhenTurned >= 0 && receivedWhenTurned < n, `the loop turned after ${receivedWhenTurned} of ${n}`)
    // Large messages make it turn sooner (by bytes): 64 x 256 KiB = 16 MiB.
    const big = Buffer.alloc(256 << 10, 3)
    const sending = (async () => {
      for (let i = 0; i < 64; i++) await p.client.send(big)
    })()
    let bigWhenTurned = -1
    let bigReceived = 0
    const turned = () =>
      setImmediate(() => {
        if (bigWhenTurned < 0) bigWhenTurned = bigReceived
      })
    turned()
    for (; bigReceived < 64; bigReceived++) assert.equal((await p.server.recv()).length, big.length)
    await sending
    assert.ok(bigWhenTurned >= 0 && bigWhenTurned < 64)
  } finally {
    await p.close()
  }
})

test('two processes pinned to one CPU: receives that wait for their answer in place keep order, timeouts and timers', T, async (t) => {
  const { spawnSync } = await import('node:child_process')
  if (spawnSync('taskset', ['-c', '0', 'true']).status !== 0) return t.skip('taskset cannot pin here')
  const r = await runFixture('one-core.mjs', [uniqueName('one-core')], { wrapper: ['taskset', '-c', '0'] })
  assert.equal(r.code, 0, r.stderr)
  assert.equal(r.stdout.trim(), 'ok')
})

test('a peer process killed with SIGKILL gives SHMSOCK_PEER_GONE', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('killed')
  const listener = Listener.bind(name, { keypair })
  try {
    const accepted = listener.accept({ timeout: 20000 })
    let ready
    const readyP = new Promise((r) => (ready = r))
    const child = runFixture('peer.mjs', [name, keypair.publicKeyText], {
      onStdout: (text, proc) => {
        if (text.includes('ready')) ready(proc)
      },
    })
    const stream = await accepted
    assert.equal((await stream.recv({ timeout: 20000 })).toString(), 'hello from the child')
    const proc = await within(readyP, 20000, 'child ready')
    const pendingRecv = stream.recv()
    proc.kill('SIGKILL')
    const err = await within(rejectsWith(pendingRecv, codes.PEER_GONE), 10000, 'PEER_GONE')
    assert.match(err.message, /exited|killed/)
    const result = await child
    assert.equal(result.signal, 'SIGKILL')
    await rejectsWith(stream.send('x'), codes.PEER_GONE)
    await stream.close()
  } finally {
    listener.close()
  }
})

test('a send waiting for room rejects with SHMSOCK_PEER_GONE when the peer is killed', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('killed-send')
  const listener = Listener.bind(name, { keypair })
  try {
    const accepted = listener.accept({ timeout: 20000 })
    let ready
    const readyP = new Promise((r) => (ready = r))
    const child = runFixture('peer.mjs', [name, keypair.publicKeyText], {
      onStdout: (text, proc) => {
        if (text.includes('ready')) ready(proc)
      },
    })
    const stream = await accepted
    const proc = await within(readyP, 20000, 'child ready')
    // The child never reads: this message is larger than the ring (2 MiB by
    // default), so the send waits.
    const pendingSend = stream.send(Buffer.alloc(4 << 20, 7))
    await sleep(50)
    proc.kill('SIGKILL')
    await within(rejectsWith(pendingSend, codes.PEER_GONE), 10000, 'the waiting send ends')
    await child
    await stream.close()
  } finally {
    listener.close()
  }
})

test('stream information', T, async () => {
  const p = await pair({ server: { backend: 'named', requireChacha: true } })
  try {
    assert.equal(p.client.backend, 'named')
    assert.equal(p.client.cipher, 'chacha20-poly1305')
    assert.equal(p.client.role, 'client')
    assert.equal(p.server.role, 'server')
    assert.equal(p.client.endpoint, p.name)
    assert.ok(p.client.peerMaxMessageSize > 0)
    assert.ok(p.server.localPublicKey.equals(p.keypair.publicKey))
    await p.client.send('named works')
    assert.equal(String(await p.server.recv()), 'named works')
  } finally {
    await p.close()
  }
})

// Large messages are received into reused native blocks (src/pool.rs): a
// Buffer the user keeps must never be handed out again, however many
// messages of its size class come and go (and get collected) after it.
test('kept large messages stay intact while later ones reuse collected blocks', T, async () => {
  const p = await pair()
  try {
    const kept = []
    const size = 40000 // rounds up to a 64 KiB block
    for (let i = 0; i < 300; i++) {
      const msg = Buffer.alloc(size, i & 0xff)
      const [got] = await within(Promise.all([p.server.recv(), p.client.send(msg)]), 30000, `message ${i}`)
      assert.equal(got.length, size)
      assert.ok(got.equals(msg), `message ${i} differs`)
      if (i % 50 === 0) kept.push([i, got])
      if (i % 100 === 99 && typeof globalThis.gc === 'function') globalThis.gc()
      await sleep(0) // lets finalizers give blocks back between messages
    }
    for (const [i, got] of kept) assert.ok(got.equals(Buffer.alloc(size, i & 0xff)), `kept message ${i} was overwritten`)
  } finally {
    await p.close()
  }
})

test('large messages to and from another process arrive whole and intact, received by recv, recvInto and iteration', T, async () => {
  // Between two processes both sides may spin for each other's fragments
  // (src/stream.rs): every message must still arrive once, whole and in order.
  const keypair = Keypair.generate()
  const name = uniqueName('echo')
  const listener = Listener.bind(name, { keypair })
  const child = runFixture('echo.mjs', [name, keypair.publicKeyText], { timeout: 60000 })
  try {
    const stream = await within(listener.accept(), 30000, 'accept')
    const sizes = [65536, (1 << 20) + 7, 100, 300000, 65537, 3 << 20, 0, 40000]
    const msgs = []
    for (let k = 0; k < 48; k++) {
      const size = sizes[k % sizes.length]
      const m = Buffer.alloc(size)
      for (let i = 0; i < size; i += 1021) m[i] = (i * 31 + k) & 0xff
      if (size >= 4) m.writeUInt32LE(k, size - 4)
      msgs.push(m)
    }
    const sending = Promise.all(msgs.map((m) => stream.send(m)))
    const buf = Buffer.alloc(4 << 20)
    const iterator = stream[Symbol.asyncIterator]()
    for (const [k, want] of msgs.entries()) {
      let got
      if (k % 3 === 0) got = await stream.recv()
      else if (k % 3 === 1) got = buf.subarray(0, await stream.recvInto(buf))
      else got = (await iterator.next()).value
      assert.equal(got.length, want.length, `message ${k}`)
      assert.ok(got.equals(want), `message ${k} (${want.length} bytes) differs`)
    }
    await within(sending, 30000, 'the sends')
    assert.equal(stream.stats.messagesReceived, msgs.length)
    await stream.close()
    const r = await child
    assert.equal(r.code, 0, r.stderr)
  } finally {
    listener.close()
  }
})

test('close: at once on the JavaScript thread with room for the CLOSE frame; a thread waits only for a peer that does not read', T, async () => {
  const p = await pair({ prefix: 'close' })
  const before = threads()
  await p.client.send('last words')
  await within(p.client.close(), 10000, 'close')
  assert.deepEqual(newShmsockThreads(before), [], 'a close with room used a thread')
  assert.equal(String(await within(p.server.recv(), 10000, 'recv')), 'last words')
  await rejectsWith(p.server.recv(), codes.PEER_CLOSED)
  await p.close()

  // A full ring: the close waits for room on a thread, and the peer still
  // gets every message, then the clean close.
  const q = await pair({ prefix: 'closefull' })
  const sent = []
  for (const message of [Buffer.alloc(500, 1), Buffer.alloc(0)]) {
    while (q.client.trySend(message)) sent.push(message)
  }
  const closing = q.client.close()
  // (A new thread names itself once it runs.)
  await until(() => newShmsockThreads(before).some((t) => t.endsWith(' shmsock-close')), 5000, 'a thread waiting for room')
  for (const message of sent) assert.deepEqual(await within(q.server.recv(), 10000, 'recv'), message)
  await within(closing, 10000, 'close')
  await rejectsWith(q.server.recv(), codes.PEER_CLOSED)
  await q.close()
})
