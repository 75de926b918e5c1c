'use strict'
// Errors: the stable codes (one per core error kind, from the native module),
// the ShmsockError class, TypeErrors of bad arguments, AbortErrors, and the
// conversion of errors thrown by the native module.

const native = require('./native.js')

/**
 * Every stable error code: `SHMSOCK_` + the core's error kind name.
 * @type {Readonly<Record<string, string>>}
 */
const codes = Object.freeze(Object.fromEntries(native.errorCodes().map((c) => [c.slice('SHMSOCK_'.length), c])))

/** An error from shmsock: `code` is one of `codes` (e.g. `SHMSOCK_TIMEOUT`). */
class ShmsockError extends Error {
  /**
   * @param {string} message
   * @param {string} code
   */
  constructor(message, code) {
    super(message)
    this.name = 'ShmsockError'
    this.code = code
  }
}

/**
 * @param {string} code
 * @param {string} message
 */
function makeError(code, message) {
  return new ShmsockError(message, code)
}

/** @typedef {Error & { code?: string }} CodedError An Error with Node's `code` property. */

/**
 * The error of an operation given up because its AbortSignal fired (as Node's own APIs).
 * @param {AbortSignal | undefined} signal
 */
function abortError(signal) {
  /** @type {CodedError} */
  const err = new Error('The operation was aborted')
  err.name = 'AbortError'
  err.code = 'ABORT_ERR'
  if (signal && signal.reason !== undefined) err.cause = signal.reason
  return err
}

/**
 * @param {string} message
 * @returns {TypeError & { code: string }}
 */
function typeError(message) {
  /** @type {TypeError & { code?: string }} */
  const err = new TypeError(message)
  err.code = 'ERR_INVALID_ARG_TYPE'
  return /** @type {TypeError & { code: string }} */ (err)
}

/**
 * How a bad argument is named in a TypeError's message.
 * @param {unknown} value
 */
function describe(value) {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') return `an instance of ${value.constructor ? value.constructor.name : 'Object'}`
  return `type ${typeof value} (${String(value).slice(0, 40)})`
}

/**
 * A native error thrown synchronously carries its code; give it our class.
 * @param {any} err
 * @returns {any}
 */
function fromNative(err) {
  if (err && typeof err.code === 'string' && err.code.startsWith('SHMSOCK_') && !(err instanceof ShmsockError)) {
    return makeError(err.code, err.message)
  }
  return err
}

/**
 * Runs a native call; what it throws gets our error class.
 * @template T
 * @param {() => T} fn
 * @returns {T}
 */
function callNative(fn) {
  try {
    return fn()
  } catch (err) {
    throw fromNative(err)
  }
}

module.exports = { codes, ShmsockError, makeError, abortError, typeError, describe, fromNative, callNative }
