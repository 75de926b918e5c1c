// The event loop: never blocked, not kept alive by shmsock unless something is
// pending or a Server/Client is open; waiting costs no thread; garbage-collected
// streams are released.
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

import { pair, runFixture, shm, sleep, within } from './helpers.mjs'

const T = { timeout: 90000 }

test('a timer keeps firing while receives are pending', T, async () => {
  const pairs = await Promise.all(Array.from({ length: 8 }, () => pair({ prefix: 'timer' })))
  const pending = pairs.map((p) => p.server.recv().catch((e) => e))
  let ticks = 0
  const timer = setInterval(() => ticks++, 10)
  const started = Date.now()
  await sleep(500)
  clearInterval(timer)
  const elapsed = Date.now() - started
  // 10 ms ticks over ~500 ms: at least a third of them, however loaded the machine.
  assert.ok(ticks >= elapsed / 30, `only ${ticks} ticks in ${elapsed} ms`)
  await Promise.all(pairs.map((p) => p.client.send('done')))
  assert.deepEqual((await within(Promise.all(pending), 5000, 'receives')).map(String), pairs.map(() => 'done'))
  await Promise.all(pairs.map((p) => p.close()))
})

test('with receives pending on 64 connections, fs.promises.readFile completes', T, async () => {
  const pairs = []
  for (let i = 0; i < 64; i++) pairs.push(await pair({ prefix: 'fs' }))
  const pending = pairs.map((p) => p.server.recv().catch((e) => e))
  const file = join(tmpdir(), `shmsock-readfile-${process.pid}`)
  await writeFile(file, Buffer.alloc(1 << 20, 1))
  // Several reads at once: more than libuv's 4 pool threads.
  const started = Date.now()
  const reads = await within(Promise.all(Array.from({ length: 8 }, () => readFile(file))), 5000, 'readFile')
  assert.ok(reads.every((b) => b.length === 1 << 20))
  const ms = Date.now() - started
  assert.ok(ms < 5000, `readFile took ${ms} ms`)
  assert.equal(shm._internals.pending(), 64, 'the 64 receives are pending')
  await Promise.all(pairs.map((p, i) => p.client.send(`m${i}`)))
  const got = await within(Promise.all(pending), 10000, 'receives')
  assert.deepEqual(got.map(String), pairs.map((_, i) => `m${i}`))
  await Promise.all(pairs.map((p) => p.close()))
})

const threads = () => Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))[1])

test('pending receives and sends cost no thread', T, async () => {
  const pairs = []
  for (let i = 0; i < 16; i++) pairs.push(await pair({ prefix: 'threads', server: { ringSize: 4096 } }))
  // Let the connect and handshake threads finish and exit.
  await sleep(300)
  const before = threads()
  const recvs = pairs.map((p) => p.client.recv())
  // Each server fills its 4 KiB ring and has one send waiting for space.
  const sends = pairs.map((p) => Promise.all(Array.from({ length: 4 }, () => p.server.send(Buffer.alloc(3000)))))
  await sleep(100)
  assert.equal(threads(), before, 'no thread was started for the waiting operations')
  await Promise.all(pairs.map((p) => p.server.send('wake')))
  const got = await within(Promise.all(recvs), 10000, 'receives')
  assert.ok(got.every((m) => m.length === 3000))
  for (const p of pairs) for (let i = 0; i < 4; i++) await p.client.recv()
  await within(Promise.all(sends), 10000, 'sends')
  await Promise.all(pairs.map((p) => p.close()))
})

test('a process that closes everything exits by itself', T, async () => {
  const r = await runFixture('open-close-all.mjs', [], { timeout: 30000 })
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /closed; active: 0; pending: 0/)
})

test('an open Server keeps the process alive until it is closed', T, async () => {
  const r = await runFixture('server-keeps-alive.mjs', ['700'], { timeout: 30000 })
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /closed after \d+ ms/)
  assert.ok(r.ms >= 700, `exited after ${r.ms} ms, before the server was closed`)
})

test('a pending receive keeps the process alive until it completes', T, async () => {
  const r = await runFixture('recv-keeps-alive.mjs', [], { timeout: 30000 })
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /received: late message/)
})

test('streams garbage-collected without close() are released', T, async () => {
  const r = await runFixture('gc-stream.mjs', [], { nodeArgs: ['--expose-gc'], timeout: 60000 })
  assert.equal(r.code, 0, r.stderr)
  const { before, during, collected, after, ends } = JSON.parse(r.stdout.trim().split('\n').pop())
  assert.equal(during.streams, before.streams + 40)
  assert.equal(collected.streams, before.streams + 20, 'the 20 dropped clients were freed')
  assert.ok(collected.fds < during.fds, `fds: ${during.fds} with the clients, ${collected.fds} after collecting them`)
  assert.equal(after.streams, before.streams, 'every stream was freed')
  assert.ok(after.fds <= before.fds + 2, `fds: ${before.fds} before, ${after.fds} after`)
  // The dropped clients were closed cleanly by the garbage collector.
  assert.deepEqual(ends, ['SHMSOCK_PEER_CLOSED'])
})
