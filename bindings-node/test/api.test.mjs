// What users expect: AbortSignal on recv/accept/connect, `await using`
// (Symbol.asyncDispose), recvInto, Connection.peerFingerprint, a Duplex for
// pipeline(), connect's `wait`, closing with pending promises, process.exit
// with open connections.
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { PassThrough, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { test } from 'node:test'

import { pair, rejectsWith, runFixture, shm, sleep, uniqueName, within } from './helpers.mjs'

const { Client, Keypair, Listener, Stream, codes, createServer } = shm
const T = { timeout: 60000 }

test('an aborted recv rejects with AbortError and takes no message', T, async () => {
  const p = await pair()
  try {
    const ac = new AbortController()
    const pending = p.server.recv({ signal: ac.signal })
    ac.abort()
    await assert.rejects(pending, (e) => e.name === 'AbortError' && e.code === 'ABORT_ERR')
    await p.client.send('kept')
    assert.equal(String(await p.server.recv({ timeout: 5000 })), 'kept')
    // Already aborted: rejects at once.
    await assert.rejects(p.server.recv({ signal: AbortSignal.abort() }), (e) => e.code === 'ABORT_ERR')
    // A timeout signal.
    await assert.rejects(p.server.recv({ signal: AbortSignal.timeout(20) }), (e) => e.code === 'ABORT_ERR')
    await p.client.send('after')
    assert.equal(String(await p.server.recv({ timeout: 5000 })), 'after')
    assert.throws(() => p.server.recv({ signal: 'no' }), (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE')
  } finally {
    await p.close()
  }
})

test('many timed-out and aborted receives lose no message', T, async () => {
  const p = await pair()
  try {
    const sent = []
    const got = []
    for (let i = 0; i < 200; i++) {
      const ac = new AbortController()
      const r = p.server.recv({ signal: ac.signal, timeout: i % 3 === 0 ? 0 : undefined }).then(String, (e) => e)
      if (i % 2 === 0) {
        sent.push(`m${i}`)
        await p.client.send(`m${i}`)
      }
      await sleep(0)
      ac.abort()
      const result = await r
      if (typeof result === 'string') got.push(result)
      else assert.ok(result.code === 'ABORT_ERR' || result.code === codes.TIMEOUT, result.code)
    }
    for (;;) {
      const m = p.server.tryRecv()
      if (m === null) break
      got.push(String(m))
    }
    assert.deepEqual(got, sent)
  } finally {
    await p.close()
  }
})

test('an aborted accept and connect reject with AbortError; the listener still accepts', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('abort')
  const listener = Listener.bind(name, { keypair })
  try {
    const ac = new AbortController()
    const accepting = listener.accept({ signal: ac.signal })
    ac.abort()
    await assert.rejects(accepting, (e) => e.code === 'ABORT_ERR')
    const ac2 = new AbortController()
    const connecting = Stream.connect(uniqueName('nobody'), { serverKey: keypair.publicKey, wait: 30000, signal: ac2.signal })
    await sleep(100)
    ac2.abort()
    await assert.rejects(within(connecting, 5000, 'aborted connect'), (e) => e.code === 'ABORT_ERR')
    const accepted = listener.accept({ timeout: 10000 })
    const client = await Stream.connect(name, { serverKey: keypair.publicKey })
    const server = await accepted
    await client.close()
    await server.close()
  } finally {
    listener.close()
  }
})

test('connect with wait retries until the server appears', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('wait')
  await rejectsWith(Stream.connect(name, { serverKey: keypair.publicKey }), codes.NOT_FOUND)
  const connecting = Stream.connect(name, { serverKey: keypair.publicKey, wait: 30000 })
  await sleep(300)
  const listener = Listener.bind(name, { keypair })
  const server = await within(listener.accept(), 10000, 'accept')
  const client = await within(connecting, 10000, 'connect')
  await client.close()
  await server.close()
  listener.close()
  assert.throws(() => Stream.connect(name, { serverKey: keypair.publicKey, wait: 'long' }), TypeError)
})

test('Symbol.asyncDispose / Symbol.dispose close streams, listeners and servers (`await using`)', T, async () => {
  // Node 20 has the symbols but not the `using` syntax: call them as it would.
  const keypair = Keypair.generate()
  const name = uniqueName('dispose')
  const listener = Listener.bind(name, { keypair })
  const accepted = listener.accept()
  const client = await Stream.connect(name, { serverKey: keypair.publicKey })
  const kept = await accepted
  await client.send('x')
  await client[Symbol.asyncDispose]()
  listener[Symbol.dispose]()
  assert.equal(client.closed, true)
  assert.equal(listener.closed, true)
  assert.equal(String(await kept.recv()), 'x')
  await rejectsWith(kept.recv(), codes.PEER_CLOSED)
  await kept.close()
  const srv = createServer({ keypair }).listen(uniqueName('dispose-srv'))
  await srv[Symbol.asyncDispose]()
  assert.equal(srv.listening, false)
})

test('recvInto copies into the buffer; a buffer too small keeps the message', T, async () => {
  const p = await pair()
  try {
    await p.client.send('0123456789')
    await rejectsWith(p.server.recvInto(Buffer.alloc(4)), codes.BUFFER_TOO_SMALL)
    const buf = new Uint8Array(16)
    assert.equal(await p.server.recvInto(buf), 10)
    assert.equal(Buffer.from(buf.subarray(0, 10)).toString(), '0123456789')
    const waiting = p.server.recvInto(buf)
    await p.client.send('ab')
    assert.equal(await waiting, 2)
    assert.throws(() => p.server.recvInto('nope'), (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE')
  } finally {
    await p.close()
  }
})

test('recvInto receives messages larger than the ring, in order with recv, and keeps one too big for its buffer', T, async () => {
  // A 16 KiB ring: a 200 KiB message arrives in many fragments, over many
  // readiness turns, decrypted straight into the caller's buffer.
  const p = await pair({ client: { ringSize: 16384 }, server: { ringSize: 16384 } })
  try {
    const big = Buffer.alloc(200 * 1024)
    for (let i = 0; i < big.length; i++) big[i] = (i * 7 + 3) & 0xff
    const buf = Buffer.alloc(256 * 1024)
    const into = p.server.recvInto(buf, { timeout: 20000 })
    const second = p.server.recv({ timeout: 20000 })
    const sending = Promise.all([p.client.send(big), p.client.send('after')])
    assert.equal(await into, big.length)
    assert.ok(buf.subarray(0, big.length).equals(big), 'the bytes received are the bytes sent')
    assert.equal(String(await second), 'after')
    await sending
    // Too small for a fragmented message: rejected, and the message stays
    // first in line, whole, for the next receive of either kind.
    const sent = p.client.send(big)
    await rejectsWith(p.server.recvInto(Buffer.alloc(1024), { timeout: 20000 }), codes.BUFFER_TOO_SMALL)
    assert.ok((await p.server.recv({ timeout: 20000 })).equals(big))
    await sent
    // Messages read ahead (nobody waited) are copied into the buffer too.
    await p.client.send('one')
    await p.client.send('two')
    await sleep(20)
    const small = Buffer.alloc(8)
    assert.equal(await p.server.recvInto(small, { timeout: 5000 }), 3)
    assert.equal(String(small.subarray(0, 3)), 'one')
    assert.equal(await p.server.recvInto(small, { timeout: 5000 }), 3)
    assert.equal(String(small.subarray(0, 3)), 'two')
  } finally {
    await p.close()
  }
})

test('a recvInto aborted in the middle of a fragmented message loses nothing', T, async () => {
  const p = await pair({ client: { ringSize: 16384 }, server: { ringSize: 16384 } })
  try {
    const big = Buffer.alloc(100 * 1024)
    for (let i = 0; i < big.length; i++) big[i] = (i * 13 + 5) & 0xff
    // The first fragments go into the ring now; the rest wait for room,
    // which only this thread's event loop can give them.
    const sending = p.client.send(big)
    // Aborted at once: no turn of the event loop lets more fragments in.
    const ac = new AbortController()
    const into = p.server.recvInto(Buffer.alloc(big.length), { signal: ac.signal })
    ac.abort()
    await assert.rejects(into, (e) => e.code === 'ABORT_ERR')
    assert.ok((await p.server.recv({ timeout: 20000 })).equals(big))
    await sending
  } finally {
    await p.close()
  }
})

test('Connection.peerFingerprint is the client key fingerprint', T, async () => {
  const keypair = Keypair.generate()
  const clientKey = Keypair.generate()
  const name = uniqueName('fp')
  const srv = createServer({ keypair }).listen(name)
  const connected = new Promise((r) => srv.once('connection', r))
  const c = await Client.connect(name, { serverKey: keypair.publicKey, keypair: clientKey })
  const conn = await within(connected, 10000, 'connection')
  assert.equal(conn.peerFingerprint, clientKey.fingerprint)
  await c.close()
  await srv.close()
})

test('toDuplex: pipeline() sends each chunk as a message and reads messages as chunks', T, async () => {
  const p = await pair()
  try {
    const chunks = ['alpha', 'beta', 'gamma'].map((s) => Buffer.from(s))
    const source = new PassThrough()
    const sending = pipeline(source, p.client.toDuplex())
    for (const c of chunks) source.write(c)
    source.end()
    await sending
    const received = []
    const reading = pipeline(
      p.server.toDuplex(),
      new Writable({
        write(chunk, _enc, cb) {
          received.push(String(chunk))
          cb()
        },
      })
    )
    await sleep(100)
    await p.client.close()
    await within(reading, 10000, 'pipeline to the end')
    assert.deepEqual(received, ['alpha', 'beta', 'gamma'])
  } finally {
    await p.close()
  }
})

test('closing a stream rejects its pending receives and sends with a code', T, async () => {
  const p = await pair({ client: { ringSize: 16384 }, server: { ringSize: 16384 } })
  const receives = [p.client.recv(), p.client.recv(), p.client.recvInto(Buffer.alloc(8))].map((r) => rejectsWith(r, codes.CLOSED))
  const send = rejectsWith(p.client.send(Buffer.alloc(200000)), codes.CLOSED)
  await sleep(50)
  await p.client.close()
  await Promise.all([...receives, send])
  await p.close()
})

test('process.exit with open connections leaves no residue and does not hang', T, async () => {
  const dir = process.env.SHMSOCK_RUNTIME_DIR
  const before = readdirSync(dir)
  const shmBefore = readdirSync('/dev/shm').filter((f) => f.startsWith('shmsock')).length
  const r = await runFixture('exit-open.mjs', [uniqueName('exit')], { timeout: 30000 })
  assert.equal(r.code, 3, r.stderr)
  assert.match(r.stdout, /open; exiting/)
  assert.deepEqual(readdirSync(dir), before, 'no socket file left in the runtime directory')
  assert.equal(readdirSync('/dev/shm').filter((f) => f.startsWith('shmsock')).length, shmBefore)
})
