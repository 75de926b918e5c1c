'use strict'
// Which prebuilt native-module package fits this machine, by napi-rs's naming
// convention: shmsock-<platform>-<arch>, plus -gnu or -musl on Linux (the C
// library the module was linked against). Shared by lib/native.js (loading) and
// scripts/install.mjs (deciding whether to build from source).

function linuxAbi() {
  // glibcVersionRuntime is set only when Node itself runs on glibc.
  /** @type {any} */
  const report = process.report && typeof process.report.getReport === 'function' ? process.report.getReport() : null
  return report && report.header && report.header.glibcVersionRuntime ? 'gnu' : 'musl'
}

/** The name of the prebuilt package for this platform, e.g. `shmsock-linux-x64-gnu`. */
function platformPackage() {
  const base = `shmsock-${process.platform}-${process.arch}`
  return process.platform === 'linux' ? `${base}-${linuxAbi()}` : base
}

module.exports = { platformPackage }
