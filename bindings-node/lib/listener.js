'use strict'
// Listener: a bound endpoint that accepts streams one `accept()` at a time;
// and the registry of open endpoints (listeners, servers, topics) that the
// process closes when it exits, so no socket file outlives its process.

const native = require('./native.js')
const { codes, makeError, typeError, abortError, callNative } = require('./errors.js')
const { kInternal, dispose, checkName, waitOptions } = require('./args.js')
const { nativeOptions } = require('./options.js')
const { newOp, started } = require('./dispatch.js')
const { wrapStream } = require('./stream.js')

/**
 * Listeners and Publishers not closed yet: closed when the process exits
 * (process.exit included).
 * @type {Set<WeakRef<{ close(): unknown }>>}
 */
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
  /**
   * @param {import('../native').NativeListener} nativeListener
   * @param {symbol} token
   */
  constructor(nativeListener, token) {
    if (token !== kInternal) throw new TypeError('use Listener.bind() to get a Listener')
    this._n = nativeListener
    this._ref = new WeakRef(nativeListener)
    openListeners.add(this._ref)
  }

  /**
   * Binds endpoint `name`; `options.keypair` (the server's identity) is required.
   * @param {string} name
   * @param {object} options
   */
  static bind(name, options) {
    checkName(name)
    const [keypair, opts] = nativeOptions(options, 'options')
    if (!keypair) throw typeError("Listener.bind needs options.keypair: the server's Keypair, whose public key clients pin")
    return new Listener(callNative(() => native.NativeListener.bind(name, keypair, opts)), kInternal)
  }

  /**
   * The next client that completes the handshake (`options.timeout` in ms, `options.signal`).
   * @param {object} [options]
   * @returns {Promise<import('./stream.js').Stream>}
   */
  accept(options) {
    const limit = waitOptions(options)
    if (limit.signal && limit.signal.aborted) return Promise.reject(abortError(limit.signal))
    const op = newOp()
    const timeoutError = () => makeError(codes.TIMEOUT, 'accept timed out: no client connected')
    /** @param {number} op */
    const cancel = (op) => this._n.cancelAccept(op)
    // `op` is registered before the native call: a stream that completed
    // while nobody was accepting completes it within that call.
    const limits = { timeout: limit.timeout, timeoutError, signal: limit.signal, cancel }
    return started(op, this, wrapStream, () => this._n.accept(op), limits)
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

  /**
   * Accepted streams until the listener is closed.
   * @returns {AsyncGenerator<import('./stream.js').Stream, void, undefined>}
   */
  async *[Symbol.asyncIterator]() {
    for (;;) {
      let stream
      try {
        stream = await this.accept()
      } catch (err) {
        if (/** @type {any} */ (err).code === codes.CLOSED) return
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

module.exports = { Listener, openListeners }
