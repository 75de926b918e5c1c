'use strict'
// Checks of plain arguments shared by every class: byte buffers, numbers and
// timeouts in option objects, endpoint names, AbortSignals; and the symbols
// every class shares (the token only this package passes to constructors,
// Symbol.asyncDispose / Symbol.dispose).

const { codes, makeError, typeError, describe } = require('./errors.js')

/** The token this package's modules pass to constructors users must not call. */
const kInternal = Symbol('shmsock.internal')

// Symbol.asyncDispose / Symbol.dispose (Node 20 has them; older names otherwise).
/** @type {typeof Symbol.asyncDispose} */
const asyncDispose = Symbol.asyncDispose || /** @type {any} */ (Symbol.for('nodejs.asyncDispose'))
/** @type {typeof Symbol.dispose} */
const dispose = Symbol.dispose || /** @type {any} */ (Symbol.for('nodejs.dispose'))

/**
 * A message or key as a Buffer (a Uint8Array's bytes are shared, not copied).
 * @param {unknown} data
 * @param {string} what
 * @returns {Buffer}
 */
function toBuffer(data, what) {
  if (Buffer.isBuffer(data)) return data
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength)
  if (typeof data === 'string') return Buffer.from(data, 'utf8')
  throw typeError(`${what} must be a Buffer, a Uint8Array or a string; received ${describe(data)}`)
}

/**
 * @param {Record<string, any>} options
 * @param {string} name
 * @param {boolean} integer
 * @returns {number | undefined}
 */
function optionalNumber(options, name, integer) {
  const v = options[name]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || Number.isNaN(v) || (integer && !Number.isInteger(v))) {
    throw typeError(`options.${name} must be ${integer ? 'an integer' : 'a number'}; received ${describe(v)}`)
  }
  if (v < 0) throw new RangeError(`options.${name} must be >= 0, not ${v}`)
  return v
}

/** The largest count a native option holds (a u32). */
const MAX_COUNT = 0xffffffff

/**
 * A count that must be at least 1 (a bound such as `maxPendingHandshakes`):
 * not an integer is a TypeError; below 1 or beyond 2^32 - 1, SHMSOCK_INVALID_ARGUMENT.
 * @param {Record<string, any>} options
 * @param {string} name
 * @returns {number | undefined}
 */
function optionalPositiveCount(options, name) {
  const v = options[name]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    throw typeError(`options.${name} must be a positive integer; received ${describe(v)}`)
  }
  if (v < 1 || v > MAX_COUNT) throw makeError(codes.INVALID_ARGUMENT, `options.${name} must be between 1 and ${MAX_COUNT}, not ${v}`)
  return v
}

/**
 * A timeout in ms; Infinity means none (undefined).
 * @param {Record<string, any>} options
 * @param {string} name
 */
function optionalTimeout(options, name) {
  const v = optionalNumber(options, name, false)
  return v === Infinity ? undefined : v
}

/**
 * @param {unknown} options
 * @param {string} what
 * @returns {Record<string, any>}
 */
function checkOptions(options, what) {
  if (options === undefined || options === null) return {}
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw typeError(`${what} must be an object; received ${describe(options)}`)
  }
  return /** @type {Record<string, any>} */ (options)
}

/**
 * @param {unknown} name
 * @returns {string}
 */
function checkName(name) {
  if (typeof name !== 'string') throw typeError(`the endpoint name must be a string; received ${describe(name)}`)
  return name
}

/**
 * @param {unknown} signal
 * @returns {AbortSignal | undefined}
 */
function checkSignal(signal) {
  if (signal === undefined || signal === null) return undefined
  const s = /** @type {any} */ (signal)
  if (typeof s !== 'object' || typeof s.aborted !== 'boolean' || typeof s.addEventListener !== 'function') {
    throw typeError(`options.signal must be an AbortSignal; received ${describe(signal)}`)
  }
  return s
}

/**
 * `{ timeout, signal }` of recv/accept/connect, checked.
 * @param {unknown} options
 * @returns {{ timeout: number | undefined, signal: AbortSignal | undefined }}
 */
function waitOptions(options) {
  const o = checkOptions(options, 'options')
  return { timeout: optionalTimeout(o, 'timeout'), signal: checkSignal(o.signal) }
}

/**
 * A Buffer or Uint8Array to receive into, checked.
 * @param {unknown} buffer
 */
function checkReceiveBuffer(buffer) {
  if (!(buffer instanceof Uint8Array)) throw typeError(`buffer must be a Buffer or a Uint8Array; received ${describe(buffer)}`)
  return toBuffer(buffer, 'buffer')
}

module.exports = {
  kInternal,
  asyncDispose,
  dispose,
  toBuffer,
  optionalNumber,
  optionalPositiveCount,
  optionalTimeout,
  checkOptions,
  checkName,
  checkSignal,
  waitOptions,
  checkReceiveBuffer,
}
