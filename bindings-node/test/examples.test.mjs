// The example programs of examples/node, run as a user would, in child processes.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

import { root, shm, sleep, uniqueName, within } from './helpers.mjs'

const examples = join(root, '..', 'examples', 'node')

// `npm install` in examples/node links the package there; do the same if it
// has not been run, so the examples import 'shmsock' as users do.
function ensureLinked() {
  const link = join(examples, 'node_modules', 'shmsock')
  let present = false
  try {
    lstatSync(link)
    present = true
  } catch {}
  if (!present) {
    mkdirSync(join(examples, 'node_modules'), { recursive: true })
    symlinkSync(join('..', '..', '..', 'bindings-node'), link, 'dir')
  }
}

function start(script, args) {
  const child = spawn(process.execPath, [join(examples, script), ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  child.out = ''
  child.err = ''
  child.stdout.on('data', (d) => (child.out += d))
  child.stderr.on('data', (d) => (child.err += d))
  child.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  return child
}

async function waitFor(child, pattern, ms = 20000) {
  const started = Date.now()
  while (!pattern.test(child.out)) {
    if (Date.now() - started > ms) throw new Error(`no ${pattern} within ${ms} ms; stdout: ${child.out} stderr: ${child.err}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

test('producer_consumer: the consumer counts what producers send', { timeout: 120000 }, async () => {
  ensureLinked()
  const dir = mkdtempSync(join(tmpdir(), 'shmsock-ex-'))
  const name = uniqueName('orders')
  const consumer = start('producer_consumer/producer_consumer.mjs', [name, join(dir, 'consumer.key')])
  try {
    await waitFor(consumer, /consumer on '.*', key shmsock-pk:/)
    const key = consumer.out.match(/key (shmsock-pk:\S+)/)[1]
    const producer = start('producer_consumer/producer_consumer.mjs', ['-p', name, join(dir, 'consumer.key'), '3000'])
    assert.deepEqual(await within(producer.exited, 60000, 'producer'), { code: 0, signal: null }, producer.err)
    assert.match(producer.out, /produced 3000 messages/)
    const second = start('producer_consumer/producer_consumer.mjs', ['-p', name, key, '2000'])
    assert.equal((await within(second.exited, 60000, 'producer')).code, 0, second.err)
    await waitFor(consumer, /consumed 5k messages/)
    assert.match(consumer.out, /consumed 1k messages\nconsumed 2k messages\nconsumed 3k messages/)
    const wrong = start('producer_consumer/producer_consumer.mjs', ['-p', name, shm.Keypair.generate().publicKeyText, '10'])
    const r = await within(wrong.exited, 30000, 'wrong producer')
    assert.equal(r.code, 1)
    assert.match(wrong.err, /SHMSOCK_SERVER_KEY_MISMATCH/)
    consumer.kill('SIGTERM')
    assert.equal((await within(consumer.exited, 10000, 'consumer exit')).code, 0, consumer.err)
  } finally {
    consumer.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
})

test('echo: the server sends every message back', { timeout: 120000 }, async () => {
  ensureLinked()
  const dir = mkdtempSync(join(tmpdir(), 'shmsock-ex-'))
  const name = uniqueName('echo')
  const server = start('echo/echo_server.mjs', [name, join(dir, 'echo.key')])
  try {
    await waitFor(server, /serving '.*' as shmsock-pk:/)
    const client = start('echo/echo_client.mjs', [name, join(dir, 'echo.key'), 'hello', 'shared memory'])
    assert.equal((await within(client.exited, 30000, 'client')).code, 0, client.err)
    assert.equal(client.out, 'hello\nshared memory\n')
    await waitFor(server, /client 1 connected \([0-9a-f:]+\)\nclient 1 left/)
    server.kill('SIGINT')
    assert.equal((await within(server.exited, 10000, 'server exit')).code, 0, server.err)
  } finally {
    server.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
})

test('pubsub: the scenario of examples/run_examples.sh, as for C and Rust', { timeout: 120000 }, async () => {
  ensureLinked()
  const script = join(root, '..', 'examples', 'run_examples.sh')
  const child = spawn('sh', [script, 'pubsub', process.execPath, join(examples, 'pubsub', 'pubsub.mjs')], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  child.stdout.on('data', (d) => (out += d))
  child.stderr.on('data', (d) => (out += d))
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  try {
    assert.deepEqual(await within(exited, 100000, 'run_examples.sh pubsub'), { code: 0, signal: null }, out)
    assert.match(out, /received 3000 messages, lost 0\nreceived 3000 messages, lost 0\nok: example pubsub/)
  } finally {
    child.kill('SIGKILL')
  }
})

test('echo: a client that never reads its replies costs the server a bounded queue, and others are served', { timeout: 120000 }, async () => {
  ensureLinked()
  const dir = mkdtempSync(join(tmpdir(), 'shmsock-ex-'))
  const name = uniqueName('echo-deaf')
  const server = start('echo/echo_server.mjs', [name, join(dir, 'echo.key')])
  let deaf
  try {
    await waitFor(server, /serving '.*' as (shmsock-pk:\S+)/)
    const key = server.out.match(/as (shmsock-pk:\S+)/)[1]
    // Requests whose replies are never read, until the server drops one: more
    // than the reply ring (64 KiB), this side's read-ahead (1 MiB) and the
    // connection's queue (1 MiB) hold. (The server then stops reading this
    // client, whose sends find its ring full from then on.) trySend: a
    // waiting send would make this side drain its receive side (one
    // descriptor carries both directions' wake-ups).
    deaf = await within(shm.Stream.connect(name, { serverKey: key }), 10000, 'connect')
    const chunk = Buffer.alloc(16384, 1)
    const dropped = /echo to client 1 dropped: .*not reading/
    await within(
      (async () => {
        while (!dropped.test(server.err)) {
          if (!deaf.trySend(chunk)) await sleep(5)
        }
      })(),
      60000,
      'a dropped reply'
    )
    // The server still serves everyone else.
    const client = start('echo/echo_client.mjs', [name, key, 'still here'])
    assert.equal((await within(client.exited, 30000, 'client')).code, 0, client.err)
    assert.equal(client.out, 'still here\n')
    server.kill('SIGINT')
    assert.equal((await within(server.exited, 20000, 'server exit')).code, 0, server.err)
  } finally {
    if (deaf) await deaf.close()
    server.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
})
