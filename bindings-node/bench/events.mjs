// Node 64 B round trip with event handlers on both sides, in one launch:
// shmsock's `Client` and `Server` ('data' events, replies sent from the
// handler) against `net` over a Unix socket ('data' callbacks, `write`), for
// both placements (the two processes pinned to two cores, then both to one
// core). The measuring side resolves a promise from its 'data' handler per
// round trip, the same for both. Prints medians of batches and the ratio.
//
//   node bench/events.mjs [--quick]
//
// bench.mjs measures the promise API (`send`/`recv`); this one the API a
// `net` user moves to.
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
const BATCH = 200

async function peer(kind, where, key) {
  if (kind === 'shmsock') {
    const server = shm.createServer({ keypair: shm.Keypair.fromSecretKey(Buffer.from(key, 'hex')) })
    server.on('data', (conn, data) => conn.send(data).catch(() => {}))
    server.on('close', () => server.close())
    server.listen(where, () => console.log('ready'))
  } else {
    const server = net.createServer((socket) => {
      socket.setNoDelay(true)
      socket.on('data', (d) => socket.write(d))
      socket.on('close', () => server.close())
    })
    server.listen(where, () => console.log('ready'))
  }
}

function startPeer(kind, where, key, cpu) {
  const child = spawn('taskset', ['-c', cpu, process.execPath, self, '--peer', kind, where, key], {
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return new Promise((resolve, reject) => {
    child.stdout.once('data', () => resolve(child))
    child.once('exit', (code) => reject(new Error(`${kind} peer exited with ${code}`)))
  })
}

// Median of batches of round trips (µs each): `write` sends, `onData`
// registers the handler that sees the echo.
async function latency(write, onData) {
  let wake = null
  onData(() => {
    const w = wake
    wake = null
    if (w) w()
  })
  const msg = Buffer.alloc(64, 0x61)
  const roundTrip = () =>
    new Promise((resolve) => {
      wake = resolve
      write(msg)
    })
  for (let i = 0; i < ROUND_TRIPS / 10; i++) await roundTrip()
  const batches = []
  for (let b = 0; b < ROUND_TRIPS / BATCH; b++) {
    const t = process.hrtime.bigint()
    for (let i = 0; i < BATCH; i++) await roundTrip()
    batches.push(Number(process.hrtime.bigint() - t) / 1000 / BATCH)
  }
  batches.sort((a, b) => a - b)
  return batches[batches.length >> 1]
}

// One placement, in this (already pinned) process: prints one JSON line.
async function runOne(peerCpu) {
  const dir = mkdtempSync(join(tmpdir(), 'shmsock-bench-events-'))
  chmodSync(dir, 0o700)
  process.env.SHMSOCK_RUNTIME_DIR = dir
  try {
    const path = join(dir, 'net.sock')
    let child = await startPeer('net', path, '-', peerCpu)
    const socket = net.createConnection(path)
    await once(socket, 'connect')
    socket.setNoDelay(true)
    const netRtt = await latency((m) => socket.write(m), (f) => socket.on('data', f))
    socket.end()
    await once(child, 'exit')

    const secret = Buffer.alloc(32)
    for (let i = 0; i < 32; i++) secret[i] = Math.floor(Math.random() * 256)
    const serverKey = shm.Keypair.fromSecretKey(secret).publicKey
    const name = `bench-events-${process.pid}`
    child = await startPeer('shmsock', name, secret.toString('hex'), peerCpu)
    const client = await shm.Client.connect(name, { serverKey })
    const shmRtt = await latency((m) => client.write(m).catch(() => {}), (f) => client.on('data', f))
    await client.close()
    await once(child, 'exit')
    console.log(JSON.stringify({ net: netRtt, shmsock: shmRtt }))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function main() {
  if (spawnSync('taskset', ['-c', '0', 'true']).status !== 0) throw new Error('this bench pins with taskset, which is missing')
  console.log(`shmsock ${shm.version}, node ${process.version}; handlers on both sides; net = node:net over a Unix socket`)
  console.log(`${'placement'.padEnd(10)} ${'64 B round trip, median'.padEnd(25)}${'shmsock'.padStart(10)}${'net'.padStart(10)}   shmsock vs net`)
  for (const [label, mine, theirs] of [
    ['two cores', '0', '1'],
    ['one core', '0', '0'],
  ]) {
    const args = [self, '--run', theirs, ...(quick ? ['--quick'] : [])]
    const r = spawnSync('taskset', ['-c', mine, process.execPath, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
    if (r.status !== 0) throw new Error(`the ${label} run failed`)
    const { net: n, shmsock: s } = JSON.parse(r.stdout.trim().split('\n').pop())
    console.log(`${label.padEnd(10)} ${''.padEnd(25)}${`${s.toFixed(1)} us`.padStart(10)}${`${n.toFixed(1)} us`.padStart(10)}   ${(n / s).toFixed(2)}x faster`)
  }
}

if (process.argv[2] === '--peer') await peer(process.argv[3], process.argv[4], process.argv[5])
else if (process.argv[2] === '--run') await runOne(process.argv[3])
else main()
