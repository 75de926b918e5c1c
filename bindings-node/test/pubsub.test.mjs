// Publish/subscribe: Publisher and Subscriber, in this process and across
// processes; slow subscribers under both policies; bad input; a killed
// publisher; closing.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'

import { newShmsockThreads, rejectsWith, runFixture, shm, sleep, threads, uniqueName, within } from './helpers.mjs'

const { Keypair, Publisher, Subscriber, codes } = shm
const T = { timeout: 60000 }

// Message i of a run: size sizes[i % len], bytes (i + 31 j + n) mod 256.
function message(i, sizes) {
  const n = sizes[i % sizes.length]
  const buf = Buffer.alloc(n)
  for (let j = 0; j < n; j++) buf[j] = (i + 31 * j + n) & 0xff
  return buf
}

test('subscribers in other processes receive every message byte for byte', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('fanout')
  const topic = Publisher.bind(name, { keypair, slots: 16, maxMessageSize: 65536 })
  try {
    const children = [1, 2, 3].map(() =>
      runFixture('pubsub-subscriber.mjs', [name, topic.publicKeyText], { timeout: 60000 })
    )
    await within(topic.waitForSubscribers(3, { timeout: 30000 }), 40000, 'three subscribers')
    assert.equal(topic.subscriberCount, 3)
    assert.equal(topic.subscribers().length, 3)
    const sizes = [0, 1, 64, 4096, 65536, 300]
    const hash = createHash('sha256')
    const count = 600
    for (let i = 0; i < count; i++) {
      const msg = message(i, sizes)
      const len = Buffer.alloc(4)
      len.writeUInt32LE(msg.length)
      hash.update(len)
      hash.update(msg)
      await topic.publish(msg)
    }
    assert.equal(topic.sequence, count)
    topic.close()
    const expected = `received ${count} sha256 ${hash.digest('hex')} lost 0`
    for (const r of await Promise.all(children)) {
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, new RegExp(expected))
    }
    assert.equal(topic.droppedCount, 0)
  } finally {
    topic.close()
  }
})

test('recvInto: a waiting receive gets the message in its buffer; one too small keeps it', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('into')
  const topic = Publisher.bind(name, { keypair, slots: 8, maxMessageSize: 4096 })
  const sub = await Subscriber.connect(name, { serverKey: keypair.publicKey })
  try {
    const buf = Buffer.alloc(4096)
    const waiting = sub.recvInto(buf, { timeout: 10000 })
    const big = message(7, [3000])
    await topic.publish(big)
    assert.equal(await waiting, big.length)
    assert.ok(buf.subarray(0, big.length).equals(big))
    await topic.publish(big)
    await rejectsWith(sub.recvInto(Buffer.alloc(16), { timeout: 10000 }), codes.BUFFER_TOO_SMALL)
    assert.ok((await sub.recv({ timeout: 10000 })).equals(big))
    assert.equal(sub.lost, 0)
    assert.throws(() => sub.recvInto('no'), (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE')
  } finally {
    sub.close()
    topic.close()
  }
})

test('a receive takes messages already published, waits when none is, and loses none either way', T, async () => {
  // A receive first looks at the ring without arming the fd (a zero timeout
  // after the core's spin), then arms it (try_recv) when nothing came: both
  // paths, alternating recv and recvInto, in order and byte for byte.
  const keypair = Keypair.generate()
  const name = uniqueName('lookfirst')
  const topic = Publisher.bind(name, { keypair, slots: 8, maxMessageSize: 8192 })
  const sub = await Subscriber.connect(name, { serverKey: keypair.publicKey })
  try {
    const sizes = [0, 1, 100, 8192]
    const buf = Buffer.alloc(8192)
    let i = 0
    const check = async (k) => {
      const want = message(k, sizes)
      if (k % 2 === 0) {
        assert.ok((await sub.recv({ timeout: 10000 })).equals(want), `message ${k}`)
      } else {
        const n = await sub.recvInto(buf, { timeout: 10000 })
        assert.ok(buf.subarray(0, n).equals(want), `message ${k}`)
      }
    }
    for (let round = 0; round < 20; round++) {
      // Already there: found by the look, nothing armed.
      for (let k = 0; k < 4; k++) await topic.publish(message(i + k, sizes))
      for (let k = 0; k < 4; k++) await check(i + k)
      i += 4
      // Not there yet: the receive arms the fd and is woken.
      const waiting = check(i)
      await sleep(1)
      await topic.publish(message(i, sizes))
      await waiting
      i += 1
    }
    assert.equal(sub.received, i)
    assert.equal(sub.lost, 0)
  } finally {
    sub.close()
    topic.close()
  }
})

test('subscribe waits for its topic on the JavaScript thread; AbortSignals on subscribe, recv and waitForSubscribers lose nothing', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('abort')
  // Already aborted: rejects at once, nothing is started.
  await assert.rejects(Subscriber.connect(name, { serverKey: keypair.publicKey, signal: AbortSignal.abort() }), (e) => e.code === 'ABORT_ERR')
  // Started before the topic exists: `wait` keeps trying until it is bound,
  // with no thread.
  const before = threads()
  const subscribing = Subscriber.connect(name, { serverKey: keypair.publicKey, wait: 20000 })
  await sleep(50)
  assert.deepEqual(newShmsockThreads(before), [], 'a thread waits for the topic')
  const topic = Publisher.bind(name, { keypair, slots: 8 })
  const sub = await within(subscribing, 25000, 'subscribe with wait')
  try {
    const ac = new AbortController()
    const waiting = topic.waitForSubscribers(2, { signal: ac.signal })
    ac.abort()
    await assert.rejects(waiting, (e) => e.code === 'ABORT_ERR')
    const ac2 = new AbortController()
    const pending = sub.recv({ signal: ac2.signal })
    ac2.abort()
    await assert.rejects(pending, (e) => e.code === 'ABORT_ERR')
    await topic.publish('kept')
    assert.equal(String(await sub.recv({ timeout: 10000 })), 'kept')
    assert.throws(() => sub.recv({ signal: 'no' }), (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE')
  } finally {
    sub.close()
    topic.close()
  }
})

test('a latest topic overwrites and the subscriber learns how many it lost', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('latest')
  const topic = shm.publish(name, { keypair, policy: 'latest', slots: 8 })
  const sub = await shm.subscribe(name, { serverKey: keypair.publicKey })
  try {
    assert.equal(topic.policy, 'latest')
    await topic.waitForSubscribers(1, { timeout: 10000 })
    // Nobody reads: publishing never waits, the ring overwrites.
    for (let i = 0; i < 100; i++) await topic.publish(`m${i}`)
    topic.close()
    const got = []
    for await (const msg of sub) got.push(msg.toString())
    assert.ok(sub.lost > 0, `lost ${sub.lost}`)
    assert.equal(got.length + sub.lost, 100)
    assert.equal(sub.received, got.length)
    // What arrives is the newest, in order, never a stale or torn message.
    assert.equal(got[got.length - 1], 'm99')
    const numbers = got.map((m) => Number(m.slice(1)))
    assert.deepEqual(numbers, [...numbers].sort((a, b) => a - b))
  } finally {
    sub.close()
    topic.close()
  }
})

test('a reliable topic drops a subscriber that does not read, after its timeout', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('reliable')
  const topic = shm.publish(name, { keypair, slots: 4, reliableTimeout: 200 })
  const idle = await shm.subscribe(name, { serverKey: keypair.publicKey })
  const reader = await shm.subscribe(name, { serverKey: keypair.publicKey })
  try {
    await topic.waitForSubscribers(2, { timeout: 10000 })
    const got = []
    const reading = (async () => {
      for await (const msg of reader) got.push(msg.toString())
    })()
    for (let i = 0; i < 20; i++) await within(topic.publish(`m${i}`), 20000, `publish ${i}`)
    assert.equal(topic.droppedCount, 1)
    assert.equal(topic.subscriberCount, 1)
    assert.ok(topic.epoch >= 2, 'the key was rotated when the idle subscriber was dropped')
    const err = await rejectsWith(within(idle.recv(), 10000, 'recv of the dropped subscriber'), codes.PEER_CLOSED)
    assert.match(err.message, /fell behind/)
    topic.close()
    await within(reading, 10000, 'reader')
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `m${i}`))
  } finally {
    idle.close()
    reader.close()
    topic.close()
  }
})

test("'message' events deliver every message, then 'close'", T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('events')
  const topic = shm.publish(name, { keypair })
  const sub = await shm.subscribe(name, { serverKey: keypair.publicKey })
  try {
    const got = []
    const closed = new Promise((resolve) => sub.on('close', resolve))
    sub.on('message', (m) => got.push(m.toString()))
    await topic.waitForSubscribers(1, { timeout: 10000 })
    for (let i = 0; i < 200; i++) await topic.publish(`e${i}`)
    topic.close()
    assert.equal(await within(closed, 10000, "'close'"), null)
    assert.deepEqual(got, Array.from({ length: 200 }, (_, i) => `e${i}`))
    await rejectsWith(sub.recv(), codes.CLOSED)
  } finally {
    sub.close()
    topic.close()
  }
})

test('subscribing with the wrong publisher key fails with a code', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('wrongkey')
  const topic = shm.publish(name, { keypair })
  try {
    await rejectsWith(shm.subscribe(name, { serverKey: Keypair.generate().publicKey }), codes.SERVER_KEY_MISMATCH)
    await rejectsWith(shm.subscribe(uniqueName('absent'), { serverKey: keypair.publicKey }), codes.NOT_FOUND)
    assert.equal(topic.subscriberCount, 0)
  } finally {
    topic.close()
  }
})

test('an oversized publish is refused with a clear error and the topic stays usable', T, async () => {
  for (const policy of ['reliable', 'latest']) {
    const keypair = Keypair.generate()
    const name = uniqueName('big')
    const topic = shm.publish(name, { keypair, policy, maxMessageSize: 1024 })
    const sub = await shm.subscribe(name, { serverKey: keypair.publicKey })
    try {
      await topic.waitForSubscribers(1, { timeout: 10000 })
      const err = await rejectsWith(topic.publish(Buffer.alloc(1025)), codes.MESSAGE_TOO_LARGE)
      assert.match(err.message, /1025 bytes/)
      await topic.publish(Buffer.alloc(1024, 7))
      const msg = await within(sub.recv(), 10000, 'recv')
      assert.deepEqual(msg, Buffer.alloc(1024, 7))
      assert.equal(topic.sequence, 1)
    } finally {
      sub.close()
      topic.close()
    }
  }
})

test('a SIGKILLed publisher makes pending and later receives reject with PEER_GONE', T, async () => {
  const name = uniqueName('killed')
  let sub
  const child = runFixture('pubsub-publisher.mjs', [name], {
    timeout: 30000,
    onStdout: async (text, proc) => {
      const m = /ready (\S+)/.exec(text)
      if (m) {
        try {
          sub = await shm.subscribe(name, { serverKey: m[1] })
          assert.deepEqual(await within(sub.recv(), 20000, 'first message'), Buffer.from('first'))
          // A receive pending when the publisher dies.
          sub.pendingRecv = sub.recv()
          sub.pendingRecv.catch(() => {})
          proc.kill('SIGKILL')
        } catch (err) {
          proc.kill('SIGKILL')
          sub = err
        }
      }
    },
  })
  const r = await child
  assert.equal(r.signal, 'SIGKILL', r.stderr)
  if (sub instanceof Error) throw sub
  await rejectsWith(within(sub.pendingRecv, 20000, 'pending recv'), codes.PEER_GONE)
  await rejectsWith(sub.recv(), codes.PEER_GONE)
  sub.close()
})

test('closing twice is fine; closed objects refuse with SHMSOCK_CLOSED', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('twice')
  const topic = shm.publish(name, { keypair })
  const sub = await shm.subscribe(name, { serverKey: keypair.publicKey })
  const pending = sub.recv()
  sub.close()
  sub.close()
  await rejectsWith(pending, codes.CLOSED)
  await rejectsWith(sub.recv(), codes.CLOSED)
  assert.equal(sub.closed, true)
  topic.close()
  topic.close()
  assert.equal(topic.closed, true)
  await rejectsWith(topic.publish('x'), codes.CLOSED)
  await rejectsWith(topic.waitForSubscribers(1), codes.CLOSED)
  assert.throws(() => topic.rotateKey(), { code: codes.CLOSED })
  // The name is free again.
  shm.publish(name, { keypair }).close()
})

test('a pending reliable publish rejects with SHMSOCK_CLOSED when the topic closes', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('pending')
  const topic = shm.publish(name, { keypair, slots: 2, reliableTimeout: 60000 })
  const idle = await shm.subscribe(name, { serverKey: keypair.publicKey })
  try {
    await topic.waitForSubscribers(1, { timeout: 10000 })
    await topic.publish('a')
    await topic.publish('b')
    // The ring is full and the subscriber does not read: this one waits.
    const waiting = topic.publish('c')
    await sleep(50)
    topic.close()
    await rejectsWith(within(waiting, 10000, 'pending publish'), codes.CLOSED)
  } finally {
    idle.close()
    topic.close()
  }
})

test('a full reliable topic publishes as soon as a subscriber reads, in order', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('full')
  const topic = shm.publish(name, { keypair, slots: 2, reliableTimeout: 60000 })
  const sub = await shm.subscribe(name, { serverKey: keypair.publicKey })
  try {
    await topic.waitForSubscribers(1, { timeout: 10000 })
    await topic.publish('a')
    await topic.publish('b')
    let done = 0
    const waiting = [topic.publish('c').then(() => done++), topic.publish('d').then(() => done++)]
    await sleep(50)
    assert.equal(done, 0, 'the ring is full: both wait')
    assert.equal(topic.sequence, 2)
    // Each message the subscriber takes frees a slot: the waiting ones go in.
    const got = []
    for (let i = 0; i < 4; i++) got.push(String(await within(sub.recv(), 10000, `recv ${i}`)))
    await within(Promise.all(waiting), 10000, 'the waiting publishes')
    assert.deepEqual(got, ['a', 'b', 'c', 'd'])
    assert.equal(topic.droppedCount, 0)
  } finally {
    sub.close()
    topic.close()
  }
})

test('publisher details, removal and key rotation', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('details')
  const topic = shm.publish(name, { keypair, rekeyInterval: false })
  const subKeys = Keypair.generate()
  const sub = await shm.subscribe(name, { serverKey: keypair.publicKeyText, keypair: subKeys })
  try {
    await topic.waitForSubscribers(1, { timeout: 10000 })
    assert.deepEqual(sub.publisherPublicKey, keypair.publicKey)
    assert.equal(sub.publisherFingerprint, keypair.fingerprint)
    assert.equal(sub.cipher, topic.cipher)
    assert.equal(topic.topic, name)
    const [info] = topic.subscribers()
    assert.deepEqual(info.publicKey, subKeys.publicKey)
    assert.equal(info.credentials.pid, process.pid)
    const epoch = topic.epoch
    topic.rotateKey()
    assert.equal(topic.epoch, epoch + 1)
    await topic.publish('after rotation')
    assert.equal((await within(sub.recv(), 10000, 'recv')).toString(), 'after rotation')
    assert.equal(sub.epoch, epoch + 1)
    topic.remove(info.id)
    assert.equal(topic.subscriberCount, 0)
    await rejectsWith(within(sub.recv(), 10000, 'recv after removal'), codes.PEER_CLOSED)
    assert.throws(() => topic.remove(info.id), { code: codes.NOT_FOUND })
  } finally {
    sub.close()
    topic.close()
  }
})

test('bad arguments get TypeError or a code', T, async () => {
  const keypair = Keypair.generate()
  assert.throws(() => shm.publish(uniqueName('bad'), {}), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => shm.publish(42, { keypair }), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => shm.publish(uniqueName('bad'), { keypair, policy: 'fast' }), { code: 'ERR_INVALID_ARG_TYPE' })
  assert.throws(() => shm.publish(uniqueName('bad'), { keypair, slots: 3 }), { code: codes.INVALID_ARGUMENT })
  await assert.rejects(shm.subscribe(uniqueName('bad'), {}), { code: codes.INVALID_ARGUMENT })
  const name = uniqueName('busy')
  const topic = shm.publish(name, { keypair })
  try {
    assert.throws(() => shm.publish(name, { keypair }), { code: codes.ADDRESS_IN_USE })
    assert.throws(() => topic.publish(42), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => topic.waitForSubscribers(-1), { code: 'ERR_INVALID_ARG_TYPE' })
    await rejectsWith(topic.waitForSubscribers(1, { timeout: 0 }), codes.TIMEOUT)
  } finally {
    topic.close()
  }
})

test('maxPendingHandshakes(PerUid) of a topic: wrong types are TypeErrors, 0 or less SHMSOCK_INVALID_ARGUMENT; a topic with them serves subscribers', T, async () => {
  const keypair = Keypair.generate()
  for (const option of ['maxPendingHandshakes', 'maxPendingHandshakesPerUid']) {
    for (const bad of ['8', 1.5, NaN, true, {}]) {
      assert.throws(() => Publisher.bind(uniqueName('tmph'), { keypair, [option]: bad }), (e) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE')
      assert.throws(() => shm.publish(uniqueName('tmph'), { keypair, [option]: bad }), { code: 'ERR_INVALID_ARG_TYPE' })
    }
    for (const bad of [0, -3]) {
      assert.throws(() => Publisher.bind(uniqueName('tmph'), { keypair, [option]: bad }), { code: codes.INVALID_ARGUMENT })
    }
  }
  for (const options of [{ maxPendingHandshakes: 1 }, { maxPendingHandshakesPerUid: 1 }, { maxPendingHandshakes: 2, maxPendingHandshakesPerUid: 1 }]) {
    const name = uniqueName('tmph')
    const topic = Publisher.bind(name, { keypair, ...options })
    const subs = []
    try {
      // One after another: each subscribe's handshake ends before the next begins.
      for (let i = 0; i < 3; i++) subs.push(await within(Subscriber.connect(name, { serverKey: keypair.publicKey }), 10000, `subscriber ${i + 1}`))
      await within(topic.waitForSubscribers(3, { timeout: 10000 }), 15000, 'three subscribers')
      await topic.publish('to all')
      for (const sub of subs) assert.equal(String(await sub.recv({ timeout: 10000 })), 'to all')
    } finally {
      for (const sub of subs) sub.close()
      topic.close()
    }
  }
})

test('a closed subscriber does not keep the process alive', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('exit')
  const topic = shm.publish(name, { keypair })
  try {
    for (const mode of ['recv', 'events']) {
      const r = await runFixture('pubsub-exit.mjs', [name, topic.publicKeyText, mode], { timeout: 30000 })
      assert.equal(r.code, 0, r.stderr)
      assert.match(r.stdout, mode === 'recv' ? /recv SHMSOCK_CLOSED/ : /close null/)
    }
  } finally {
    topic.close()
  }
})

test('waitForSubscribers waits on the JavaScript thread: a timeout, then the subscribers it waits for, then a close', T, async () => {
  const keypair = Keypair.generate()
  const name = uniqueName('members')
  const topic = Publisher.bind(name, { keypair, slots: 8 })
  const subs = []
  try {
    const before = threads()
    await rejectsWith(topic.waitForSubscribers(1, { timeout: 50 }), codes.TIMEOUT)
    const two = topic.waitForSubscribers(2, { timeout: 30000 })
    assert.deepEqual(newShmsockThreads(before), [], 'a thread waits for subscribers')
    subs.push(await Subscriber.connect(name, { serverKey: keypair.publicKey }))
    await sleep(50)
    subs.push(await Subscriber.connect(name, { serverKey: keypair.publicKey }))
    await within(two, 30000, 'two subscribers')
    assert.equal(topic.subscriberCount, 2)
    await topic.waitForSubscribers(0)
    const three = topic.waitForSubscribers(3)
    topic.close()
    await rejectsWith(three, codes.CLOSED)
  } finally {
    for (const s of subs) s.close()
    topic.close()
  }
})
