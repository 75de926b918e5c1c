'use strict'
// Server: the event-driven server (like `net.Server`) that accepts every
// client on the event loop (the native listener's poll handle: handshakes
// advance side by side, no thread each), and Connection, one client of it,
// whose messages arrive as 'data' events.

const native = require('./native.js')
const { codes, makeError, typeError, describe, fromNative, callNative } = require('./errors.js')
const { ReportingEmitter, reportTo } = require('./events.js')
const { kInternal, asyncDispose, checkName, checkOptions } = require('./args.js')
const { nativeOptions } = require('./options.js')
const { flows, servers, retain, release } = require('./dispatch.js')
const { Stream } = require('./stream.js')
const { openListeners } = require('./listener.js')

/** One client of a Server. Emits 'data' (Buffer), 'error' (Error) and 'close' (reason). */
class Connection extends ReportingEmitter {
  /**
   * @param {Server} server
   * @param {Stream} stream
   * @param {number} id
   */
  constructor(server, stream, id) {
    super()
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
   * memory). Drop the message, retry later or close the connection. After a
   * refusal this connection's messages stay unread until the client takes a
   * reply (backpressure).
   * @param {Uint8Array | string} data
   */
  send(data) {
    return this.stream.send(data)
  }

  /**
   * Sends only if the message fits in the ring now.
   * @param {Uint8Array | string} data
   */
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

  /**
   * A listener's error is the server's, about this connection.
   * @param {unknown} err
   */
  _reportEvent(err) {
    this.server._report(err, this)
  }

  /** @param {Buffer} data */
  _onData(data) {
    this._emitSafe('data', data)
    this.server._emitSafe('data', this, data)
  }

  /** @param {Error | null} reason */
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
 * A limit on a Server's connections, checked: a non-negative integer or
 * Infinity (null and undefined: Infinity, the default).
 * @param {unknown} v
 * @param {string} what
 * @returns {number}
 */
function checkMaxConnections(v, what) {
  if (v === undefined || v === null) return Infinity
  if (typeof v !== 'number' || Number.isNaN(v) || (Number.isFinite(v) && !Number.isInteger(v))) {
    throw typeError(`${what} must be a non-negative integer or Infinity; received ${describe(v)}`)
  }
  if (v < 0) throw makeError(codes.INVALID_ARGUMENT, `${what} must be >= 0, not ${v}`)
  return v
}

/**
 * An event-driven server: 'connection' (conn), 'data' (conn, data),
 * 'error' (err, conn | null), 'close' (conn, reason | null), 'listening',
 * 'drop' ({ peerPublicKey, peerPublicKeyText, peerFingerprint,
 * peerCredentials }: a client closed right after its handshake, which
 * completed beside others while the last place under `maxConnections` was
 * taken; the others beyond it are refused at their handshake).
 * An open Server keeps the process alive until `close()`.
 */
class Server extends ReportingEmitter {
  /**
   * @param {object | ((conn: Connection) => void)} [options]
   * @param {(conn: Connection) => void} [connectionListener]
   */
  constructor(options, connectionListener) {
    super()
    if (typeof options === 'function') {
      connectionListener = /** @type {(conn: Connection) => void} */ (options)
      options = undefined
    }
    this._options = nativeOptions(options, 'options')
    if (!this._options[0]) throw typeError("a Server needs options.keypair: the server's Keypair, whose public key clients pin")
    this._maxConnections = checkMaxConnections(checkOptions(options, 'options').maxConnections, 'options.maxConnections')
    /** The connected clients. @type {Set<Connection>} */
    this.connections = new Set()
    /** @type {import('../native').NativeListener | null} */
    this._listener = null
    /** @type {WeakRef<import('../native').NativeListener> | null} */
    this._ref = null
    this._nextId = 1
    if (connectionListener !== undefined) {
      if (typeof connectionListener !== 'function') throw typeError(`connectionListener must be a function; received ${describe(connectionListener)}`)
      this.on('connection', connectionListener)
    }
  }

  /**
   * Binds endpoint `name` and starts accepting. Throws SHMSOCK_ADDRESS_IN_USE etc.
   * @param {string} name
   * @param {() => void} [callback]
   */
  listen(name, callback) {
    checkName(name)
    if (this._listener) throw makeError(codes.INVALID_ARGUMENT, 'this server is already listening')
    if (callback !== undefined && typeof callback !== 'function') throw typeError(`callback must be a function; received ${describe(callback)}`)
    const [keypair, opts] = this._options
    const listener = callNative(() => native.NativeListener.bind(name, /** @type {import('../native').NativeKeypair} */ (keypair), opts))
    this._listener = listener
    this._ref = new WeakRef(listener)
    openListeners.add(this._ref)
    servers.set(listener.id, this)
    retain()
    this._applyMaxConnections()
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

  /**
   * Most connections at once (default Infinity), as `net.Server`'s: a client
   * beyond it is refused at its handshake (its connect rejects with
   * SHMSOCK_RESOURCE_EXHAUSTED, "the server is full", and the server reports
   * it as for any refused client). One whose handshake completed beside others
   * while the last place was taken is closed at once and 'drop' is emitted.
   * Lowering it closes no connection.
   * @returns {number}
   */
  get maxConnections() {
    return this._maxConnections
  }
  set maxConnections(n) {
    this._maxConnections = checkMaxConnections(n, 'maxConnections')
    this._applyMaxConnections()
  }

  /** Gives `maxConnections` to the native listener, which refuses clients beyond it. */
  _applyMaxConnections() {
    const listener = this._listener
    if (!listener || listener.closed) return
    // The native bound is at least 1 (0 leaves every client to `_onConnection`)
    // and at most 2^32 - 1 (in effect none: Infinity).
    const bound = Math.max(1, Math.min(this._maxConnections, 0xffffffff))
    callNative(() => listener.setMaxConnections(bound))
  }

  /** `await using server = createServer(...)` closes it at the end of the block. */
  [asyncDispose]() {
    return this.close()
  }

  /** Stops accepting and closes every connection (each gets 'close'). Idempotent. */
  async close() {
    const listener = this._listener
    if (!listener || listener.closed) return
    if (this._ref) openListeners.delete(this._ref)
    listener.close()
    servers.delete(listener.id)
    try {
      await Promise.all([...this.connections].map((c) => c.close().catch(() => {})))
    } finally {
      release()
    }
  }

  /**
   * A listener's error, with the connection its event concerns (the first
   * argument of 'connection', 'data' and 'close').
   * @param {unknown} err
   * @param {string | symbol} event
   * @param {unknown[]} args
   */
  _reportEvent(err, event, args) {
    this._report(err, event === 'data' || event === 'close' || event === 'connection' ? /** @type {Connection} */ (args[0]) : null)
  }

  /**
   * @param {unknown} err
   * @param {Connection | null} connection
   */
  _report(err, connection) {
    reportTo(this, err, connection)
  }

  /** @param {import('../native').NativeStream} nativeStream */
  _onConnection(nativeStream) {
    const stream = new Stream(nativeStream, kInternal)
    if (this.connections.size >= this._maxConnections) {
      this._drop(stream)
      return
    }
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

  /**
   * Closes a client's stream beyond `maxConnections` (the client sees the end
   * of the connection) and emits 'drop', as `net.Server` does.
   * @param {Stream} stream
   */
  _drop(stream) {
    const info = {
      peerPublicKey: stream.peerPublicKey,
      peerPublicKeyText: stream.peerPublicKeyText,
      peerFingerprint: stream.peerFingerprint,
      peerCredentials: stream.peerCredentials,
    }
    stream.close().catch(() => {})
    this._emitSafe('drop', info)
  }
}

/**
 * Creates a Server (like `net.createServer`); call `listen(name)` on it.
 * @param {object | ((conn: Connection) => void)} [options]
 * @param {(conn: Connection) => void} [connectionListener]
 */
function createServer(options, connectionListener) {
  return new Server(options, connectionListener)
}

module.exports = { Server, Connection, createServer }
