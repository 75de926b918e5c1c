// The Node.js interop agent: keygen, pubkey, an echo server and a checking
// client, a publisher and a checking subscriber, on the `shmsock` Node package only (bindings-node, loaded as an
// installed package would be).
//
// The command line, output lines and exit codes are the contract in
// tests/interop/README.md ("The agent command line"). Run it with ./agent
// (build the package with ./build.sh).
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { Keypair, Publisher, Stream, Subscriber, createServer, fingerprint, parsePublicKey } = require('../../../../bindings-node')

const EXIT_OK = 0
const EXIT_VERIFY = 1
const EXIT_USAGE = 2
const EXIT_SHMSOCK = 3
const CIPHERS = ['aegis-128l', 'chacha20-poly1305']
const BACKENDS = ['memfd', 'named']
const INVERSE_31 = 223 // 31 * 223 = 1 (mod 256)

const USAGE = `usage: agent keygen FILE
       agent pubkey FILE
       agent serve --name NAME --key FILE [--allow PUBLIC]... [--backend memfd|named]
       agent client --name NAME --server-key PUBLIC [--key FILE] [--cipher ${CIPHERS.join('|')}]
                    [--ring-size BYTES] [--sizes LIST] [--seconds S] [--timeout S]
       agent publish --name NAME --key FILE [--count N] [--sizes LIST] [--subscribers K] [--timeout S]
                     [--cipher ${CIPHERS.join('|')}]
       agent subscribe --name NAME --server-key PUBLIC [--key FILE] [--count N] [--sizes LIST] [--timeout S]
                       [--cipher ${CIPHERS.join('|')}]`

class UsageError extends Error {}

// Writes to stdout are synchronous for files and pipes on Linux: each line is out at once.
const out = (line) => process.stdout.write(`${line}\n`)

// ------------------------------------------------------------------ arguments

function parse(argv) {
  const [command, ...rest] = argv
  const specs = {
    keygen: { options: {}, positionals: 1 },
    pubkey: { options: {}, positionals: 1 },
    serve: {
      options: { name: { type: 'string' }, key: { type: 'string' }, allow: { type: 'string', multiple: true }, backend: { type: 'string' } },
      required: ['name', 'key'],
      positionals: 0,
    },
    client: {
      options: {
        name: { type: 'string' },
        'server-key': { type: 'string' },
        key: { type: 'string' },
        cipher: { type: 'string' },
        'ring-size': { type: 'string' },
        sizes: { type: 'string' },
        seconds: { type: 'string' },
        timeout: { type: 'string' },
      },
      required: ['name', 'server-key'],
      positionals: 0,
    },
    publish: {
      options: {
        name: { type: 'string' },
        key: { type: 'string' },
        count: { type: 'string' },
        sizes: { type: 'string' },
        subscribers: { type: 'string' },
        timeout: { type: 'string' },
        cipher: { type: 'string' },
      },
      required: ['name', 'key'],
      positionals: 0,
    },
    subscribe: {
      options: {
        name: { type: 'string' },
        'server-key': { type: 'string' },
        key: { type: 'string' },
        count: { type: 'string' },
        sizes: { type: 'string' },
        timeout: { type: 'string' },
        cipher: { type: 'string' },
      },
      required: ['name', 'server-key'],
      positionals: 0,
    },
  }
  const spec = specs[command]
  if (!spec) throw new UsageError(command === undefined ? 'missing command' : `unknown command '${command}'`)
  let parsed
  try {
    parsed = parseArgs({ args: rest, options: spec.options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError(err.message)
  }
  const { values, positionals } = parsed
  if (positionals.length !== spec.positionals) throw new UsageError(`${command} takes ${spec.positionals} argument(s), got ${positionals.length}`)
  for (const name of spec.required ?? []) {
    if (values[name] === undefined) throw new UsageError(`${command} needs --${name}`)
  }
  return { command, file: positionals[0], ...values }
}

function choice(value, allowed, option) {
  if (value === undefined) return allowed[0]
  if (!allowed.includes(value)) throw new UsageError(`--${option} must be one of ${allowed.join(', ')}, not '${value}'`)
  return value
}

function integer(text, option) {
  if (!/^[0-9]+$/.test(text)) throw new UsageError(`--${option}: not a non-negative integer: '${text}'`)
  return Number(text)
}

function seconds(text, option) {
  const value = /^\s*$/.test(text) ? NaN : Number(text)
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`--${option}: not a positive number of seconds: '${text}'`)
  return value
}

// ------------------------------------------------------------------ keys

function keygen(file) {
  const keypair = Keypair.generate()
  keypair.save(file)
  out(`public ${keypair.publicKeyText}`)
}

function pubkey(file) {
  const keypair = Keypair.load(file)
  out(`public ${keypair.publicKeyText} ${keypair.fingerprint}`)
}

// ------------------------------------------------------------------ server

function serve(args) {
  const backend = choice(args.backend, BACKENDS, 'backend')
  const keypair = Keypair.load(args.key)
  const server = createServer({ keypair, backend, allowedClients: args.allow })
  server.on('connection', (conn) => out(`connect ${conn.stream.peerFingerprint} ${conn.stream.cipher}`))
  server.on('data', (conn, data) => {
    conn.send(data).catch(() => {}) // a failing connection reports through 'close'
  })
  server.on('close', (conn, reason) => {
    const { messagesReceived, bytesReceived } = conn.stats
    if (reason) console.error(`client ${conn.stream.peerFingerprint}: ${reason.code}: ${reason.message}`)
    out(`close ${conn.stream.peerFingerprint} ${messagesReceived} ${bytesReceived}`)
  })
  server.on('error', (err, conn) => {
    if (conn) return // the 'close' that follows reports it
    if (typeof err.code === 'string' && err.code.startsWith('SHMSOCK_')) out(`reject ${code(err)}`)
    else console.error(`server: ${err.stack ?? err}`)
  })
  server.listen(args.name, () => out(`ready ${args.name} ${keypair.publicKeyText} ${keypair.fingerprint}`))

  let stopping = false
  const stop = async () => {
    if (stopping) return
    stopping = true
    process.stdin.destroy()
    await server.close()
    process.removeListener('SIGTERM', stop)
    process.removeListener('SIGINT', stop)
    // Nothing is left to keep the event loop alive: the process ends with 0.
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
  process.stdin.on('data', () => {})
  process.stdin.on('end', stop)
  process.stdin.on('error', stop)
}

// ------------------------------------------------------------------ client

// Message i of size n: byte j is (i + 31*j + n) mod 256. Every message is a
// slice of one pattern p[k] = 31*k mod 256, starting where 31*k = i + n.
function messages(sizes) {
  const pattern = Buffer.alloc(Math.max(...sizes) + 256)
  for (let k = 0; k < pattern.length; k++) pattern[k] = (31 * k) % 256
  return (i) => {
    const n = sizes[i % sizes.length]
    const start = ((i + n) * INVERSE_31) % 256
    return pattern.subarray(start, start + n)
  }
}

function difference(got, expected) {
  if (got.length !== expected.length) return `received ${got.length} bytes`
  let j = 0
  while (got[j] === expected[j]) j++
  return `byte ${j} is ${got[j]}, expected ${expected[j]}`
}

function mismatch(message) {
  console.error(`mismatch: ${message}`)
  return EXIT_VERIFY
}

async function client(args) {
  const cipher = choice(args.cipher, CIPHERS, 'cipher')
  const ringSize = args['ring-size'] === undefined ? undefined : integer(args['ring-size'], 'ring-size')
  const sizes = (args.sizes ?? '0,1,64,65536,262144').split(',').map((s) => integer(s, 'sizes'))
  const duration = args.seconds === undefined ? undefined : seconds(args.seconds, 'seconds')
  const timeout = args.timeout === undefined ? 10 : seconds(args.timeout, 'timeout')
  const serverKey = parsePublicKey(args['server-key'])
  const keypair = args.key === undefined ? undefined : Keypair.load(args.key)
  const message = messages(sizes)

  const stream = await Stream.connect(args.name, {
    serverKey,
    keypair,
    ringSize,
    recvTimeout: timeout * 1000,
    requireChacha: cipher === 'chacha20-poly1305',
  })
  try {
    if (!stream.peerPublicKey.equals(serverKey)) return mismatch(`server key is ${stream.peerPublicKeyText}, expected ${args['server-key']}`)
    if (stream.cipher !== cipher) return mismatch(`cipher is ${stream.cipher}, expected ${cipher}`)
    const start = performance.now()
    const elapsed = () => (performance.now() - start) / 1000
    let nextProgress = 1
    let i = 0
    let total = 0
    while (duration === undefined ? i < sizes.length : elapsed() < duration) {
      const sent = message(i)
      await stream.send(sent)
      const reply = await stream.recv()
      if (!reply.equals(sent)) return mismatch(`message ${i} (${sent.length} B): ${difference(reply, sent)}`)
      i++
      total += sent.length
      if (duration !== undefined && elapsed() >= nextProgress) {
        nextProgress++
        out(`progress ${i} ${total} ${elapsed().toFixed(3)}`)
      }
    }
    const took = elapsed()
    const used = stream.cipher
    const clientKey = stream.localPublicKey
    await stream.close()
    out(`ok cipher=${used} server=${fingerprint(serverKey)} client=${fingerprint(clientKey)} messages=${i} bytes=${total} seconds=${took.toFixed(3)}`)
    return EXIT_OK
  } finally {
    await stream.close()
  }
}

// ------------------------------------------------------------------ publish/subscribe

// The topic's defaults: 64 slots of 64 KiB, so no default size is larger.
const TOPIC_SIZES = '0,1,64,4096,65536'

async function publish(args) {
  const cipher = choice(args.cipher, CIPHERS, 'cipher')
  const count = args.count === undefined ? 100 : integer(args.count, 'count')
  const sizes = (args.sizes ?? TOPIC_SIZES).split(',').map((s) => integer(s, 'sizes'))
  const subscribers = args.subscribers === undefined ? 1 : integer(args.subscribers, 'subscribers')
  const timeout = args.timeout === undefined ? 10 : seconds(args.timeout, 'timeout')
  const keypair = Keypair.load(args.key)
  const message = messages(sizes)
  // Reliable, 64 slots of 64 KiB: the package's defaults.
  const topic = Publisher.bind(args.name, { keypair, requireChacha: cipher === 'chacha20-poly1305' })
  try {
    out(`ready ${args.name} ${keypair.publicKeyText} ${keypair.fingerprint}`)
    await topic.waitForSubscribers(subscribers, { timeout: timeout * 1000 })
    let total = 0
    for (let i = 0; i < count; i++) {
      const m = message(i)
      await topic.publish(m)
      total += m.length
    }
    out(`published messages=${count} bytes=${total}`)
    return EXIT_OK
  } finally {
    // Subscribers receive everything published before the end of the topic.
    topic.close()
  }
}

async function subscribe(args) {
  const cipher = choice(args.cipher, CIPHERS, 'cipher')
  const count = args.count === undefined ? 100 : integer(args.count, 'count')
  const sizes = (args.sizes ?? TOPIC_SIZES).split(',').map((s) => integer(s, 'sizes'))
  const timeout = args.timeout === undefined ? 10 : seconds(args.timeout, 'timeout')
  const serverKey = parsePublicKey(args['server-key'])
  const keypair = args.key === undefined ? undefined : Keypair.load(args.key)
  const message = messages(sizes)
  const sub = await Subscriber.connect(args.name, {
    serverKey,
    keypair,
    recvTimeout: timeout * 1000,
    requireChacha: cipher === 'chacha20-poly1305',
  })
  try {
    if (!sub.publisherPublicKey.equals(serverKey)) return mismatch(`publisher key is ${sub.publisherPublicKeyText}, expected ${args['server-key']}`)
    if (sub.cipher !== cipher) return mismatch(`cipher is ${sub.cipher}, expected ${cipher}`)
    out(`subscribed ${sub.publisherFingerprint} ${sub.cipher}`)
    let total = 0
    for (let i = 0; i < count; i++) {
      const got = await sub.recv()
      if (sub.lost !== 0) return mismatch(`lost ${sub.lost} messages`)
      const expected = message(i)
      if (!got.equals(expected)) return mismatch(`message ${i} (${expected.length} B): ${difference(got, expected)}`)
      total += got.length
    }
    out(`ok cipher=${sub.cipher} publisher=${sub.publisherFingerprint} messages=${count} bytes=${total} lost=0`)
    return EXIT_OK
  } finally {
    sub.close()
  }
}

// ------------------------------------------------------------------ main

const code = (err) => err.code.replace(/^SHMSOCK_/, '')

async function main(argv) {
  try {
    const args = parse(argv)
    switch (args.command) {
      case 'keygen':
        keygen(args.file)
        return EXIT_OK
      case 'pubkey':
        pubkey(args.file)
        return EXIT_OK
      case 'serve':
        serve(args)
        return undefined
      case 'publish':
        return await publish(args)
      case 'subscribe':
        return await subscribe(args)
      default:
        return await client(args)
    }
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`agent: ${err.message}\n${USAGE}`)
      return EXIT_USAGE
    }
    if (typeof err?.code === 'string' && err.code.startsWith('SHMSOCK_')) {
      console.error(`error ${code(err)}: ${err.message}`)
      return EXIT_SHMSOCK
    }
    console.error(`agent: ${err?.stack ?? err}`)
    return EXIT_VERIFY
  }
}

// serve returns undefined: the process ends when the server has closed.
const status = await main(process.argv.slice(2))
if (status !== undefined) process.exitCode = status
