// System calls and thread wake-ups per message of a Node client doing 64 B
// round trips with an echo peer (a second node process): run under
// `strace -f -c` to count them.
//
//   node bench/strace.mjs               (prints the strace -c table per round trip)
//   node bench/strace.mjs --client N    (the traced part: N round trips)
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const shm = createRequire(import.meta.url)('..')
const self = fileURLToPath(import.meta.url)
const N = 5000

if (process.argv[2] === '--peer') {
  const keypair = shm.Keypair.fromSecretKey(Buffer.from(process.argv[4], 'hex'))
  const listener = shm.Listener.bind(process.argv[3], { keypair })
  console.log('ready')
  const stream = await listener.accept()
  for await (const m of stream) await stream.send(m)
  listener.close()
} else if (process.argv[2] === '--client') {
  const stream = await shm.Stream.connect(process.argv[3], { serverKey: Buffer.from(process.argv[4], 'hex'), wait: 10000 })
  const msg = Buffer.alloc(64)
  for (let i = 0; i < 200; i++) {
    await stream.send(msg)
    await stream.recv()
  }
  for (let i = 0; i < Number(process.argv[5]); i++) {
    await stream.send(msg)
    await stream.recv()
  }
  await stream.close()
} else {
  const dir = mkdtempSync(join(tmpdir(), 'shmsock-strace-'))
  chmodSync(dir, 0o700)
  process.env.SHMSOCK_RUNTIME_DIR = dir
  const secret = Buffer.alloc(32, 7)
  const pk = shm.Keypair.fromSecretKey(secret).publicKey.toString('hex')
  const name = `strace-${process.pid}`
  const peer = spawn(process.execPath, [self, '--peer', name, secret.toString('hex')], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise((r) => peer.stdout.once('data', r))
  const out = join(dir, 'strace.txt')
  const run = (n) => {
    const r = spawnSync('strace', ['-f', '-c', '-o', out, process.execPath, self, '--client', name, pk, String(n)], { stdio: 'inherit' })
    if (r.status !== 0) throw new Error('strace run failed')
    const counts = {}
    for (const line of readFileSync(out, 'utf8').split('\n')) {
      const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$/.exec(line)
      if (m && m[2] !== 'total') counts[m[2]] = Number(m[1])
    }
    return counts
  }
  // Two runs, N and 2N round trips: the difference is what the round trips cost.
  const a = run(N)
  const peer2 = spawn(process.execPath, [self, '--peer', name, secret.toString('hex')], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise((r) => peer2.stdout.once('data', r))
  const b = run(2 * N)
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])]
  const per = names.map((k) => [k, ((b[k] || 0) - (a[k] || 0)) / N]).filter(([, v]) => Math.abs(v) >= 0.01)
  per.sort((x, y) => y[1] - x[1])
  console.log(`system calls of the client per 64 B round trip (strace -f -c, ${N} extra round trips):`)
  let total = 0
  for (const [k, v] of per) {
    total += v
    console.log(`  ${k.padEnd(16)} ${v.toFixed(2)}`)
  }
  console.log(`  ${'total'.padEnd(16)} ${total.toFixed(2)}`)
  console.log('(futex: wake-ups between threads; epoll_pwait: the event loop sleeping, i.e. a thread wake-up;')
  console.log(' epoll_wait: the core consuming wake-ups without sleeping; epoll_ctl: registrations)')
  rmSync(dir, { recursive: true, force: true })
}
