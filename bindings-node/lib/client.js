'use strict'
// Client: the event-driven client (one connection whose messages arrive as
// 'data' events, like a `net.Socket`).

const { fromNative } = require('./errors.js')
const { ReportingEmitter, reportTo } = require('./events.js')
const { kInternal, asyncDispose } = require('./args.js')
const { flows, retain, release } = require('./dispatch.js')
const { Stream } = require('./stream.js')

/**
 * An event-driven client: 'data' (Buffer), 'error' (Error), 'close' (reason | null).
 * An open Client keeps the process alive until it is closed (by either side).
 */
class Client extends ReportingEmitter {
  /**
   * @param {Stream} stream
   * @param {symbol} token
   */
  constructor(stream, token) {
    super()
    if (token !== kInternal) throw new TypeError('use Client.connect() to get a Client')
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
        // Closed by this side before it started: a clean close, no error.
        this._onEnd(this.stream.closed ? null : fromNative(err))
      }
    })
  }

  /**
   * Connects to endpoint `name` (see `Stream.connect` for the options).
   * @param {string} name
   * @param {object} [options]
   */
  static async connect(name, options) {
    const stream = await Stream.connect(name, options)
    return new Client(stream, kInternal)
  }

  /**
   * Sends a message.
   * @param {Uint8Array | string} data
   */
  write(data) {
    return this.stream.send(data)
  }

  /**
   * Sends only if the message fits in the ring now.
   * @param {Uint8Array | string} data
   */
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

  /** @param {Buffer} data */
  _onData(data) {
    this._emitSafe('data', data)
  }

  /** @param {Error | null} reason */
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

module.exports = { Client }
