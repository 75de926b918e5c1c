// Shared by the tests: a private runtime directory, unique endpoint names,
// connected pairs, silent clients, bounded waits and child processes.
import { spawn } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const root = dirname(dirname(fileURLToPath(import.meta.url)))
export const shm = createRequire(import.meta.url)(root)

// Every test process gets its own runtime directory (mode 0700), removed at exit.
if (!process.env.SHMSOCK_TEST_RUNTIME_OWNED) {
  const dir = mkdtempSync(join(tmpdir(), 'shmsock-node-test-'))
  chmodSync(dir, 0o700)
  process.env.SHMSOCK_RUNTIME_DIR = dir
  process.env.SHMSOCK_TEST_RUNTIME_OWNED = '1'
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
}

let counter = 0
/** A unique endpoint name. */
export function uniqueName(prefix = 't') {
  counter += 1
  return `${prefix}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`
}

/**
 * Opens `n` raw connections to endpoint `name` (its socket in the runtime
 * directory) that never send their HELLO, one after the other; a connection
 * the full backlog refuses (EAGAIN) is retried until `ms` have passed.
 * Resolves the sockets; `destroyAll(sockets)` closes them.
 */
export async function silentClients(name, n, ms = 20000) {
  const path = join(process.env.SHMSOCK_RUNTIME_DIR, `${name}.sock`)
  const until = Date.now() + ms
  const sockets = []
  const one = () =>
    new Promise((resolve, reject) => {
      const socket = connect(path)
      socket.once('connect', () => {
        socket.removeAllListeners('error')
        socket.on('error', () => {})
        resolve(socket)
      })
      socket.once('error', (err) => {
        socket.destroy()
        if (err.code === 'EAGAIN' && Date.now() < until) setTimeout(() => one().then(resolve, reject), 10)
        else reject(new Error(`silent client ${sockets.length + 1} of ${n} could not connect: ${err.message}`))
      })
    })
  try {
    while (sockets.length < n) sockets.push(await one())
  } catch (err) {
    destroyAll(sockets)
    throw err
  }
  return sockets
}

/** Closes sockets. */
export function destroyAll(sockets) {
  for (const socket of sockets) socket.destroy()
}

/** This process's threads: tid -> name. */
export function threads() {
  const names = new Map()
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      names.set(tid, readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim())
    } catch {
      // The thread exited meanwhile.
    }
  }
  return names
}

/** The threads of shmsock's that were not in `before` ("tid name" each). */
export function newShmsockThreads(before) {
  return [...threads()]
    .filter(([tid, name]) => !before.has(tid) && name.startsWith('shmsock'))
    .map(([tid, name]) => `${tid} ${name}`)
}

/** Resolves when `check()` is true, looking every 10 ms; rejects after `ms`. */
export async function until(check, ms, what = 'condition') {
  const limit = Date.now() + ms
  while (!check()) {
    if (Date.now() > limit) throw new Error(`${what} was not met within ${ms} ms`)
    await sleep(10)
  }
}

/** Rejects if `promise` does not settle within `ms`. */
export function within(promise, ms, what = 'operation') {
  let timer
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)
  })
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer))
}

/** A listener and a connected stream pair: { keypair, listener, client, server, name }. */
export async function pair(options = {}) {
  const keypair = shm.Keypair.generate()
  const name = uniqueName(options.prefix || 'pair')
  const listener = shm.Listener.bind(name, { keypair, ...(options.server || {}) })
  const accepted = listener.accept({ timeout: 10000 })
  const client = await within(shm.Stream.connect(name, { serverKey: keypair.publicKey, ...(options.client || {}) }), 10000, 'connect')
  const server = await within(accepted, 10000, 'accept')
  return {
    keypair,
    name,
    listener,
    client,
    server,
    async close() {
      await Promise.all([client.close(), server.close()])
      listener.close()
    },
  }
}

/** Asserts that `promise` rejects with an Error whose code is `code`. */
export async function rejectsWith(promise, code) {
  try {
    await promise
  } catch (err) {
    if (!(err instanceof Error)) throw new Error(`rejected with a non-Error: ${err}`)
    if (err.code !== code) throw new Error(`expected ${code}, got ${err.code}: ${err.message}`)
    return err
  }
  throw new Error(`expected a rejection with ${code}, but it resolved`)
}

/**
 * Runs a fixture script in a child node process (started through `wrapper`,
 * e.g. `['taskset', '-c', '0']`, when given); resolves { code, signal, stdout, stderr, ms }.
 */
export function runFixture(script, args = [], { nodeArgs = [], timeout = 30000, env = {}, onStdout, wrapper = [] } = {}) {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const [command, ...argv] = [...wrapper, process.execPath, ...nodeArgs, join(root, 'test', 'fixtures', script), ...args]
    const child = spawn(command, argv, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => {
      stdout += d
      if (onStdout) onStdout(String(d), child)
    })
    child.stderr.on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${script} did not exit within ${timeout} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
    }, timeout)
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started, child })
    })
    child.on('error', reject)
  })
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
