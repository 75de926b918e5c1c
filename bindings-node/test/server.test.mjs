// Server and Client: events, replies, exceptions thrown in handlers, refused
// handshakes, closing from either side.
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { test } from 'node:test'

import { rejectsWith, runFixture, shm, sleep, uniqueName, within } from './helpers.mjs'

const { Client, Keypair, codes, createServer } = shm
const T = { timeout: 60000 }

function collect(emitter, event) {
  const seen = []
  emitter.on(event, (...args) => seen.push(args))
  return seen
}

test('Server and Client: connection, data, reply, close', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('srv')
  const server = createServer({ keypair })
  const closes = collect(server, 'close')
  const errors = collect(server, 'error')
  server.on('data', (conn, data) => conn.send(Buffer.concat([Buffer.from('echo:'), data])))
  const connected = once(server, 'connection')
  server.listen(name)
  await once(server, 'listening')
  assert.equal(server.name, name)
  assert.ok(server.publicKey.equals(keypair.publicKey))

  const client = await Client.connect(name, { serverKey: keypair.publicKeyText })
  const [conn] = await within(connected, 5000, 'connection')
  assert.ok(conn.peerPublicKey.equals(client.stream.localPublicKey))
  assert.equal(server.connections.size, 1)

  const replies = []
  client.on('data', (d) => replies.push(String(d)))
  for (const m of ['one', 'two', 'three']) await client.write(m)
  while (replies.length < 3) await sleep(5)
  assert.deepEqual(replies, ['echo:one', 'echo:two', 'echo:three'])

  // Per-connection events too.
  const connData = collect(conn, 'data')
  await client.write('four')
  while (connData.length < 1) await sleep(5)
  assert.equal(String(connData[0][0]), 'four')

  const clientClosed = once(client, 'close')
  await client.close()
  const [reason] = await clientClosed
  assert.equal(reason, null)
  while (closes.length < 1) await sleep(5)
  assert.equal(closes[0][0], conn)
  assert.equal(closes[0][1], null)
  assert.equal(server.connections.size, 0)
  assert.deepEqual(errors, [])
  await server.close()
  assert.equal(server.listening, false)
})

test('an exception thrown in a handler is reported via error and the process survives', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('throw')
  const server = createServer({ keypair })
  const errors = collect(server, 'error')
  let n = 0
  server.on('data', (conn, data) => {
    n += 1
    if (String(data) === 'boom') throw new Error('handler exploded')
    conn.send(data)
  })
  server.on('connection', async () => {
    throw new Error('async connection handler rejected')
  })
  server.listen(name)
  const client = await Client.connect(name, { serverKey: keypair.publicKey })
  const clientErrors = collect(client, 'error')
  const got = []
  client.on('data', (d) => {
    got.push(String(d))
    if (String(d) === 'throw-in-client') throw new Error('client handler exploded')
  })
  await client.write('boom')
  await client.write('still alive')
  await client.write('throw-in-client')
  await client.write('after')
  while (got.length < 3) await sleep(5)
  assert.deepEqual(got, ['still alive', 'throw-in-client', 'after'])
  assert.equal(n, 4)
  const messages = errors.map(([e]) => e.message).sort()
  assert.deepEqual(messages, ['async connection handler rejected', 'handler exploded'])
  assert.ok(errors.every(([, conn]) => conn && conn.server === server))
  assert.equal(clientErrors.length, 1)
  assert.equal(clientErrors[0][0].message, 'client handler exploded')
  await client.close()
  await server.close()
})

test('without an error listener, handler exceptions become warnings, not crashes', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('warn')
  const warnings = []
  const onWarning = (w) => warnings.push(w)
  process.on('warning', onWarning)
  const server = createServer({ keypair }, (conn) => conn.on('data', () => {}))
  server.on('data', () => {
    throw new Error('nobody listens for this')
  })
  server.listen(name)
  const client = await Client.connect(name, { serverKey: keypair.publicKey })
  await client.write('x')
  while (warnings.length < 1) await sleep(5)
  assert.match(String(warnings[0].message), /nobody listens for this/)
  process.off('warning', onWarning)
  await client.close()
  await server.close()
})

test('a refused handshake is a server error; the client gets SHMSOCK_HANDSHAKE_REJECTED', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('refuse')
  const server = createServer({ keypair, allowedClients: [Keypair.generate().publicKey] })
  const errors = collect(server, 'error')
  server.listen(name)
  await rejectsWith(Client.connect(name, { serverKey: keypair.publicKey }), codes.HANDSHAKE_REJECTED)
  while (errors.length < 1) await sleep(5)
  assert.equal(errors[0][0].code, codes.HANDSHAKE_REJECTED)
  assert.equal(errors[0][1], null)
  assert.equal(server.connections.size, 0)
  await server.close()
})

test('closing the server closes its clients; clients see a clean close', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('shut')
  const server = createServer({ keypair })
  const closes = collect(server, 'close')
  server.listen(name)
  const clients = await Promise.all([1, 2, 3].map(() => Client.connect(name, { serverKey: keypair.publicKey })))
  while (server.connections.size < 3) await sleep(5)
  const clientCloses = clients.map((c) => once(c, 'close'))
  await server.close()
  const reasons = await within(Promise.all(clientCloses), 5000, 'client closes')
  assert.deepEqual(reasons.map(([r]) => r), [null, null, null])
  assert.equal(closes.length, 3)
  assert.ok(clients.every((c) => c.closed))
  await rejectsWith(clients[0].write('x'), codes.CLOSED)
  // The name is free again.
  const again = createServer({ keypair }).listen(name)
  await again.close()
})

test('listen on a name in use throws SHMSOCK_ADDRESS_IN_USE; bad arguments throw TypeError', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('inuse')
  const server = createServer({ keypair }).listen(name)
  try {
    assert.throws(() => createServer({ keypair }).listen(name), (e) => e.code === codes.ADDRESS_IN_USE)
    assert.throws(() => createServer({}), TypeError)
    assert.throws(() => createServer({ keypair }, 'not a function'), TypeError)
    assert.throws(() => createServer({ keypair }).listen(42), TypeError)
    assert.throws(() => createServer({ keypair: keypair.publicKey }), TypeError)
  } finally {
    await server.close()
  }
})

test('a server replies to many clients at once', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('many')
  const server = createServer({ keypair })
  server.on('data', (conn, data) => conn.send(data))
  server.listen(name)
  const clients = await Promise.all(Array.from({ length: 16 }, () => Client.connect(name, { serverKey: keypair.publicKey })))
  const counts = clients.map(() => 0)
  const done = clients.map(
    (c, i) =>
      new Promise((resolve) =>
        c.on('data', (d) => {
          assert.equal(d.readUInt32LE(0), counts[i])
          counts[i] += 1
          if (counts[i] === 200) resolve()
        })
      )
  )
  await Promise.all(
    clients.map(async (c) => {
      for (let i = 0; i < 200; i++) {
        const m = Buffer.alloc(256)
        m.writeUInt32LE(i, 0)
        c.write(m)
      }
    })
  )
  await within(Promise.all(done), 20000, 'echoes')
  await Promise.all(clients.map((c) => c.close()))
  await server.close()
})

test('a client that never reads: once a reply is refused the server reads no more of its requests, and reads on when it takes its replies', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('deaf')
  // A small queue: 16 replies of 4 KiB wait beyond the ring.
  const server = createServer({ keypair, maxQueuedBytes: 65536 })
  let received = 0
  let refused = 0
  let serverConn
  server.on('data', (conn, data) => {
    received += 1
    serverConn = conn
    conn.send(data).catch((err) => {
      assert.equal(err.code, codes.WOULD_BLOCK)
      refused += 1
    })
  })
  server.listen(name)
  const client = await within(shm.Stream.connect(name, { serverKey: keypair.publicKey }), 10000, 'connect')
  try {
    // Requests without reading a reply, until the server takes no more: the
    // replies fill the client's ring, its read-ahead (64 messages) and the
    // server's queue, a refusal pauses reading, and the requests then fill
    // the server's ring. Without the pause the server reads (and drops)
    // everything, up to `cap`.
    const chunk = Buffer.alloc(4096, 7)
    const cap = 3000
    let sent = 0
    for (let idle = 0; idle < 50 && sent < cap; ) {
      if (client.trySend(chunk)) {
        sent += 1
        idle = 0
      } else {
        idle += 1
        await sleep(10)
      }
    }
    assert.ok(refused > 0, `no reply was refused (${sent} requests sent)`)
    // The figures that tell where the pause failed, should it ever fail: how
    // many requests the server read, how many replies reached the client's
    // ring and how many the client took (its read-ahead holds 64 at most).
    const where = () =>
      `server read ${received}, sent ${serverConn?.stats.messagesSent}; client took ${client.stats.messagesReceived}`
    assert.ok(sent < cap, `the server kept reading a client that takes no replies: ${sent} requests, ${refused} replies refused (${where()})`)
    // Requests are read a batch (64) at a time, with the handler between
    // batches, so a refusal pauses reading within that batch. The queue (16
    // replies) can empty again only as the client's read-ahead (64 at most)
    // takes replies: reading resumes 4 more times at most. Read on until the
    // ring is empty (about 500 requests), one resumption alone refuses more.
    assert.ok(refused <= 5 * 64, `${refused} replies refused: reading went on past a batch (${where()})`)
    const readWhilePaused = received
    assert.ok(readWhilePaused < sent, 'requests wait unread in the ring')
    // One reply taken moves the queue by one, and reading stays paused until
    // every queued reply has gone out: else each reply taken would have a
    // batch of requests read and most of their replies refused.
    assert.equal((await within(client.recv(), 10000, 'one reply')).length, chunk.length)
    await sleep(100)
    assert.equal(received, readWhilePaused, `one reply taken resumed reading (${where()})`)
    // Taking the replies empties the queue: the server reads the rest, and
    // every request gets its reply or a refusal (when replies outrun reads).
    let replies = 1
    await within(
      (async () => {
        while (replies + refused < sent) {
          try {
            assert.equal((await client.recv({ timeout: 200 })).length, chunk.length)
            replies += 1
          } catch (err) {
            if (err.code !== codes.TIMEOUT) throw err
          }
        }
      })(),
      30000,
      'the replies'
    )
    assert.equal(received, sent)
    // The connection works as before.
    await client.send('ping')
    assert.equal(String(await within(client.recv(), 10000, 'ping reply')), 'ping')
  } finally {
    await client.close()
    await server.close()
  }
})

test('handlers on both sides in two processes: quick replies and slow ones, none lost', T, async () => {
  // Between two cores a flowing stream looks at the ring for the next message
  // after its handler ran, and asks to be woken when a look runs out. Rounds
  // of quick replies with a slow one after each make both sides' looks find
  // and then miss; every message must still arrive, in order.
  const keypair = Keypair.generate()
  const name = uniqueName('flow')
  const server = createServer({ keypair })
  const connected = once(server, 'connection')
  server.listen(name)
  await once(server, 'listening')
  const child = runFixture('flow-echo.mjs', [name, keypair.publicKeyText], { timeout: 60000 })
  const [conn] = await within(connected, 30000, 'connection')
  const rounds = 20
  const quick = 50
  let sent = 0
  let received = 0
  const done = new Promise((resolve, reject) => {
    const next = () => {
      if (sent === rounds * (quick + 1)) return resolve(undefined)
      sent += 1
      const slow = sent % (quick + 1) === 0
      conn.send(Buffer.from(`${slow ? 'slow' : 'fast'} ${sent}`)).catch(reject)
    }
    conn.on('data', (data) => {
      received += 1
      const seq = String(data).split(' ')[1]
      if (seq !== String(received)) reject(new Error(`reply ${received} carried sequence number ${seq}`))
      else next()
    })
    next()
  })
  await within(done, 30000, `${rounds * (quick + 1)} replies`)
  await server.close()
  const { code, stderr } = await child
  assert.equal(code, 0, stderr)
})

test('maxConnections: a client beyond it is refused at its handshake; a freed place is taken again; setting it after listen takes effect', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('maxconn')
  assert.equal(createServer({ keypair }).maxConnections, Infinity)
  const server = createServer({ keypair, maxConnections: 2 })
  assert.equal(server.maxConnections, 2)
  const drops = collect(server, 'drop')
  const connections = collect(server, 'connection')
  const errors = collect(server, 'error')
  server.on('data', (conn, data) => conn.send(data))
  server.listen(name)
  const opts = { serverKey: keypair.publicKey }
  const connect = (what) => within(shm.Stream.connect(name, opts), 10000, `connect ${what}`)
  const refused = async (what) => {
    const err = await rejectsWith(connect(what), codes.RESOURCE_EXHAUSTED)
    assert.match(err.message, /the server is full/)
  }
  const echo = async (stream, text) => {
    await stream.send(text)
    return String(await within(stream.recv(), 10000, `echo of ${text}`))
  }
  const open = []
  try {
    const a = await connect('a')
    const b = await connect('b')
    open.push(a, b)
    assert.equal(await echo(a, 'a'), 'a')
    assert.equal(await echo(b, 'b'), 'b')
    assert.equal(server.connections.size, 2)

    // The third is refused at its handshake, saying why.
    await refused('c')
    assert.equal(connections.length, 2)
    assert.equal(server.connections.size, 2)

    // Once a closes, a new client gets a Connection (its place frees when the
    // server has closed its end: until then newcomers are refused).
    await a.close()
    let d = null
    for (let attempt = 1; d === null; attempt++) {
      assert.ok(attempt <= 200, 'no place came free after a client closed')
      try {
        d = await connect('d')
      } catch (err) {
        if (/** @type {any} */ (err).code !== codes.RESOURCE_EXHAUSTED) throw err
        await sleep(10)
      }
    }
    open.push(d)
    assert.equal(await echo(d, 'd'), 'd')
    assert.equal(connections.length, 3)
    assert.equal(server.connections.size, 2)

    // Raised after listen: one more fits.
    server.maxConnections = 3
    const e = await connect('e')
    open.push(e)
    assert.equal(await echo(e, 'e'), 'e')
    assert.equal(server.connections.size, 3)
    // Lowered below the connections there are: none is closed, newcomers are refused.
    server.maxConnections = 1
    await refused('f')
    for (const [s, text] of [[b, 'b2'], [d, 'd2'], [e, 'e2']]) assert.equal(await echo(s, text), text)
    assert.equal(connections.length, 4)
    assert.deepEqual(drops, [])
    // Each refused client was reported, as any refused client is.
    assert.ok(errors.length >= 2 && errors.every(([err]) => err.code === codes.RESOURCE_EXHAUSTED), String(errors))

    // Checked as net.Server's: a non-negative integer or Infinity.
    server.maxConnections = Infinity
    server.maxConnections = 0
    for (const bad of ['2', 1.5, NaN, true, {}]) {
      assert.throws(() => (server.maxConnections = bad), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG_TYPE')
      assert.throws(() => createServer({ keypair, maxConnections: bad }), (err) => err instanceof TypeError && err.code === 'ERR_INVALID_ARG_TYPE')
    }
    assert.throws(() => (server.maxConnections = -1), (err) => err.code === codes.INVALID_ARGUMENT)
    assert.throws(() => createServer({ keypair, maxConnections: -1 }), (err) => err.code === codes.INVALID_ARGUMENT)
    assert.equal(server.maxConnections, 0)
    // 0: every newcomer is refused (by the native bound of 1 while one is
    // connected, else closed at once with 'drop').
  } finally {
    await Promise.all(open.map((s) => s.close()))
    await server.close()
  }
})
