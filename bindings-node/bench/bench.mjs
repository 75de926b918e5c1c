// Node round-trip latency (64 B) and throughput (64 KiB and 1 MiB messages) of
// shmsock against a `net` Unix-socket pair in Node, in one launch, for both
// placements (the two processes pinned to two cores, then both to one core,
// with taskset); prints ratios. The throughput rows are repeated with the
// receiver using recvInto() into one reused buffer (shmsock decrypts straight
// into it) against the same `net` figures (whose receiver gets a new Buffer
// per read, as every 'data' listener does).
//
//   node bench/bench.mjs [--quick] [--placement both|two|one|none]
//
// The peer is a second node process (this file with --peer), as in real use.
// Figures vary with the machine and its load: read the ratios, which compare
// runs made in the same launch.
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const shm = createRequire(import.meta.url)('..')
const self = fileURLToPath(import.meta.url)
const quick = process.argv.includes('--quick')
const ROUND_TRIPS = quick ? 2000 : 20000
// Throughput runs: [message size, count].
const SIZES = [
  [64 << 10, quick ? 1000 : 8000],
  [1 << 20, quick ? 100 : 800],
]
const total = (size, count) => size * count

function arg(name, fallback) {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : fallback
}

// ------------------------------------------------------------------ peer side

async function peer(kind, where, key) {
  if (kind === 'shmsock') {
    const keypair = shm.Keypair.fromSecretKey(Buffer.from(key, 'hex'))
    const listener = shm.Listener.bind(where, { keypair })
    console.log('ready')
    // The echo, then each size received with recv() (a new Buffer per
    // message), then each size received with recvInto() (one buffer reused).
    for (const mode of ['echo', ...SIZES.map(() => 'sink'), ...SIZES.map(() => 'sink')]) {
      const stream = await listener.accept()
      if (mode === 'echo') {
        for await (const m of stream) await stream.send(m)
      } else {
        const [how, want] = String(await stream.recv()).split(' ')
        let bytes = 0
        if (how === 'into') {
          const buf = Buffer.alloc(Math.max(...SIZES.map(([size]) => size)))
          while (bytes < Number(want)) bytes += await stream.recvInto(buf)
          await stream.send('done')
        } else {
          for await (const m of stream) {
            bytes += m.length
            if (bytes >= Number(want)) await stream.send('done')
          }
        }
      }
      await stream.close()
    }
    listener.close()
  } else {
    const server = net.createServer((socket) => {
      socket.once('data', (first) => {
        const mode = first.toString()
        if (mode === 'echo') {
          socket.on('data', (d) => socket.write(d))
        } else {
          const want = Number(mode.slice('sink '.length))
          let bytes = 0
          socket.on('data', (d) => {
            bytes += d.length
            if (bytes >= want) socket.write('done')
          })
        }
      })
    })
    server.listen(where, () => console.log('ready'))
    let connections = 0
    server.on('connection', (s) =>
      s.on('close', () => {
        if (++connections === 1 + SIZES.length) server.close()
      })
    )
  }
}

// ---------------------------------------------------------------- measuring

function startPeer(kind, where, key, cpu) {
  const args = [self, '--peer', kind, where, key, ...(quick ? ['--quick'] : [])]
  const [cmd, argv] = cpu === '-' ? [process.execPath, args] : ['taskset', ['-c', cpu, process.execPath, ...args]]
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'inherit'] })
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve(child))
    child.once('exit', (code) => reject(new Error(`${kind} peer exited with ${code}`)))
  })
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

// Median of batches of round trips, in microseconds per round trip.
async function latency(roundTrip) {
  const msg = Buffer.alloc(64, 0x61)
  for (let i = 0; i < ROUND_TRIPS / 10; i++) await roundTrip(msg) // warm-up
  const batches = []
  const batch = 200
  for (let b = 0; b < ROUND_TRIPS / batch; b++) {
    const t = process.hrtime.bigint()
    for (let i = 0; i < batch; i++) await roundTrip(msg)
    batches.push(Number(process.hrtime.bigint() - t) / 1000 / batch)
  }
  return median(batches)
}

async function benchShmsock(cpu) {
  const keypair = shm.Keypair.generate()
  // The peer needs the secret: this benchmark makes a throwaway key.
  const secret = Buffer.alloc(32)
  for (let i = 0; i < 32; i++) secret[i] = Math.floor(Math.random() * 256)
  const serverKeypair = shm.Keypair.fromSecretKey(secret)
  const name = `bench-${process.pid}`
  const child = await startPeer('shmsock', name, secret.toString('hex'), cpu)
  const opts = { serverKey: serverKeypair.publicKey, keypair }

  const echo = await shm.Stream.connect(name, opts)
  const rtt = await latency(async (m) => {
    await echo.send(m)
    await echo.recv()
  })
  await echo.close()

  const rates = []
  const ratesInto = []
  let cipher
  for (const [how, out] of [
    ['recv', rates],
    ['into', ratesInto],
  ]) {
    for (const [size, count] of SIZES) {
      const sink = await shm.Stream.connect(name, opts)
      cipher = sink.cipher
      await sink.send(`${how} ${total(size, count)}`)
      const big = Buffer.alloc(size, 0x62)
      const t = process.hrtime.bigint()
      for (let i = 0; i < count; i++) await sink.send(big)
      await sink.recv()
      out.push(total(size, count) / 2 ** 20 / (Number(process.hrtime.bigint() - t) / 1e9))
      await sink.close()
    }
  }
  await once(child, 'exit')
  return { rtt, rates, ratesInto, cipher }
}

async function benchNet(dir, cpu) {
  const path = join(dir, 'net.sock')
  const child = await startPeer('net', path, '-', cpu)
  const connect = async (mode) => {
    const socket = net.createConnection(path)
    await once(socket, 'connect')
    socket.setNoDelay(true)
    socket.write(mode)
    await new Promise((r) => setTimeout(r, 50)) // the mode arrives alone
    return socket
  }

  const echo = await connect('echo')
  let want = 0
  let got = 0
  let wake = null
  echo.on('data', (d) => {
    got += d.length
    if (got >= want && wake) {
      const w = wake
      wake = null
      w()
    }
  })
  const rtt = await latency(
    (m) =>
      new Promise((resolve) => {
        want += m.length
        wake = resolve
        echo.write(m)
      })
  )
  echo.end()

  const rates = []
  for (const [size, count] of SIZES) {
    const sink = await connect(`sink ${total(size, count)}`)
    const big = Buffer.alloc(size, 0x62)
    const done = once(sink, 'data')
    const t = process.hrtime.bigint()
    for (let i = 0; i < count; i++) {
      if (!sink.write(big)) await once(sink, 'drain')
    }
    await done
    rates.push(total(size, count) / 2 ** 20 / (Number(process.hrtime.bigint() - t) / 1e9))
    sink.end()
  }
  await once(child, 'exit')
  return { rtt, rates }
}

// One placement, in this (already pinned) process: prints one JSON line.
async function runOne(peerCpu) {
  const dir = mkdtempSync(join(tmpdir(), 'shmsock-bench-'))
  chmodSync(dir, 0o700)
  process.env.SHMSOCK_RUNTIME_DIR = dir
  try {
    const n = await benchNet(dir, peerCpu)
    const s = await benchShmsock(peerCpu)
    console.log(JSON.stringify({ net: n, shmsock: s }))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function main() {
  const which = arg('--placement', 'both')
  const canPin = spawnSync('taskset', ['-c', '0', 'true']).status === 0
  const placements = []
  if (canPin && (which === 'both' || which === 'two')) placements.push(['two cores', '0', '1'])
  if (canPin && (which === 'both' || which === 'one')) placements.push(['one core', '0', '0'])
  if (placements.length === 0) placements.push(['unpinned', '-', '-'])
  console.log(`shmsock ${shm.version}, node ${process.version}; peer in a second node process; net = node:net over a Unix socket`)
  console.log(`${'placement'.padEnd(10)} ${'measure'.padEnd(27)}${'shmsock'.padStart(13)}${'net'.padStart(13)}   shmsock vs net`)
  for (const [label, mine, theirs] of placements) {
    const args = [self, '--run', theirs, ...(quick ? ['--quick'] : [])]
    const r =
      mine === '-'
        ? spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
        : spawnSync('taskset', ['-c', mine, process.execPath, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    if (r.status !== 0) throw new Error(`the ${label} run failed`)
    const { net: n, shmsock: s } = JSON.parse(r.stdout.trim().split('\n').pop())
    const f = (x, unit) => `${x.toFixed(1)} ${unit}`.padStart(13)
    console.log(`${label.padEnd(10)} ${'64 B round trip, median'.padEnd(27)}${f(s.rtt, 'us')}${f(n.rtt, 'us')}   ${(n.rtt / s.rtt).toFixed(2)}x faster`)
    for (const [how, rates] of [
      ['', s.rates],
      [' recvInto', s.ratesInto],
    ]) {
      SIZES.forEach(([size], i) => {
        const what = `${size >= 1 << 20 ? `${size >> 20} MiB` : `${size >> 10} KiB`} throughput${how}`
        console.log(`${label.padEnd(10)} ${what.padEnd(27)}${f(rates[i], 'MiB/s')}${f(n.rates[i], 'MiB/s')}   ${(rates[i] / n.rates[i]).toFixed(2)}x`)
      })
    }
  }
}

if (process.argv[2] === '--peer') {
  await peer(process.argv[3], process.argv[4], process.argv[5])
} else if (process.argv[2] === '--run') {
  await runOne(process.argv[3])
} else {
  main()
}
