// Server-side handshakes on the event loop: clients that connect and never
// send their HELLO do not stall the others, nor cost a thread; a handshake
// past its deadline is refused with no JavaScript timer; a client that
// completes its handshake while nobody accepts waits for the next accept.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'

import { destroyAll, rejectsWith, runFixture, shm, silentClients, uniqueName, until, within } from './helpers.mjs'

const { Client, Keypair, Listener, Stream, codes, createServer } = shm
const T = { timeout: 90000 }
// Far longer than the bounded waits below: a silent client that held up the
// others would fail the test.
const LONG = 30000

/** A message to an echoing Server and back. */
async function roundTrip(client) {
  const echo = once(client, 'data')
  await client.write('echo')
  const [data] = await within(echo, 10000, 'the echo')
  assert.equal(String(data), 'echo')
}

const threads = () => Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))[1])

test('accept() completes a client while 16 silent clients are in their handshake', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('silent-acc')
  const listener = Listener.bind(name, { keypair, handshakeTimeout: LONG })
  const silent = await silentClients(name, 16)
  try {
    const accepted = listener.accept()
    const client = await within(Stream.connect(name, { serverKey: keypair.publicKey }), 10000, 'connect')
    const server = await within(accepted, 10000, 'accept')
    assert.ok(server.peerPublicKey.equals(client.localPublicKey))
    await client.send('past the silent ones')
    assert.equal(String(await server.recv({ timeout: 5000 })), 'past the silent ones')
    assert.equal(listener.rejectedCount, 0, 'the silent clients wait for their deadline')
    await Promise.all([client.close(), server.close()])
  } finally {
    destroyAll(silent)
    listener.close()
  }
})

test('a Server accepts a client past 100 silent clients, with no thread per handshake', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('silent-srv')
  const server = createServer({ keypair, handshakeTimeout: LONG })
  const errors = []
  server.on('error', (err) => errors.push(err))
  const connections = []
  server.on('connection', (conn) => connections.push(conn))
  server.on('data', (conn, data) => conn.send(data))
  server.listen(name)
  const before = threads()
  const silent = await silentClients(name, 100)
  try {
    const mine = Keypair.generate()
    const client = await within(Client.connect(name, { serverKey: keypair.publicKey, keypair: mine }), 10000, 'connect')
    await until(() => connections.length === 1, 10000, 'the connection event')
    assert.ok(connections[0].peerPublicKey.equals(mine.publicKey))
    // Before, each of 64 silent clients held a handshake thread.
    assert.ok(threads() < before + 8, `${threads() - before} threads more with 100 silent clients`)
    assert.deepEqual(errors, [], 'the silent clients wait for their deadline')
    await roundTrip(client)
    await client.close()
  } finally {
    destroyAll(silent)
    await server.close()
  }
})

test('a silent client past the handshake timeout is a Server error with SHMSOCK_TIMEOUT', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('silent-late')
  const server = createServer({ keypair, handshakeTimeout: 200 })
  const errors = []
  server.on('error', (err, conn) => errors.push([err, conn]))
  server.on('data', (conn, data) => conn.send(data))
  server.listen(name)
  const [silent] = await silentClients(name, 1)
  try {
    // The server closes the refused client's socket.
    const closed = new Promise((resolve) => silent.once('close', resolve))
    silent.resume()
    await until(() => errors.length === 1, 10000, 'the error event')
    assert.equal(errors[0][0].code, codes.TIMEOUT)
    assert.equal(errors[0][1], null)
    assert.equal(server.connections.size, 0)
    await within(closed, 10000, 'the refused socket closing')
    // The server still accepts.
    const client = await within(Client.connect(name, { serverKey: keypair.publicKey }), 10000, 'connect')
    await roundTrip(client)
    assert.equal(errors.length, 1)
    await client.close()
  } finally {
    silent.destroy()
    await server.close()
  }
})

test('a Listener with no accept pending refuses a silent client at its deadline', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('silent-idle')
  const listener = Listener.bind(name, { keypair, handshakeTimeout: 200 })
  const [silent] = await silentClients(name, 1)
  try {
    const closed = new Promise((resolve) => silent.once('close', resolve))
    silent.resume()
    await until(() => listener.rejectedCount === 1, 10000, 'the refusal')
    await within(closed, 10000, 'the refused socket closing')
    // accept() skips it.
    await rejectsWith(listener.accept({ timeout: 50 }), codes.TIMEOUT)
  } finally {
    silent.destroy()
    listener.close()
  }
})

test('a client that connects while nobody accepts is held for the next accept', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('held')
  const listener = Listener.bind(name, { keypair })
  try {
    const first = await within(Stream.connect(name, { serverKey: keypair.publicKey }), 10000, 'connect')
    const second = await within(Stream.connect(name, { serverKey: keypair.publicKey }), 10000, 'connect')
    await first.send('one')
    await second.send('two')
    const a = await within(listener.accept({ timeout: 5000 }), 10000, 'accept')
    const b = await within(listener.accept({ timeout: 5000 }), 10000, 'accept')
    assert.ok(a.peerPublicKey.equals(first.localPublicKey))
    assert.ok(b.peerPublicKey.equals(second.localPublicKey))
    assert.equal(String(await a.recv({ timeout: 5000 })), 'one')
    assert.equal(String(await b.recv({ timeout: 5000 })), 'two')
    await Promise.all([first, second, a, b].map((s) => s.close()))
  } finally {
    listener.close()
  }
})

test('an idle Listener does not keep the process alive; a pending accept does', T, async () => {
  const r = await runFixture('listener-idle.mjs', [uniqueName('idle')], { timeout: 30000 })
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /accepted after the exit check; idle listener left open: true/)
})
