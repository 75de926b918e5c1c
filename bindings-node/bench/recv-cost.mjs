// What one received message costs the receiver: CPU time (user, system) and
// minor page faults per message, for recv() (a new Buffer per message) or
// recvInto() (one reused buffer), from a sender in a second node process.
// CPU time and fault counts are steadier than throughput on a loaded machine.
//
//   node bench/recv-cost.mjs [recv|into] [size] [count] [ringSize]
//   (e.g. taskset -c 0 node bench/recv-cost.mjs recv 1048576 400)
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { chmodSync, mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const shm = createRequire(import.meta.url)('..')
const WARM_UP = 10

if (process.argv[2] === '--send') {
  const [, , , name, key, size, count] = process.argv
  const stream = await shm.Stream.connect(name, { serverKey: Buffer.from(key, 'hex'), wait: 10000 })
  const message = Buffer.alloc(Number(size), 7)
  for (let i = 0; i < Number(count); i++) await stream.send(message)
  await stream.recv() // the receiver is done
  await stream.close()
} else {
  const [mode = 'recv', sizeArg = String(1 << 20), countArg = '400', ringArg] = process.argv.slice(2)
  const [size, count] = [Number(sizeArg), Number(countArg)]
  if (!['recv', 'into'].includes(mode) || !(size >= 0) || !(count > WARM_UP)) {
    console.error('usage: node bench/recv-cost.mjs [recv|into] [size] [count > 10] [ringSize]')
    process.exit(2)
  }
  const dir = mkdtempSync(join(tmpdir(), 'shmsock-recv-cost-'))
  chmodSync(dir, 0o700)
  process.env.SHMSOCK_RUNTIME_DIR = dir
  const keypair = shm.Keypair.generate()
  const name = `recv-cost-${process.pid}`
  const listener = shm.Listener.bind(name, { keypair, ...(ringArg ? { ringSize: Number(ringArg) } : {}) })
  const self = fileURLToPath(import.meta.url)
  const args = [self, '--send', name, keypair.publicKey.toString('hex'), String(size), String(count)]
  const sender = spawn(process.execPath, args, { stdio: 'inherit' })
  try {
    const stream = await listener.accept({ timeout: 10000 })
    const buf = Buffer.alloc(size)
    const receive = () => (mode === 'into' ? stream.recvInto(buf) : stream.recv())
    for (let i = 0; i < WARM_UP; i++) await receive()
    const before = process.resourceUsage()
    for (let i = WARM_UP; i < count; i++) await receive()
    const after = process.resourceUsage()
    const n = count - WARM_UP
    const per = (key) => (after[key] - before[key]) / n
    console.log(
      `${mode} ${size} B, ring ${stream.ringSize} B: cpu ${(per('userCPUTime') + per('systemCPUTime')).toFixed(0)} us/message ` +
        `(user ${per('userCPUTime').toFixed(0)}, system ${per('systemCPUTime').toFixed(0)}), ` +
        `${per('minorPageFault').toFixed(1)} minor faults/message`
    )
    await stream.send('done')
    await stream.close()
    await once(sender, 'exit')
  } finally {
    listener.close()
    rmSync(dir, { recursive: true, force: true })
  }
}
