// The package's `install` script: makes sure a native module is there.
//
// - In a development checkout (no vendor/ folder: the crate is a member of the
//   repository's Cargo workspace) it always builds from source (scripts/build.mjs),
//   as `npm ci` in bindings-node always did.
// - In an installed package (the published tarball carries the Rust sources and
//   the core crate under vendor/) it does nothing when the prebuilt package for
//   this platform (optionalDependencies, napi-rs convention:
//   shmsock-<platform>-<arch>[-<abi>]) is installed and loads, so no Rust is
//   needed. Otherwise it builds from the sources in the tarball with cargo
//   (--locked, with the tarball's Cargo.lock) into ./shmsock.node, then removes
//   the build folder (unless CARGO_TARGET_DIR chose one).
//   SHMSOCK_BUILD_FROM_SOURCE=1 forces the source build.
import { spawnSync } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const require = createRequire(join(root, 'package.json'))
const published = existsSync(join(root, 'vendor', 'shmsock', 'Cargo.toml'))
const { platformPackage } = require('./native-package.js')

function prebuiltLoads() {
  const name = platformPackage()
  if (!name) return null
  try {
    require(name)
    return name
  } catch {
    return null
  }
}

if (published && process.env.SHMSOCK_BUILD_FROM_SOURCE !== '1') {
  const name = prebuiltLoads()
  if (name) {
    console.log(`shmsock: using the prebuilt native module of ${name}`)
    process.exit(0)
  }
  console.log(`shmsock: no prebuilt native module for ${process.platform}-${process.arch}; building from source (needs Rust and cargo)`)
}

const r = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs'), ...process.argv.slice(2)], { cwd: root, stdio: 'inherit' })
if (published && !process.env.CARGO_TARGET_DIR) rmSync(join(root, 'target'), { recursive: true, force: true })
process.exit(r.status ?? 1)
