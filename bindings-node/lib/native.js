'use strict'
// The native module (shmsock.node), loaded once: ./shmsock.node when it was
// built here (a development checkout, or an install that built from source),
// else the prebuilt package for this platform (napi-rs convention; see
// native-package.js). Every other module takes `native` from here.

const path = require('node:path')

const root = path.join(__dirname, '..')

/** @returns {import('../native')} */
function loadNative() {
  const local = path.join(root, 'shmsock.node')
  const { platformPackage } = require('../native-package.js')
  const prebuilt = platformPackage()
  /** @type {any} */
  let cause
  try {
    return require(local)
  } catch (/** @type {any} */ err) {
    if (err.code !== 'MODULE_NOT_FOUND') cause = err
  }
  try {
    return require(prebuilt)
  } catch (/** @type {any} */ err) {
    if (err.code !== 'MODULE_NOT_FOUND' || !cause) cause = err
  }
  /** @type {Error & { code?: string }} */
  const e = new Error(
    `shmsock: cannot load the native module: neither ${local} nor the prebuilt package ${prebuilt} loads ` +
      `(${cause.message}). Reinstall shmsock (it builds from source when no prebuilt package fits; that needs Rust ` +
      `and cargo), or run 'npm run build' in ${root}.`
  )
  e.code = 'SHMSOCK_NOT_BUILT'
  e.cause = cause
  throw e
}

module.exports = loadNative()
