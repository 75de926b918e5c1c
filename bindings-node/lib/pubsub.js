'use strict'
// Publish/subscribe: Publisher (binds a topic, seals each message once for
// every subscriber) and Subscriber (receives a topic's messages by `recv`,
// async iteration or 'message' events).

const native = require('./native.js')
const { codes, makeError, typeError, describe, abortError, fromNative, callNative } = require('./errors.js')
const { ReportingEmitter, reportTo } = require('./events.js')
const { kInternal, dispose, toBuffer, checkOptions, checkName, waitOptions, checkReceiveBuffer } = require('./args.js')
const { nativeOptions, topicOptions } = require('./options.js')
const { flows, newOp, track, started, settle, landed } = require('./dispatch.js')
const { connectWith, receive, messagesOf } = require('./stream.js')
const { openListeners } = require('./listener.js')

/**
 * The publishing end of a topic: each message is sealed once for every
 * subscriber. Create with `Publisher.bind()` (or `publish()`). An open
 * Publisher does not keep the process alive by itself.
 */
class Publisher {
  /**
   * @param {import('../native').NativePublisher} nativePublisher
   * @param {symbol} token
   */
  constructor(nativePublisher, token) {
    if (token !== kInternal) throw new TypeError('use Publisher.bind() to get a Publisher')
    this._n = nativePublisher
    this._ref = new WeakRef(nativePublisher)
    /** @type {ReturnType<typeof setTimeout> | null} */
    this._deadline = null
    openListeners.add(this._ref)
  }

  /**
   * Binds topic `name`; `options.keypair` (the publisher's identity, which
   * subscribers pin) is required. Topic options: `slots`, `maxMessageSize`,
   * `policy` ('reliable' | 'latest'), `reliableTimeout` (ms), `rekeyInterval`
   * (ms; `false` or `Infinity`: only on departures), `maxSubscribers`; and
   * `allowedClients`, `allowedUids`, `handshakeTimeout`, `requireChacha`,
   * `maxPendingHandshakes`, `maxPendingHandshakesPerUid` as for a listener
   * (here they bound the subscriber handshakes in progress).
   * @param {string} name
   * @param {object} options
   */
  static bind(name, options) {
    checkName(name)
    const o = checkOptions(options, 'options')
    const topic = topicOptions(o)
    const [keypair, opts] = nativeOptions({ ...o, maxMessageSize: undefined }, 'options')
    if (!keypair) throw typeError("Publisher.bind needs options.keypair: the publisher's Keypair, whose public key subscribers pin")
    return new Publisher(callNative(() => native.NativePublisher.bind(name, keypair, opts, topic)), kInternal)
  }

  /**
   * Publishes one message to every subscriber. Always returns a promise,
   * settled at once when the message fits in the ring (always on a latest
   * topic). When a reliable topic's ring is full it resolves once the message
   * is in, in order with earlier publishes: when the slowest subscriber moves
   * on, or after `reliableTimeout`, when the subscribers still in the way are
   * dropped. Never blocks the event loop and uses no thread.
   * @param {Uint8Array | string} data
   * @returns {Promise<void>}
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

  /**
   * Resolves once `n` subscribers are connected (`options.timeout` in ms, `options.signal`).
   * @param {number} n
   * @param {object} [options]
   * @returns {Promise<void>}
   */
  waitForSubscribers(n, options) {
    if (!Number.isInteger(n) || n < 0) throw typeError(`n must be a non-negative integer; received ${describe(n)}`)
    const limit = waitOptions(options)
    if (limit.signal && limit.signal.aborted) return Promise.reject(abortError(limit.signal))
    const op = newOp()
    return started(op, this, null, () => this._n.waitForSubscribers(op, n), {
      timeout: limit.timeout,
      timeoutError: () => makeError(codes.TIMEOUT, `${this._n.subscriberCount} of ${n} subscribers connected in time`),
      signal: limit.signal,
      /** @param {number} op */
      cancel: (op) => this._n.cancelWaitForSubscribers(op),
    })
  }

  /** The subscribers now: `{ id, publicKey, credentials, joinedAt }`. */
  subscribers() {
    return this._n.subscribers()
  }

  /**
   * Removes subscriber `id` (its receives end with SHMSOCK_PEER_CLOSED); the key is rotated before this returns.
   * @param {number} id
   */
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

/**
 * The receiving end of a topic: `recv()`, `for await (const msg of sub)`
 * (ends when the publisher closes the topic), or 'message' events (Buffer)
 * once a 'message' listener is added, with 'error' (Error) and 'close'
 * (reason | null). Create with `Subscriber.connect()` (or `subscribe()`).
 */
class Subscriber extends ReportingEmitter {
  /**
   * @param {import('../native').NativeSubscriber} nativeSubscriber
   * @param {symbol} token
   */
  constructor(nativeSubscriber, token) {
    super()
    if (token !== kInternal) throw new TypeError('use Subscriber.connect() to get a Subscriber')
    this._n = nativeSubscriber
    this._recvTimeout = nativeSubscriber.recvTimeout ?? undefined
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
   * @param {string} name
   * @param {object} [options]
   * @returns {Promise<Subscriber>}
   */
  static connect(name, options) {
    return connectWith(native.subscribe, name, options, wrapSubscriber)
  }

  /**
   * The next message. `options.timeout` (ms) overrides `recvTimeout`;
   * `options.signal` aborts it; neither loses a message. Rejects with
   * SHMSOCK_PEER_CLOSED at the end of the topic, SHMSOCK_PEER_GONE if the
   * publisher died.
   * @param {object} [options]
   * @returns {Promise<Buffer>}
   */
  recv(options) {
    return receive(this, undefined, options)
  }

  /**
   * The next message into `buffer`; resolves with its length.
   * @param {Uint8Array} buffer
   * @param {object} [options]
   * @returns {Promise<number>}
   */
  recvInto(buffer, options) {
    return receive(this, checkReceiveBuffer(buffer), options)
  }

  /**
   * @param {number} op
   * @param {Buffer | undefined} into
   */
  _startRecv(op, into) {
    const result = this._n.recv(op, into)
    // A plain receive's small message comes as its length: it is in the landing buffer.
    return into == null && typeof result === 'number' ? landed(result) : result
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

  /** @param {Buffer} data */
  _onData(data) {
    this._emitSafe('message', data)
  }

  /** @param {Error | null} reason */
  _onEnd(reason) {
    flows.delete(this._n.id)
    if (reason) reportTo(this, reason)
    this._n.close()
    this._emitSafe('close', reason)
  }
}

/** @param {import('../native').NativeSubscriber} n */
const wrapSubscriber = (n) => new Subscriber(n, kInternal)

module.exports = { Publisher, Subscriber }
