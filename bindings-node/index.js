'use strict'
// shmsock for Node.js: the public API over the native module (shmsock.node).
//
// This file only adapts: promises, async iteration, EventEmitters, argument
// checks, timeouts, AbortSignals and error objects. Every piece of protocol and
// transport logic is in the Rust core; waiting is done by this thread's own
// event loop (libuv poll handles on the connections' fds, in the native
// module), which hands its results to `dispatch` below.

const { EventEmitter } = require('node:events')
const path = require('node:path')
const { Duplex } = require('node:stream')

// The native module: ./shmsock.node when it was built here (a development
// checkout, or an install that built from source), else the prebuilt package
// for this platform (napi-rs convention; see native-package.js).
function loadNative() {
  const local = path.join(__dirname, 'shmsock.node')
  const { platformPackage } = require('./native-package.js')
  const prebuilt = platformPackage()
  let cause
  try {
    return require(local)
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND') cause = err
  }
  try {
    return require(prebuilt)
  } catch (err) {
    if (err.code !== 'MODULE_NOT_FOUND' || !cause) cause = err
  }
  const e = new Error(
    `shmsock: cannot load the native module: neither ${local} nor the prebuilt package ${prebuilt} loads ` +
      `(${cause.message}). Reinstall shmsock (it builds from source when no prebuilt package fits; that needs Rust ` +
      `and cargo), or run 'npm run build' in ${__dirname}.`
  )
  e.code = 'SHMSOCK_NOT_BUILT'
  e.cause = cause
  throw e
}
const native = loadNative()

const { NativeListener } = native

// ------------------------------------------------------------------ errors

/** Every stable error code: `SHMSOCK_` + the core's error kind name. */
const codes = Object.freeze(Object.fromEntries(native.errorCodes().map((c) => [c.slice('SHMSOCK_'.length), c])))

/** An error from shmsock: `code` is one of `codes` (e.g. `SHMSOCK_TIMEOUT`). */
class ShmsockError extends Error {
  constructor(message, code) {
    super(message)
    this.name = 'ShmsockError'
    this.code = code
  }
}

function makeError(code, message) {
  return new ShmsockError(message, code)
}

// Symbol.asyncDispose / Symbol.dispose (Node 20 has them; older names otherwise).
const asyncDispose = Symbol.asyncDispose || Symbol.for('nodejs.asyncDispose')
const dispose = Symbol.dispose || Symbol.for('nodejs.dispose')

// The error of an operation given up because its AbortSignal fired (as Node's own APIs).
function abortError(signal) {
  const err = new Error('The operation was aborted')
  err.name = 'AbortError'
  err.code = 'ABORT_ERR'
  if (signal && signal.reason !== undefined) err.cause = signal.reason
  return err
}

function checkSignal(signal) {
  if (signal === undefined || signal === null) return undefined
  if (typeof signal !== 'object' || typeof signal.aborted !== 'boolean' || typeof signal.addEventListener !== 'function') {
    throw typeError(`options.signal must be an AbortSignal; received ${describe(signal)}`)
  }
  return signal
}

// A native error thrown synchronously carries its code; give it our class.
function fromNative(err) {
  if (err && typeof err.code === 'string' && err.code.startsWith('SHMSOCK_') && !(err instanceof ShmsockError)) {
    return makeError(err.code, err.message)
  }
  return err
}

function callNative(fn) {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err)
  }
}

function typeError(message) {
  const err = new TypeError(message)
  err.code = 'ERR_INVALID_ARG_TYPE'
  return err
}

function describe(value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') return `an instance of ${value.constructor ? value.constructor.name : 'Object'}`
  return `type ${typeof value} (${String(value).slice(0, 40)})`
}

// ------------------------------------------------------------------ arguments

function toBuffer(data, what) {
  if (Buffer.isBuffer(data)) return data
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (typeof data === 'string') return Buffer.from(data, 'utf8')
  throw typeError(`${what} must be a Buffer, a Uint8Array or a string; received ${describe(data)}`)
}

function toKey(key, what) {
  if (key instanceof Keypair) return key.publicKey
  if (typeof key === 'string') return callNative(() => native.parsePublicKey(key))
  if (key instanceof Uint8Array) {
    const buf = toBuffer(key, what)
    if (buf.length !== 32) throw makeError(codes.INVALID_KEY, `${what} must be 32 bytes long, not ${buf.length}`)
    return Buffer.from(buf)
  }
  throw typeError(`${what} must be a public key: a 32-byte Buffer/Uint8Array or its text form 'shmsock-pk:...'; received ${describe(key)}`)
}

function optionalNumber(options, name, integer) {
  const v = options[name]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || Number.isNaN(v) || (integer && !Number.isInteger(v))) {
    throw typeError(`options.${name} must be ${integer ? 'an integer' : 'a number'}; received ${describe(v)}`)
  }
  if (v < 0) throw new RangeError(`options.${name} must be >= 0, not ${v}`)
  return v
}

function optionalTimeout(options, name) {
  const v = optionalNumber(options, name, false)
  return v === Infinity ? undefined : v
}

function checkOptions(options, what) {
  if (options === undefined || options === null) return {}
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw typeError(`${what} must be an object; received ${describe(options)}`)
  }
  return options
}

function checkName(name) {
  if (typeof name !== 'string') throw typeError(`the endpoint name must be a string; received ${describe(name)}`)
  return name
}

// The native options object, checked; returns [keypair, nativeOptions].
function nativeOptions(options, what) {
  const o = checkOptions(options, what)
  const n = {}
  let keypair
  if (o.keypair !== undefined && o.keypair !== null) {
    if (!(o.keypair instanceof Keypair)) throw typeError(`options.keypair must be a Keypair; received ${describe(o.keypair)}`)
    keypair = o.keypair._n
  }
  if (o.serverKey !== undefined && o.serverKey !== null) n.serverKey = toKey(o.serverKey, 'options.serverKey')
  if (o.allowedClients !== undefined && o.allowedClients !== null) {
    if (!Array.isArray(o.allowedClients)) throw typeError(`options.allowedClients must be an array of public keys; received ${describe(o.allowedClients)}`)
    n.allowedClients = o.allowedClients.map((k, i) => toKey(k, `options.allowedClients[${i}]`))
  }
  if (o.allowedUids !== undefined && o.allowedUids !== null) {
    if (!Array.isArray(o.allowedUids) || !o.allowedUids.every((u) => Number.isInteger(u) && u >= 0)) {
      throw typeError(`options.allowedUids must be an array of non-negative integers; received ${describe(o.allowedUids)}`)
    }
    n.allowedUids = o.allowedUids
  }
  const ringSize = optionalNumber(o, 'ringSize', true)
  if (ringSize !== undefined) n.ringSize = ringSize
  const maxMessageSize = optionalNumber(o, 'maxMessageSize', true)
  if (maxMessageSize !== undefined) n.maxMessageSize = maxMessageSize
  const maxQueuedBytes = optionalNumber(o, 'maxQueuedBytes', true)
  if (maxQueuedBytes !== undefined) n.maxQueuedBytes = maxQueuedBytes
  for (const t of ['sendTimeout', 'recvTimeout', 'handshakeTimeout']) {
    const v = optionalTimeout(o, t)
    if (v !== undefined) n[t] = v
  }
  if (o.backend !== undefined && o.backend !== null) {
    if (typeof o.backend !== 'string') throw typeError(`options.backend must be 'memfd' or 'named'; received ${describe(o.backend)}`)
    n.backend = o.backend
  }
  if (o.requireChacha !== undefined && o.requireChacha !== null) {
    if (typeof o.requireChacha !== 'boolean') throw typeError(`options.requireChacha must be a boolean; received ${describe(o.requireChacha)}`)
    n.requireChacha = o.requireChacha
  }
  return [keypair, n]
}

// ------------------------------------------------------------------ Keypair

const kKeypair = Symbol('shmsock.Keypair')

function checkPath(p) {
  if (typeof p !== 'string') throw typeError(`the key file path must be a string; received ${describe(p)}`)
  return p
}

/**
 * A static X25519 keypair: the identity of a server (which clients pin) or of a
 * client (which a server may allow-list). The secret stays in native memory.
 */
class Keypair {
  constructor(nativeKeypair, token) {
    if (token !== kKeypair) throw new TypeError('use Keypair.generate(), Keypair.load() or Keypair.fromSecretKey()')
    this._n = nativeKeypair
  }

  /** A fresh random keypair. */
  static generate() {
    return new Keypair(native.NativeKeypair.generate(), kKeypair)
  }

  /** Loads a key file; refuses one that others can read (SHMSOCK_INSECURE_KEY_FILE). */
  static load(path) {
    checkPath(path)
    return new Keypair(callNative(() => native.NativeKeypair.load(path)), kKeypair)
  }

  /** The keypair of a 32-byte secret key. */
  static fromSecretKey(secret) {
    if (!(secret instanceof Uint8Array)) throw typeError(`the secret key must be a 32-byte Buffer or Uint8Array; received ${describe(secret)}`)
    return new Keypair(callNative(() => native.NativeKeypair.fromSecretKey(toBuffer(secret, 'secret'))), kKeypair)
  }

  /** Writes a new key file with mode 0600; never overwrites. */
  save(path) {
    checkPath(path)
    callNative(() => this._n.save(path))
  }

  /** The public key, 32 bytes. */
  get publicKey() {
    return this._n.publicKey
  }
  /** The public key as text, `shmsock-pk:...`. */
  get publicKeyText() {
    return this._n.publicKeyText
  }
  /** A short fingerprint of the public key, e.g. `3f2a:9c11:07be:55d0`. */
  get fingerprint() {
    return this._n.fingerprint
  }
  toString() {
    return this._n.toString()
  }
}

// ------------------------------------------------------------------ dispatch

// Operations waiting for the native side: op -> { resolve, reject, owner, wrap, timer, signal }.
// `owner` keeps the object an operation runs on reachable until it settles.
const pending = new Map()
// Flowing streams (Server connections, Clients): stream id -> handler.
const flows = new Map()
// Serving listeners: listener id -> Server.
const servers = new Map()
let nextOp = 1
// Pending operations + open Servers and Clients. While > 0, the dispatch
// function keeps Node's event loop alive; at 0 the process may exit.
let active = 0

function retain() {
  if (active++ === 0) native.setActive(true)
}

function release() {
  if (--active === 0) native.setActive(false)
}

function newOp() {
  const op = nextOp
  nextOp = nextOp >= Number.MAX_SAFE_INTEGER ? 1 : nextOp + 1
  return op
}

// A promise settled when the native side reports `op`. `limit`: { timeout (ms),
// timeoutError, signal, cancel } — on a timeout or an abort, `cancel(op)` asks
// the native side to drop the operation; only if it did (it had not completed)
// is the promise rejected, so a completed receive is never lost.
function track(op, owner, wrap, limit) {
  const { promise, p } = begin(op, owner, wrap)
  waitFor(op, p, limit)
  return promise
}

// Registers `op` before the native call that starts it: that call may run
// JavaScript handlers (it delivers other operations' results), and a nested
// call may complete `op` before the outer one returns. Not retained yet: an
// operation complete when its native call returns costs no ref of the loop.
function begin(op, owner, wrap) {
  let p
  const promise = new Promise((resolve, reject) => {
    p = { resolve, reject, owner, wrap, timer: null, signal: null, onAbort: null, retained: false }
  })
  pending.set(op, p)
  return { promise, p }
}

// A registered operation that must wait: keeps the process alive and arms
// its limits (unless it completed meanwhile).
function waitFor(op, p, limit) {
  if (pending.get(op) !== p) return
  p.retained = true
  retain()
  if (!limit) return
  const giveUp = (error) => {
    if (pending.get(op) !== p) return
    if (limit.cancel && !limit.cancel(op)) return
    settle(op, error)
  }
  if (limit.timeout !== undefined) {
    p.timer = setTimeout(() => giveUp(limit.timeoutError()), limit.timeout)
  }
  if (limit.signal) {
    p.signal = limit.signal
    p.onAbort = () => giveUp(abortError(limit.signal))
    limit.signal.addEventListener('abort', p.onAbort, { once: true })
  }
}

// Runs `start()` (the native call that starts `op`, returning true when it
// completed at once, or its value with `valueOf`) with `op` registered first.
function started(op, owner, wrap, start, limit) {
  const { promise, p } = begin(op, owner, wrap)
  let result
  try {
    result = start()
  } catch (err) {
    settle(op, fromNative(err))
    return promise
  }
  if (result === true) settle(op, null)
  else if (result != null && result !== false) settle(op, null, result)
  else waitFor(op, p, limit)
  return promise
}

function settle(op, error, value) {
  const p = pending.get(op)
  if (!p) return
  pending.delete(op)
  if (p.retained) release()
  if (p.timer) clearTimeout(p.timer)
  if (p.signal) p.signal.removeEventListener('abort', p.onAbort)
  if (error) p.reject(error)
  else p.resolve(p.wrap ? p.wrap(value) : value)
}

const RECV = 0
const DONE = 1
const FAILED = 2
const STREAM = 3
const DATA = 4
const END = 5
const CONNECTION = 6
const REJECTED = 7
const RECV_INTO = 8
const SUBSCRIBER = 9

function dispatch(events) {
  for (const ev of events) {
    try {
      const [kind, id, value, code, message] = ev
      switch (kind) {
        case RECV:
        case RECV_INTO:
        case DONE:
        case STREAM:
        case SUBSCRIBER:
          settle(id, null, value)
          break
        case FAILED:
          settle(id, makeError(code, message))
          break
        case DATA: {
          const flow = flows.get(id)
          if (flow) flow._onData(value)
          break
        }
        case END: {
          const flow = flows.get(id)
          if (flow) flow._onEnd(code ? makeError(code, message) : null)
          break
        }
        case CONNECTION: {
          const server = servers.get(id)
          if (server) server._onConnection(value)
          else value.close(0)
          break
        }
        case REJECTED: {
          const server = servers.get(id)
          if (server) server._report(makeError(code, message), null)
          break
        }
      }
    } catch (err) {
      // Handlers report their own exceptions; this is a last resort so that
      // nothing thrown here becomes an uncaught exception of the process.
      process.emitWarning(`shmsock: error while dispatching an event: ${err && err.stack ? err.stack : err}`)
    }
  }
}

native.init(dispatch)

// ------------------------------------------------------------------ Stream

const wrapStream = (n) => new Stream(n, kStream)
const kStream = Symbol('shmsock.Stream')

// { timeout, signal } of recv/accept/connect, checked.
function waitOptions(options) {
  const o = checkOptions(options, 'options')
  return { timeout: optionalTimeout(o, 'timeout'), signal: checkSignal(o.signal) }
}

function recvTimeoutError() {
  return makeError(codes.TIMEOUT, 'recv timed out: no message arrived; nothing was lost')
}

// A connect (or subscribe) through `nativeFn(op, name, keypair, options, wait)`,
// on a native thread; resolves with `wrap(result)`.
function connectWith(nativeFn, name, options, wrap) {
  checkName(name)
  const [keypair, opts] = nativeOptions(options, 'options')
  const o = checkOptions(options, 'options')
  const wait = optionalTimeout(o, 'wait')
  const signal = checkSignal(o.signal)
  if (signal && signal.aborted) return Promise.reject(abortError(signal))
  const op = newOp()
  try {
    nativeFn(op, name, keypair, opts, wait)
  } catch (err) {
    return Promise.reject(fromNative(err))
  }
  const cancel = (op) => {
    native.cancelConnect(op)
    return true
  }
  return track(op, null, wrap, signal ? { signal, cancel } : undefined)
}

// A receive on `owner` (a Stream or a Subscriber: same native interface),
// into `into` when given.
function receive(owner, into, options) {
  const limit = waitOptions(options)
  if (limit.signal && limit.signal.aborted) return Promise.reject(abortError(limit.signal))
  const timeout = limit.timeout !== undefined ? limit.timeout : owner._n.recvTimeout ?? undefined
  const op = newOp()
  const cancel = (op) => owner._n.cancelRecv(op)
  // Resolves with the message (a Buffer) or, with `into`, its length.
  return started(op, owner, null, () => owner._n.recv(op, into), {
    timeout,
    timeoutError: recvTimeoutError,
    signal: limit.signal,
    cancel,
  })
}

// Messages of `owner` until its end (the peer or this side closed); other
// errors are thrown.
async function* messagesOf(owner) {
  for (;;) {
    let msg
    try {
      msg = await owner.recv()
    } catch (err) {
      if (err.code === codes.PEER_CLOSED || err.code === codes.CLOSED) return
      throw err
    }
    yield msg
  }
}

/**
 * One encrypted, authenticated connection. Obtain one with `Stream.connect()`
 * (or `connect()`) or `listener.accept()`.
 */
class Stream {
  constructor(nativeStream, token) {
    if (token !== kStream) throw new TypeError('use Stream.connect() or listener.accept() to get a Stream')
    this._n = nativeStream
  }

  /**
   * Connects to endpoint `name` whose server key `options.serverKey` pins.
   * `options.wait` (ms): keep trying while no server listens (like the CLI's
   * `--wait`); `options.signal`: an AbortSignal.
   */
  static connect(name, options) {
    return connectWith(native.connect, name, options, wrapStream)
  }

  /** Sends one message; resolves once it is in the ring (in order with earlier sends). */
  send(data) {
    const buf = toBuffer(data, 'data')
    const op = newOp()
    return started(op, this, null, () => this._n.send(op, buf))
  }

  /** Sends one message only if it fits in the ring now; returns false otherwise. */
  trySend(data) {
    const buf = toBuffer(data, 'data')
    return callNative(() => this._n.trySend(buf))
  }

  /**
   * Receives the next message. `options.timeout` (ms) overrides `recvTimeout`;
   * `options.signal` aborts it. A receive that times out or is aborted takes no
   * message: the next receive gets it.
   */
  recv(options) {
    return this._recv(undefined, options)
  }

  /**
   * Receives the next message into `buffer` (a Buffer or Uint8Array) and
   * resolves with its length. A message longer than the buffer rejects with
   * SHMSOCK_BUFFER_TOO_SMALL and stays first in line.
   */
  recvInto(buffer, options) {
    if (!(buffer instanceof Uint8Array)) throw typeError(`buffer must be a Buffer or a Uint8Array; received ${describe(buffer)}`)
    return this._recv(toBuffer(buffer, 'buffer'), options)
  }

  _recv(into, options) {
    return receive(this, into, options)
  }

  /** The next message if one is complete now, else null. Never waits. */
  tryRecv() {
    const msg = callNative(() => this._n.tryRecv())
    return msg == null ? null : msg
  }

  /** Closes the stream; pending receives and waiting sends reject with SHMSOCK_CLOSED. Idempotent. */
  close() {
    const op = newOp()
    return this._n.close(op) ? Promise.resolve() : track(op, this)
  }

  /** `await using stream = await connect(...)` closes it at the end of the block. */
  [asyncDispose]() {
    return this.close()
  }

  /** Messages until the peer closes (or this side closes); other errors are thrown. */
  [Symbol.asyncIterator]() {
    return messagesOf(this)
  }

  /**
   * A `stream.Duplex` over this connection, for `pipeline()`: each chunk
   * written is sent as one message, each message received is pushed as one
   * chunk (a byte-stream consumer may merge chunks: boundaries then are the
   * consumer's business). Ending the writable side does nothing to the
   * connection; the readable side ends when the peer closes; destroying the
   * Duplex closes the stream.
   */
  toDuplex(options) {
    const stream = this
    let reading = false
    return new Duplex({
      ...checkOptions(options, 'options'),
      read() {
        if (reading) return
        reading = true
        const next = () => {
          stream.recv().then(
            (msg) => {
              if (this.push(msg)) next()
              else reading = false
            },
            (err) => {
              reading = false
              if (err.code === codes.PEER_CLOSED || err.code === codes.CLOSED) this.push(null)
              else this.destroy(err)
            }
          )
        }
        next()
      },
      write(chunk, encoding, callback) {
        stream.send(typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk).then(() => callback(), callback)
      },
      destroy(err, callback) {
        stream.close().then(() => callback(err), () => callback(err))
      },
    })
  }

  get peerPublicKey() {
    return this._n.peerPublicKey
  }
  get peerPublicKeyText() {
    return native.publicKeyText(this._n.peerPublicKey)
  }
  get peerFingerprint() {
    return native.fingerprint(this._n.peerPublicKey)
  }
  get localPublicKey() {
    return this._n.localPublicKey
  }
  get peerCredentials() {
    return this._n.peerCredentials
  }
  get stats() {
    return this._n.stats
  }
  get cipher() {
    return this._n.cipher
  }
  get backend() {
    return this._n.backend
  }
  get ringSize() {
    return this._n.ringSize
  }
  get peerMaxMessageSize() {
    return this._n.peerMaxMessageSize
  }
  get endpoint() {
    return this._n.endpoint
  }
  get role() {
    return this._n.role
  }
  get closed() {
    return this._n.closed
  }
}

// ------------------------------------------------------------------ Listener

// Listeners and Publishers not closed yet: closed when the process exits (process.exit
// included), so no endpoint's socket file outlives its process.
const openListeners = new Set()
process.on('exit', () => {
  for (const ref of openListeners) {
    const n = ref.deref()
    if (n) n.close()
  }
  openListeners.clear()
})

/** A bound endpoint that accepts clients. Create with `Listener.bind()` (or `listen()`). */
class Listener {
  constructor(nativeListener, token) {
    if (token !== kStream) throw new TypeError('use Listener.bind() to get a Listener')
    this._n = nativeListener
    this._ref = new WeakRef(nativeListener)
    openListeners.add(this._ref)
  }

  /** Binds endpoint `name`; `options.keypair` (the server's identity) is required. */
  static bind(name, options) {
    checkName(name)
    const [keypair, opts] = nativeOptions(options, 'options')
    if (!keypair) throw typeError('Listener.bind needs options.keypair: the server\'s Keypair, whose public key clients pin')
    return new Listener(callNative(() => NativeListener.bind(name, keypair, opts)), kStream)
  }

  /** The next client that completes the handshake (`options.timeout` in ms, `options.signal`). */
  accept(options) {
    const limit = waitOptions(options)
    if (limit.signal && limit.signal.aborted) return Promise.reject(abortError(limit.signal))
    const op = newOp()
    try {
      this._n.accept(op)
    } catch (err) {
      return Promise.reject(fromNative(err))
    }
    const timeoutError = () => makeError(codes.TIMEOUT, 'accept timed out: no client connected')
    const cancel = (op) => this._n.cancelAccept(op)
    return track(op, this, wrapStream, { timeout: limit.timeout, timeoutError, signal: limit.signal, cancel })
  }

  /** Removes the endpoint; pending accepts fail with SHMSOCK_CLOSED. Accepted streams stay open. Idempotent. */
  close() {
    openListeners.delete(this._ref)
    this._n.close()
  }

  /** `using listener = listen(...)` closes it at the end of the block. */
  [dispose]() {
    this.close()
  }

  /** Accepted streams until the listener is closed. */
  async *[Symbol.asyncIterator]() {
    for (;;) {
      let stream
      try {
        stream = await this.accept()
      } catch (err) {
        if (err.code === codes.CLOSED) return
        throw err
      }
      yield stream
    }
  }

  get name() {
    return this._n.name
  }
  get publicKey() {
    return this._n.publicKey
  }
  get publicKeyText() {
    return native.publicKeyText(this._n.publicKey)
  }
  get rejectedCount() {
    return this._n.rejectedCount
  }
  get closed() {
    return this._n.closed
  }
}

// ------------------------------------------------------------------ Server

// Runs a user handler; an exception (or a rejected promise) goes to 'error'.
function reportTo(emitter, err, ...rest) {
  if (emitter.listenerCount('error') > 0) {
    try {
      emitter.emit('error', err, ...rest)
      return
    } catch (again) {
      err = again
    }
  }
  process.emitWarning(`shmsock: unhandled error in ${emitter.constructor.name}: ${err && err.stack ? err.stack : err}`)
}

/** One client of a Server. Emits 'data' (Buffer), 'error' (Error) and 'close' (reason). */
class Connection extends EventEmitter {
  constructor(server, stream, id) {
    super({ captureRejections: true })
    this.server = server
    this.stream = stream
    this.id = id
  }

  /**
   * Sends a message to this client; never blocks. Resolves once it is in the
   * ring; what does not fit waits in this connection's queue, which holds at
   * most `maxQueuedBytes` (default 1 MiB; one message of any size when
   * empty): beyond that the promise rejects with SHMSOCK_WOULD_BLOCK and
   * nothing is queued (a client that does not read cannot grow the server's
   * memory). Drop the message, retry later or close the connection.
   */
  send(data) {
    return this.stream.send(data)
  }

  /** Sends only if the message fits in the ring now. */
  trySend(data) {
    return this.stream.trySend(data)
  }

  /** Closes this connection ('close' follows). */
  close() {
    return this.stream.close()
  }

  [asyncDispose]() {
    return this.close()
  }

  get peerPublicKey() {
    return this.stream.peerPublicKey
  }
  get peerPublicKeyText() {
    return this.stream.peerPublicKeyText
  }
  get peerFingerprint() {
    return this.stream.peerFingerprint
  }
  get peerCredentials() {
    return this.stream.peerCredentials
  }
  get stats() {
    return this.stream.stats
  }
  get closed() {
    return this.stream.closed
  }

  _emitSafe(event, ...args) {
    try {
      this.emit(event, ...args)
    } catch (err) {
      this.server._report(err, this)
    }
  }

  [Symbol.for('nodejs.rejection')](err) {
    this.server._report(err, this)
  }

  _onData(data) {
    this._emitSafe('data', data)
    this.server._emitSafe('data', this, data)
  }

  _onEnd(reason) {
    flows.delete(this.stream._n.id)
    this.server.connections.delete(this)
    if (reason) {
      if (this.listenerCount('error') > 0) this._emitSafe('error', reason)
      this.server._report(reason, this)
    }
    this.stream.close().catch(() => {})
    this._emitSafe('close', reason)
    this.server._emitSafe('close', this, reason)
  }
}

/**
 * An event-driven server: 'connection' (conn), 'data' (conn, data),
 * 'error' (err, conn | null), 'close' (conn, reason | null), 'listening'.
 * An open Server keeps the process alive until `close()`.
 */
class Server extends EventEmitter {
  constructor(options, connectionListener) {
    super({ captureRejections: true })
    if (typeof options === 'function') {
      connectionListener = options
      options = undefined
    }
    this._options = nativeOptions(options, 'options')
    if (!this._options[0]) throw typeError('a Server needs options.keypair: the server\'s Keypair, whose public key clients pin')
    /** The connected clients. */
    this.connections = new Set()
    this._listener = null
    this._nextId = 1
    if (connectionListener !== undefined) {
      if (typeof connectionListener !== 'function') throw typeError(`connectionListener must be a function; received ${describe(connectionListener)}`)
      this.on('connection', connectionListener)
    }
  }

  /** Binds endpoint `name` and starts accepting. Throws SHMSOCK_ADDRESS_IN_USE etc. */
  listen(name, callback) {
    checkName(name)
    if (this._listener) throw makeError(codes.INVALID_ARGUMENT, 'this server is already listening')
    if (callback !== undefined && typeof callback !== 'function') throw typeError(`callback must be a function; received ${describe(callback)}`)
    const [keypair, opts] = this._options
    const listener = callNative(() => NativeListener.bind(name, keypair, opts))
    this._listener = listener
    this._ref = new WeakRef(listener)
    openListeners.add(this._ref)
    servers.set(listener.id, this)
    retain()
    callNative(() => listener.serve())
    if (callback) this.once('listening', callback)
    process.nextTick(() => this._emitSafe('listening'))
    return this
  }

  /** The endpoint name (null before listen). */
  get name() {
    return this._listener ? this._listener.name : null
  }
  /** The server's public key (null before listen). */
  get publicKey() {
    return this._listener ? this._listener.publicKey : null
  }
  get publicKeyText() {
    return this._listener ? native.publicKeyText(this._listener.publicKey) : null
  }
  get listening() {
    return !!this._listener && !this._listener.closed
  }

  /** `await using server = createServer(...)` closes it at the end of the block. */
  [asyncDispose]() {
    return this.close()
  }

  /** Stops accepting and closes every connection (each gets 'close'). Idempotent. */
  async close() {
    const listener = this._listener
    if (!listener || listener.closed) return
    openListeners.delete(this._ref)
    listener.close()
    servers.delete(listener.id)
    try {
      await Promise.all([...this.connections].map((c) => c.close().catch(() => {})))
    } finally {
      release()
    }
  }

  _emitSafe(event, ...args) {
    try {
      this.emit(event, ...args)
    } catch (err) {
      this._report(err, event === 'data' || event === 'close' || event === 'connection' ? args[0] : null)
    }
  }

  [Symbol.for('nodejs.rejection')](err, event, ...args) {
    this._report(err, event === 'data' || event === 'close' || event === 'connection' ? args[0] : null)
  }

  _report(err, connection) {
    reportTo(this, err, connection)
  }

  _onConnection(nativeStream) {
    const stream = new Stream(nativeStream, kStream)
    const conn = new Connection(this, stream, this._nextId++)
    this.connections.add(conn)
    flows.set(nativeStream.id, conn)
    this._emitSafe('connection', conn)
    try {
      nativeStream.startFlowing()
    } catch (err) {
      conn._onEnd(fromNative(err))
    }
  }
}

/** Creates a Server (like `net.createServer`); call `listen(name)` on it. */
function createServer(options, connectionListener) {
  return new Server(options, connectionListener)
}

// ------------------------------------------------------------------ Client

/**
 * An event-driven client: 'data' (Buffer), 'error' (Error), 'close' (reason | null).
 * An open Client keeps the process alive until it is closed (by either side).
 */
class Client extends EventEmitter {
  constructor(stream, token) {
    super({ captureRejections: true })
    if (token !== kStream) throw new TypeError('use Client.connect() to get a Client')
    this.stream = stream
    this._open = true
    flows.set(stream._n.id, this)
    retain()
    // Listeners attach after connect() resolves: start delivering then.
    setImmediate(() => {
      if (!this._open) return
      try {
        stream._n.startFlowing()
      } catch (err) {
        this._onEnd(fromNative(err))
      }
    })
  }

  /** Connects to endpoint `name` (see `Stream.connect` for the options). */
  static async connect(name, options) {
    const stream = await Stream.connect(name, options)
    return new Client(stream, kStream)
  }

  /** Sends a message. */
  write(data) {
    return this.stream.send(data)
  }

  /** Sends only if the message fits in the ring now. */
  tryWrite(data) {
    return this.stream.trySend(data)
  }

  /** Closes the connection ('close' follows). Idempotent. */
  close() {
    return this.stream.close()
  }

  [asyncDispose]() {
    return this.close()
  }

  get serverPublicKey() {
    return this.stream.peerPublicKey
  }
  get stats() {
    return this.stream.stats
  }
  get closed() {
    return !this._open
  }

  _emitSafe(event, ...args) {
    try {
      this.emit(event, ...args)
    } catch (err) {
      reportTo(this, err)
    }
  }

  [Symbol.for('nodejs.rejection')](err) {
    reportTo(this, err)
  }

  _onData(data) {
    this._emitSafe('data', data)
  }

  _onEnd(reason) {
    if (!this._open) return
    this._open = false
    flows.delete(this.stream._n.id)
    if (reason) reportTo(this, reason)
    this.stream.close().catch(() => {})
    this._emitSafe('close', reason)
    release()
  }
}

// ------------------------------------------------------------------ publish/subscribe

// The topic's shape and policy, checked: the native topic options object.
function topicOptions(o) {
  const t = {}
  for (const name of ['slots', 'maxMessageSize', 'maxSubscribers']) {
    const v = optionalNumber(o, name, true)
    if (v !== undefined) t[name] = v
  }
  if (o.policy !== undefined && o.policy !== null) {
    if (o.policy !== 'reliable' && o.policy !== 'latest') {
      throw typeError(`options.policy must be 'reliable' or 'latest'; received ${describe(o.policy)}`)
    }
    t.policy = o.policy
  }
  const timeout = optionalTimeout(o, 'reliableTimeout')
  if (timeout !== undefined) t.reliableTimeout = timeout
  if (o.rekeyInterval === false || o.rekeyInterval === Infinity) {
    t.noRekey = true
  } else {
    const interval = optionalNumber(o, 'rekeyInterval', false)
    if (interval !== undefined) t.rekeyInterval = interval
  }
  return t
}

/**
 * The publishing end of a topic: each message is sealed once for every
 * subscriber. Create with `Publisher.bind()` (or `publish()`). An open
 * Publisher does not keep the process alive by itself.
 */
class Publisher {
  constructor(nativePublisher, token) {
    if (token !== kStream) throw new TypeError('use Publisher.bind() to get a Publisher')
    this._n = nativePublisher
    this._ref = new WeakRef(nativePublisher)
    this._deadline = null
    openListeners.add(this._ref)
  }

  /**
   * Binds topic `name`; `options.keypair` (the publisher's identity, which
   * subscribers pin) is required. Topic options: `slots`, `maxMessageSize`,
   * `policy` ('reliable' | 'latest'), `reliableTimeout` (ms), `rekeyInterval`
   * (ms; `false` or `Infinity`: only on departures), `maxSubscribers`; and
   * `allowedClients`, `allowedUids`, `handshakeTimeout`, `requireChacha` as
   * for a listener.
   */
  static bind(name, options) {
    checkName(name)
    const o = checkOptions(options, 'options')
    const topic = topicOptions(o)
    const [keypair, opts] = nativeOptions({ ...o, maxMessageSize: undefined }, 'options')
    if (!keypair) throw typeError('Publisher.bind needs options.keypair: the publisher\'s Keypair, whose public key subscribers pin')
    return new Publisher(callNative(() => native.NativePublisher.bind(name, keypair, opts, topic)), kStream)
  }

  /**
   * Publishes one message to every subscriber. Always returns a promise,
   * settled at once when the message fits in the ring (always on a latest
   * topic). When a reliable topic's ring is full it resolves once the message
   * is in, in order with earlier publishes: when the slowest subscriber moves
   * on, or after `reliableTimeout`, when the subscribers still in the way are
   * dropped. Never blocks the event loop and uses no thread.
   */
  publish(data) {
    const buf = toBuffer(data, 'data')
    const op = newOp()
    const promise = started(op, this, null, () => this._n.publish(op, buf))
    this._armDeadline()
    return promise
  }

  // Nothing signals the moment a blocked publish may drop the subscribers in
  // its way (the reliable timeout): a timer then asks the native side to try.
  // Unreferenced: waiting messages keep the process alive through their poll.
  _armDeadline() {
    if (this._deadline) return
    const ms = this._n.publishDeadline
    if (ms == null) return
    this._deadline = setTimeout(() => {
      this._deadline = null
      this._n.flush()
      this._armDeadline()
    }, Math.ceil(ms))
    this._deadline.unref()
  }

  /** Resolves once `n` subscribers are connected (`options.timeout` in ms, `options.signal`). */
  waitForSubscribers(n, options) {
    if (!Number.isInteger(n) || n < 0) throw typeError(`n must be a non-negative integer; received ${describe(n)}`)
    const limit = waitOptions(options)
    if (limit.signal && limit.signal.aborted) return Promise.reject(abortError(limit.signal))
    const op = newOp()
    try {
      this._n.waitForSubscribers(op, n, limit.timeout)
    } catch (err) {
      return Promise.reject(fromNative(err))
    }
    // An abort just stops listening: the native wait ends with its timeout or the close.
    return track(op, this, null, limit.signal ? { signal: limit.signal, cancel: () => true } : undefined)
  }

  /** The subscribers now: `{ id, publicKey, credentials, joinedAt }`. */
  subscribers() {
    return this._n.subscribers()
  }

  /** Removes subscriber `id` (its receives end with SHMSOCK_PEER_CLOSED); the key is rotated before this returns. */
  remove(id) {
    if (!Number.isInteger(id)) throw typeError(`id must be an integer; received ${describe(id)}`)
    callNative(() => this._n.remove(id))
  }

  /** Rotates the group key now (it also rotates on every departure and on schedule). */
  rotateKey() {
    callNative(() => this._n.rotateKey())
  }

  /**
   * Closes the topic: subscribers receive every message published before,
   * then the end; publishes not complete reject with SHMSOCK_CLOSED; the name
   * is free at once. Idempotent.
   */
  close() {
    openListeners.delete(this._ref)
    if (this._deadline) clearTimeout(this._deadline)
    this._deadline = null
    for (const op of this._n.close()) settle(op, makeError(codes.CLOSED, 'the publisher was closed'))
  }

  /** `using topic = publish(...)` closes it at the end of the block. */
  [dispose]() {
    this.close()
  }

  get subscriberCount() {
    return this._n.subscriberCount
  }
  get epoch() {
    return this._n.epoch
  }
  get sequence() {
    return this._n.sequence
  }
  get droppedCount() {
    return this._n.droppedCount
  }
  get topic() {
    return this._n.topic
  }
  get publicKey() {
    return this._n.publicKey
  }
  get publicKeyText() {
    return native.publicKeyText(this._n.publicKey)
  }
  get cipher() {
    return this._n.cipher
  }
  get maxMessageSize() {
    return this._n.maxMessageSize
  }
  get policy() {
    return this._n.policy
  }
  get closed() {
    return this._n.closed
  }
}

const wrapSubscriber = (n) => new Subscriber(n, kStream)

/**
 * The receiving end of a topic: `recv()`, `for await (const msg of sub)`
 * (ends when the publisher closes the topic), or 'message' events (Buffer)
 * once a 'message' listener is added, with 'error' (Error) and 'close'
 * (reason | null). Create with `Subscriber.connect()` (or `subscribe()`).
 */
class Subscriber extends EventEmitter {
  constructor(nativeSubscriber, token) {
    super({ captureRejections: true })
    if (token !== kStream) throw new TypeError('use Subscriber.connect() to get a Subscriber')
    this._n = nativeSubscriber
    this._flowing = false
    this.on('newListener', (event) => {
      if (event !== 'message' || this._flowing) return
      this._flowing = true
      // After the listener is added (newListener runs before).
      process.nextTick(() => {
        if (this._n.closed) return
        flows.set(this._n.id, this)
        try {
          this._n.startFlowing()
        } catch (err) {
          this._onEnd(fromNative(err))
        }
      })
    })
  }

  /**
   * Subscribes to topic `name` whose publisher key `options.serverKey` pins.
   * `options.wait` (ms): keep trying while no publisher has bound it;
   * `options.signal`: an AbortSignal; `options.recvTimeout`: the default
   * limit of `recv`.
   */
  static connect(name, options) {
    return connectWith(native.subscribe, name, options, wrapSubscriber)
  }

  /**
   * The next message. `options.timeout` (ms) overrides `recvTimeout`;
   * `options.signal` aborts it; neither loses a message. Rejects with
   * SHMSOCK_PEER_CLOSED at the end of the topic, SHMSOCK_PEER_GONE if the
   * publisher died.
   */
  recv(options) {
    return receive(this, undefined, options)
  }

  /** The next message into `buffer`; resolves with its length. */
  recvInto(buffer, options) {
    if (!(buffer instanceof Uint8Array)) throw typeError(`buffer must be a Buffer or a Uint8Array; received ${describe(buffer)}`)
    return receive(this, toBuffer(buffer, 'buffer'), options)
  }

  /** Messages until the end of the topic; other errors are thrown. */
  [Symbol.asyncIterator]() {
    return messagesOf(this)
  }

  /** Leaves the topic; pending receives reject with SHMSOCK_CLOSED. Idempotent. */
  close() {
    this._n.close()
  }

  [dispose]() {
    this.close()
  }

  get lost() {
    return this._n.lost
  }
  get received() {
    return this._n.received
  }
  get epoch() {
    return this._n.epoch
  }
  get topic() {
    return this._n.topic
  }
  get publisherPublicKey() {
    return this._n.publisherPublicKey
  }
  get publisherPublicKeyText() {
    return native.publicKeyText(this._n.publisherPublicKey)
  }
  get publisherFingerprint() {
    return native.fingerprint(this._n.publisherPublicKey)
  }
  get localPublicKey() {
    return this._n.localPublicKey
  }
  get cipher() {
    return this._n.cipher
  }
  get maxMessageSize() {
    return this._n.maxMessageSize
  }
  get closed() {
    return this._n.closed
  }

  _emitSafe(event, ...args) {
    try {
      this.emit(event, ...args)
    } catch (err) {
      reportTo(this, err)
    }
  }

  [Symbol.for('nodejs.rejection')](err) {
    reportTo(this, err)
  }

  _onData(data) {
    this._emitSafe('message', data)
  }

  _onEnd(reason) {
    flows.delete(this._n.id)
    if (reason) reportTo(this, reason)
    this._n.close()
    this._emitSafe('close', reason)
  }
}

// ------------------------------------------------------------------ exports

/** The package version (equal to the Rust workspace's). */
const version = native.nativeVersion()

/** Connects a Stream (same as `Stream.connect`). */
function connect(name, options) {
  return Stream.connect(name, options)
}

/** Binds a Listener (same as `Listener.bind`). */
function listen(name, options) {
  return Listener.bind(name, options)
}

/** Connects a Client (same as `Client.connect`). */
function connectClient(name, options) {
  return Client.connect(name, options)
}

/** Binds a topic (same as `Publisher.bind`). */
function publish(name, options) {
  return Publisher.bind(name, options)
}

/** Subscribes to a topic (same as `Subscriber.connect`). */
function subscribe(name, options) {
  return Subscriber.connect(name, options)
}

/** The text form `shmsock-pk:...` of a public key. */
function publicKeyText(key) {
  return native.publicKeyText(toKey(key, 'key'))
}

/** The short fingerprint of a public key, e.g. `3f2a:9c11:07be:55d0`. */
function fingerprint(key) {
  return native.fingerprint(toKey(key, 'key'))
}

/** The 32 bytes of a public key in text form. */
function parsePublicKey(text) {
  if (typeof text !== 'string') throw typeError(`the key must be a string 'shmsock-pk:...'; received ${describe(text)}`)
  return callNative(() => native.parsePublicKey(text))
}

// Written out name by name so that ES modules can import them by name.
module.exports = {
  Keypair,
  Stream,
  Listener,
  Server,
  Connection,
  Client,
  Publisher,
  Subscriber,
  ShmsockError,
  codes,
  version,
  connect,
  listen,
  createServer,
  connectClient,
  publish,
  subscribe,
  publicKeyText,
  fingerprint,
  parsePublicKey,
}

// For the package's own tests: counters of native resources.
Object.defineProperty(module.exports, '_internals', {
  enumerable: false,
  value: {
    liveStreams: native.liveStreams,
    liveListeners: native.liveListeners,
    active: () => active,
    pending: () => pending.size,
  },
})
