'use strict'
// Dispatch: the operations waiting for the native side and the promises they
// settle, with their timeouts and AbortSignals; the objects that receive
// events (flowing streams, serving listeners); the count that keeps Node's
// event loop alive; and `dispatch`, the one function the native module calls
// with its results (it waits on the connections' fds with libuv poll handles
// on this thread's own event loop).

const native = require('./native.js')
const { makeError, abortError, fromNative } = require('./errors.js')

/**
 * An operation waiting for the native side. `owner` keeps the object it runs
 * on reachable until it settles.
 * @typedef {object} Pending
 * @property {(value: any) => void} resolve
 * @property {(error: unknown) => void} reject
 * @property {object | null} owner
 * @property {((value: any) => any) | null} wrap
 * @property {ReturnType<typeof setTimeout> | null} timer
 * @property {AbortSignal | null} signal
 * @property {(() => void) | null} onAbort
 * @property {boolean} retained
 */

/**
 * The limits of a waiting operation: on a timeout or an abort, `cancel(op)`
 * asks the native side to drop the operation; only if it did (it had not
 * completed) is the promise rejected, so a completed receive is never lost.
 * @typedef {object} Limit
 * @property {number} [timeout] ms
 * @property {() => Error} [timeoutError]
 * @property {AbortSignal} [signal]
 * @property {(op: number) => boolean} [cancel]
 */

/**
 * What receives a flowing stream's events (a Server's Connection, a Client, a Subscriber).
 * @typedef {object} Flow
 * @property {(data: Buffer) => void} _onData
 * @property {(reason: Error | null) => void} _onEnd
 */

/**
 * What receives a serving listener's events (a Server).
 * @typedef {object} Serving
 * @property {(stream: import('../native').NativeStream) => void} _onConnection
 * @property {(err: Error, connection: null) => void} _report
 */

/** @type {Map<number, Pending>} Operations waiting for the native side. */
const pending = new Map()
/** @type {Map<number, Flow>} Flowing streams (Server connections, Clients, Subscribers): stream id -> handler. */
const flows = new Map()
/** @type {Map<number, Serving>} Serving listeners: listener id -> Server. */
const servers = new Map()
/** @type {number[]} Operations whose starting native call is running (see `started`). */
const starting = []
/** @type {Map<number, { error: unknown, value: unknown }>} Their results, delivered before that call returned. */
const early = new Map()
let nextOp = 1
// Operations that completed at once since the event loop last turned, and
// the bytes they received (see `atOnce`).
let streakOps = 0
let streakBytes = 0
const YIELD_OPS = 1024
const YIELD_BYTES = 4 << 20
// What a send that completed at once returns: a settled promise can be shared.
const DONE_NOW = Promise.resolve(undefined)
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

/**
 * A promise settled when the native side reports `op`.
 * @param {number} op
 * @param {object | null} owner
 * @param {((value: any) => any) | null} [wrap]
 * @param {Limit} [limit]
 * @returns {Promise<any>}
 */
function track(op, owner, wrap, limit) {
  const { promise, p } = begin(op, owner, wrap)
  waitFor(op, p, limit)
  return promise
}

/**
 * Registers `op`, whose result the native side will report through
 * `dispatch`. Not retained yet (see `waitFor`).
 * @param {number} op
 * @param {object | null} owner
 * @param {((value: any) => any) | null | undefined} wrap
 */
function begin(op, owner, wrap) {
  /** @type {Pending | undefined} */
  let p
  /** @type {Promise<any>} */
  const promise = new Promise((resolve, reject) => {
    p = { resolve, reject, owner, wrap: wrap || null, timer: null, signal: null, onAbort: null, retained: false }
  })
  const registered = /** @type {Pending} */ (p)
  pending.set(op, registered)
  return { promise, p: registered }
}

/**
 * A registered operation that must wait: keeps the process alive and arms
 * its limits (unless it completed meanwhile).
 * @param {number} op
 * @param {Pending} p
 * @param {Limit} [limit]
 */
function waitFor(op, p, limit) {
  if (pending.get(op) !== p) return
  p.retained = true
  retain()
  if (!limit) return
  /** @param {unknown} error */
  const giveUp = (error) => {
    if (pending.get(op) !== p) return
    if (limit.cancel && !limit.cancel(op)) return
    settle(op, error)
  }
  if (limit.timeout !== undefined) {
    const timeoutError = limit.timeoutError || (() => new Error('timed out'))
    p.timer = setTimeout(() => giveUp(timeoutError()), limit.timeout)
  }
  const signal = limit.signal
  if (signal) {
    p.signal = signal
    p.onAbort = () => giveUp(abortError(signal))
    signal.addEventListener('abort', p.onAbort, { once: true })
  }
}

/**
 * Runs `start()` (the native call that starts `op`, returning true when it
 * completed at once, or its value) and returns a promise of its result.
 * Most operations complete in that call (a send that fits, a message already
 * there): they cost no registration, no pending entry and no ref of the loop.
 * An operation registers only when it must wait; one the call completed
 * anyway, through a nested call made by a JavaScript handler it ran (it
 * delivers other operations' results), is taken from `early`.
 * @param {number} op
 * @param {object | null} owner
 * @param {((value: any) => any) | null} wrap
 * @param {() => unknown} start
 * @param {Limit} [limit]
 * @returns {Promise<any>}
 */
function started(op, owner, wrap, start, limit) {
  let result
  starting.push(op)
  try {
    result = start()
  } catch (err) {
    early.delete(op)
    return Promise.reject(fromNative(err))
  } finally {
    starting.pop()
  }
  if (early.size !== 0 && early.has(op)) {
    const { error, value } = /** @type {{ error: unknown, value: unknown }} */ (early.get(op))
    early.delete(op)
    return error ? Promise.reject(error) : atOnce(wrap ? wrap(value) : value)
  }
  if (result === true) return atOnce(wrap ? wrap(undefined) : undefined)
  if (result != null && result !== false) return atOnce(wrap ? wrap(result) : result)
  const { promise, p } = begin(op, owner, wrap)
  waitFor(op, p, limit)
  return promise
}

/**
 * A promise of the result of an operation that completed at once. Such
 * completions resolve without the event loop turning: a receiver that never
 * has to wait (its ring always holds the next message) or a sender that
 * never has to wait would otherwise keep the loop from running anything
 * else — its timers, other sockets and the finalizers of collected Buffers,
 * which Node runs on a turn of the loop and which give large messages'
 * blocks back for reuse (without them each large message is received into
 * new memory: 5-11 page faults per 64 KiB message instead of 1, measured).
 * So after YIELD_OPS such completions or YIELD_BYTES received, one resolves
 * through `setImmediate`, after the loop's other work. `dispatch` (a turn of
 * the loop) starts the count again.
 * @param {unknown} value
 * @returns {Promise<any>}
 */
function atOnce(value) {
  streakOps++
  if (value !== null && typeof value === 'object' && 'length' in value) {
    streakBytes += /** @type {{ length: number }} */ (value).length
  } else if (typeof value === 'number') {
    streakBytes += value
  }
  if (streakOps < YIELD_OPS && streakBytes < YIELD_BYTES) return value === undefined ? DONE_NOW : Promise.resolve(value)
  streakOps = 0
  streakBytes = 0
  return new Promise((resolve) => setImmediate(resolve, value))
}

/**
 * @param {number} op
 * @param {unknown} error
 * @param {unknown} [value]
 */
function settle(op, error, value) {
  const p = pending.get(op)
  if (!p) {
    // Completed while its own starting call still runs (see `started`).
    if (starting.includes(op)) early.set(op, { error, value })
    return
  }
  pending.delete(op)
  if (p.retained) release()
  if (p.timer) clearTimeout(p.timer)
  if (p.signal && p.onAbort) p.signal.removeEventListener('abort', p.onAbort)
  if (error) p.reject(error)
  else p.resolve(p.wrap ? p.wrap(value) : value)
}

// The kinds of the native module's events.
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

/**
 * Receives the native side's events: one as arguments (kind, id, value, code,
 * message), or a batch as an array of such arrays.
 * @param {number | Array<Array<unknown>>} events
 * @param {number} [id]
 * @param {unknown} [value]
 * @param {string} [code]
 * @param {string} [message]
 */
function dispatch(events, id, value, code, message) {
  streakOps = 0
  streakBytes = 0
  if (typeof events === 'number') {
    handle(events, /** @type {number} */ (id), value, /** @type {string} */ (code), /** @type {string} */ (message))
    return
  }
  for (const ev of events) {
    const [kind, evId, evValue, evCode, evMessage] = /** @type {[number, number, any, string, string]} */ (ev)
    handle(kind, evId, evValue, evCode, evMessage)
  }
}

/**
 * One event: settles the operation it completes or tells its receiver.
 * @param {number} kind
 * @param {number} id
 * @param {any} value
 * @param {string} code absent (undefined) when the event carries no error
 * @param {string} message likewise
 */
function handle(kind, id, value, code, message) {
  try {
    switch (kind) {
      case RECV:
        settle(id, null, typeof value === 'number' ? landed(value) : value)
        break
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
        if (flow) flow._onData(typeof value === 'number' ? landed(value) : value)
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
    const e = /** @type {any} */ (err)
    process.emitWarning(`shmsock: error while dispatching an event: ${e && e.stack ? e.stack : e}`)
  }
}

/**
 * Where the native side copies a small received message it hands over alone
 * (a receive's own result, or an event delivered by itself): it passes only
 * the length, and `landed` copies the message out into a Buffer from Node's
 * pool at once, before anything else can land. That costs less than a Buffer
 * made natively (an ArrayBuffer with its own memory for each message).
 */
const landing = Buffer.allocUnsafeSlow(4096)

/**
 * The message of `length` bytes in the landing buffer, as a Buffer of its own.
 * @param {number} length
 * @returns {Buffer}
 */
function landed(length) {
  const message = Buffer.allocUnsafe(length)
  landing.copy(message, 0, 0, length)
  return message
}

native.init(dispatch, landing)

module.exports = {
  pending,
  flows,
  servers,
  retain,
  release,
  newOp,
  track,
  started,
  settle,
  landed,
  activeCount: () => active,
}
