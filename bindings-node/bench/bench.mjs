// Node round-trip latency (64 B) and throughput (1 MiB messages) of shmsock,
// against a `net` Unix-socket pair in Node, in one launch; prints ratios.
//
//   node bench/bench.mjs [--quick]
//
// The peer is a second node process (this file with --peer), as in real use.
// Figures vary with the machine and the placement of the two processes (waking
// a sleeping process costs 4 to 30+ us one way here): read the ratios, which
// compare runs made in the same launch.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const shm = createRequire(import.meta.url)('..')
const quick = process.argv.includes('--quick')
const ROUND_TRIPS = quick ? 2000 : 20000
const BIG = 1 << 20
const BIG_COUNT = quick ? 100 : 1000

// ------------------------------------------------------------------ peer side

async function peer(kind, where, key) {
  if (kind === 'shmsock') {
    const keypair = shm.Keypair.fromSecretKey(Buffer.from(key, 'hex'))
    const listener = shm.Listener.bind(where, { keypair })
    console.log('ready')
    for (const mode of ['echo', 'sink']) {
      const stream = await listener.accept()
      if (mode === 'echo') {
        for await (const m of stream) await stream.send(m)
      } else {
        let bytes = 0
        for await (const m of stream) {
          bytes += m.length
          if (bytes >= BIG * BIG_COUNT) await stream.send('done')
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
          let bytes = 0
          socket.on('data', (d) => {
            bytes += d.length
            if (bytes >= BIG * BIG_COUNT) socket.write('done')
          })
        }
      })
    })
    server.listen(where, () => console.log('ready'))
    let connections = 0
    server.on('connection', (s) =>
      s.on('close', () => {
        if (++connections === 2) server.close()
      })
    )
  }
}

// ---------------------------------------------------------------- measuring

function startPeer(kind, where, key) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--peer', kind, where, key, ...(quick ? ['--quick'] : [])], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
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

async function benchShmsock(dir) {
  const keypair = shm.Keypair.generate()
  // The peer needs the secret: this benchmark makes a throwaway key.
  const secret = Buffer.alloc(32)
  for (let i = 0; i < 32; i++) secret[i] = Math.floor(Math.random() * 256)
  const serverKeypair = shm.Keypair.fromSecretKey(secret)
  const name = `bench-${process.pid}`
  const child = await startPeer('shmsock', name, secret.toString('hex'))
  const opts = { serverKey: serverKeypair.publicKey, keypair }

  const echo = await shm.Stream.connect(name, opts)
  const rtt = await latency(async (m) => {
    await echo.send(m)
    await echo.recv()
  })
  await echo.close()

  const sink = await shm.Stream.connect(name, opts)
  const big = Buffer.alloc(BIG, 0x62)
  const t = process.hrtime.bigint()
  for (let i = 0; i < BIG_COUNT; i++) await sink.send(big)
  await sink.recv()
  const seconds = Number(process.hrtime.bigint() - t) / 1e9
  await sink.close()
  await once(child, 'exit')
  return { rtt, mibps: BIG_COUNT / seconds, cipher: sink.cipher, ring: sink.ringSize }
}

async function benchNet(dir) {
  const path = join(dir, 'net.sock')
  const child = await startPeer('net', path, '-')
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

  const sink = await connect('sink')
  const big = Buffer.alloc(BIG, 0x62)
  const done = once(sink, 'data')
  const t = process.hrtime.bigint()
  for (let i = 0; i < BIG_COUNT; i++) {
    if (!sink.write(big)) await once(sink, 'drain')
  }
  await done
  const seconds = Number(process.hrtime.bigint() - t) / 1e9
  sink.end()
  await once(child, 'exit')
  return { rtt, mibps: BIG_COUNT / seconds }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'shmsock-bench-'))
  chmodSync(dir, 0o700)
  process.env.SHMSOCK_RUNTIME_DIR = dir
  try {
    const n = await benchNet(dir)
    const s = await benchShmsock(dir)
    const f = (x) => x.toFixed(1).padStart(8)
    console.log(`shmsock ${shm.version}, node ${process.version}, ${s.cipher}, ring ${s.ring >> 10} KiB; peer in a second node process, unpinned`)
    console.log(`                         shmsock   net (unix)   ratio`)
    console.log(`round trip 64 B (us)  ${f(s.rtt)}    ${f(n.rtt)}   ${(n.rtt / s.rtt).toFixed(2)}x faster`)
    console.log(`throughput 1 MiB (MiB/s)${f(s.mibps)}  ${f(n.mibps)}     ${(s.mibps / n.mibps).toFixed(2)}x`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (process.argv[2] === '--peer') {
  await peer(process.argv[3], process.argv[4], process.argv[5])
} else {
  await main()
}
