'use strict'
// Stream: one encrypted, authenticated connection (connect, send, recv,
// recvInto, tryRecv, close, async iteration), and the connect and receive
// operations it shares with a Subscriber.

const native = require('./native.js')
const { codes, makeError, abortError, fromNative, callNative } = require('./errors.js')
const { kInternal, asyncDispose, toBuffer, optionalTimeout, checkOptions, checkName, checkSignal, waitOptions, checkReceiveBuffer } = require('./args.js')
const { nativeOptions } = require('./options.js')
const { newOp, track, started, landed } = require('./dispatch.js')
const { toDuplex } = require('./duplex.js')

// send and recv without napi-rs's per-call bookkeeping (src/hot.rs).
const hot = native.hotCalls()

function recvTimeoutError() {
  return makeError(codes.TIMEOUT, 'recv timed out: no message arrived; nothing was lost')
}

/**
 * A connect (or subscribe) through `nativeFn(op, name, keypair, options, wait)`,
 * on a native thread; resolves with `wrap(result)`.
 * @template T
 * @param {typeof native.connect} nativeFn
 * @param {unknown} name
 * @param {unknown} options
 * @param {(value: any) => T} wrap
 * @returns {Promise<T>}
 */
function connectWith(nativeFn, name, options, wrap) {
  checkName(name)
  const [keypair, opts] = nativeOptions(options, 'options')
  const o = checkOptions(options, 'options')
  const wait = optionalTimeout(o, 'wait')
  const signal = checkSignal(o.signal)
  if (signal && signal.aborted) return Promise.reject(abortError(signal))
  const op = newOp()
  try {
    nativeFn(op, /** @type {string} */ (name), keypair, opts, wait)
  } catch (err) {
    return Promise.reject(fromNative(err))
  }
  /** @param {number} op */
  const cancel = (op) => {
    native.cancelConnect(op)
    return true
  }
  return track(op, null, wrap, signal ? { signal, cancel } : undefined)
}

/**
 * What a receive runs on: a Stream or a Subscriber.
 * @typedef {object} Receiver
 * @property {{ cancelRecv(op: number): boolean }} _n
 * @property {number | undefined} _recvTimeout its default receive timeout (ms)
 * @property {(op: number, into: Buffer | undefined, timeout: number | undefined) => unknown} _startRecv the native receive
 * @property {() => Promise<Buffer>} recv
 */

/**
 * A receive on `owner`, into `into` when given. Resolves with the message (a
 * Buffer) or, with `into`, its length.
 * @param {Receiver} owner
 * @param {Buffer | undefined} into
 * @param {unknown} options
 * @returns {Promise<any>}
 */
function receive(owner, into, options) {
  let timeout = owner._recvTimeout
  let signal
  if (options !== undefined) {
    const limit = waitOptions(options)
    signal = limit.signal
    if (signal && signal.aborted) return Promise.reject(abortError(signal))
    if (limit.timeout !== undefined) timeout = limit.timeout
  }
  const op = newOp()
  return started(op, owner, null, () => owner._startRecv(op, into, timeout), {
    timeout,
    timeoutError: recvTimeoutError,
    signal,
    cancel: (op) => owner._n.cancelRecv(op),
  })
}

/** @type {IteratorReturnResult<undefined>} */
const END = Object.freeze({ value: undefined, done: true })

/**
 * Messages of `owner` until its end (the peer or this side closed); other
 * errors are thrown. A plain iterator rather than an async generator: each
 * message then costs one promise reaction instead of a generator's resume,
 * its `await` and its `yield`'s (about 0.35 µs a message, measured).
 * Concurrent `next()` calls are receives served in order.
 * @implements {AsyncIterableIterator<Buffer>}
 */
class Messages {
  /** @param {Receiver} owner */
  constructor(owner) {
    this._owner = owner
    this._done = false
  }

  /** @returns {Promise<IteratorResult<Buffer, undefined>>} */
  next() {
    if (this._done) return Promise.resolve(END)
    return this._owner.recv().then(
      (value) => ({ value, done: false }),
      (err) => {
        // Ends the iteration either way, as a generator's would.
        this._done = true
        const code = /** @type {any} */ (err).code
        if (code !== codes.PEER_CLOSED && code !== codes.CLOSED) throw err
        return END
      }
    )
  }

  /** Ends the iteration (a `break` out of `for await`); the stream stays open. */
  return() {
    this._done = true
    return Promise.resolve(END)
  }

  [Symbol.asyncIterator]() {
    return this
  }
}

/**
 * @param {Receiver} owner
 * @returns {AsyncIterableIterator<Buffer>}
 */
function messagesOf(owner) {
  return new Messages(owner)
}

/**
 * One encrypted, authenticated connection. Obtain one with `Stream.connect()`
 * (or `connect()`) or `listener.accept()`.
 */
class Stream {
  /**
   * @param {import('../native').NativeStream} nativeStream
   * @param {symbol} token
   */
  constructor(nativeStream, token) {
    if (token !== kInternal) throw new TypeError('use Stream.connect() or listener.accept() to get a Stream')
    this._n = nativeStream
    this._id = nativeStream.id
    this._recvTimeout = nativeStream.recvTimeout ?? undefined
  }

  /**
   * Connects to endpoint `name` whose server key `options.serverKey` pins.
   * `options.wait` (ms): keep trying while no server listens (like the CLI's
   * `--wait`); `options.signal`: an AbortSignal.
   * @param {string} name
   * @param {object} [options]
   * @returns {Promise<Stream>}
   */
  static connect(name, options) {
    return connectWith(native.connect, name, options, wrapStream)
  }

  /**
   * Sends one message; resolves once it is in the ring (in order with earlier sends).
   * @param {Uint8Array | string} data
   * @returns {Promise<void>}
   */
  send(data) {
    const buf = toBuffer(data, 'data')
    const op = newOp()
    return started(op, this, null, () => hot.send(this._id, op, buf))
  }

  /**
   * Sends one message only if it fits in the ring now; returns false otherwise.
   * @param {Uint8Array | string} data
   * @returns {boolean}
   */
  trySend(data) {
    const buf = toBuffer(data, 'data')
    return callNative(() => this._n.trySend(buf))
  }

  /**
   * Receives the next message. `options.timeout` (ms) overrides `recvTimeout`;
   * `options.signal` aborts it. A receive that times out or is aborted takes no
   * message: the next receive gets it.
   * @param {object} [options]
   * @returns {Promise<Buffer>}
   */
  recv(options) {
    return this._recv(undefined, options)
  }

  /**
   * Receives the next message into `buffer` (a Buffer or Uint8Array) and
   * resolves with its length. A message longer than the buffer rejects with
   * SHMSOCK_BUFFER_TOO_SMALL and stays first in line.
   * @param {Uint8Array} buffer
   * @param {object} [options]
   * @returns {Promise<number>}
   */
  recvInto(buffer, options) {
    return this._recv(checkReceiveBuffer(buffer), options)
  }

  /**
   * @param {Buffer | undefined} into
   * @param {unknown} options
   */
  _recv(into, options) {
    return receive(this, into, options)
  }

  /**
   * @param {number} op
   * @param {Buffer | undefined} into
   * @param {number | undefined} timeout ms
   */
  _startRecv(op, into, timeout) {
    const result = hot.recv(this._id, op, into, timeout)
    // A plain receive's small message comes as its length: it is in the landing buffer.
    return into == null && typeof result === 'number' ? landed(result) : result
  }

  /**
   * The next message if one is complete now, else null. Never waits.
   * @returns {Buffer | null}
   */
  tryRecv() {
    const msg = callNative(() => this._n.tryRecv())
    return msg == null ? null : msg
  }

  /**
   * Closes the stream; pending receives and waiting sends reject with SHMSOCK_CLOSED. Idempotent.
   * @returns {Promise<void>}
   */
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
   * A `stream.Duplex` over this connection, for `pipeline()` (see lib/duplex.js).
   * @param {import('node:stream').DuplexOptions} [options]
   */
  toDuplex(options) {
    return toDuplex(this, options)
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

/** @param {import('../native').NativeStream} n */
const wrapStream = (n) => new Stream(n, kInternal)

module.exports = { Stream, wrapStream, connectWith, receive, messagesOf }
