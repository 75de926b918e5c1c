'use strict'
// Keys: the Keypair class (a static X25519 identity whose secret stays in
// native memory) and the conversion of a public key given by the user (a
// Keypair, 32 bytes or the text form) to its 32 bytes.

const native = require('./native.js')
const { codes, makeError, typeError, describe, callNative } = require('./errors.js')
const { toBuffer } = require('./args.js')

const kKeypair = Symbol('shmsock.Keypair')

/**
 * @param {unknown} p
 * @returns {string}
 */
function checkPath(p) {
  if (typeof p !== 'string') throw typeError(`the key file path must be a string; received ${describe(p)}`)
  return p
}

/**
 * A static X25519 keypair: the identity of a server (which clients pin) or of a
 * client (which a server may allow-list). The secret stays in native memory.
 */
class Keypair {
  /**
   * @param {import('../native').NativeKeypair} nativeKeypair
   * @param {symbol} token
   */
  constructor(nativeKeypair, token) {
    if (token !== kKeypair) throw new TypeError('use Keypair.generate(), Keypair.load() or Keypair.fromSecretKey()')
    this._n = nativeKeypair
  }

  /** A fresh random keypair. */
  static generate() {
    return new Keypair(native.NativeKeypair.generate(), kKeypair)
  }

  /**
   * Loads a key file; refuses one that others can read (SHMSOCK_INSECURE_KEY_FILE).
   * @param {string} path
   */
  static load(path) {
    checkPath(path)
    return new Keypair(callNative(() => native.NativeKeypair.load(path)), kKeypair)
  }

  /**
   * The keypair of a 32-byte secret key.
   * @param {Uint8Array} secret
   */
  static fromSecretKey(secret) {
    if (!(secret instanceof Uint8Array)) throw typeError(`the secret key must be a 32-byte Buffer or Uint8Array; received ${describe(secret)}`)
    return new Keypair(callNative(() => native.NativeKeypair.fromSecretKey(toBuffer(secret, 'secret'))), kKeypair)
  }

  /**
   * Writes a new key file with mode 0600; never overwrites.
   * @param {string} path
   */
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

/**
 * The 32 bytes of a public key given as a Keypair, 32 bytes or text.
 * @param {unknown} key
 * @param {string} what
 * @returns {Buffer}
 */
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

module.exports = { Keypair, toKey }
