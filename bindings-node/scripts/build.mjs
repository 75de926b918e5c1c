// Builds the native module from source into ./shmsock.node (the package's
// `install` script, so `npm install` builds it on a fresh machine).
//
// In a development checkout @napi-rs/cli is installed and runs the build
// (`napi build`). A project that installs this folder or its tarball gets no
// devDependencies, so there the same build runs through cargo directly:
// napi build is cargo build plus a copy of the library.
//
//   node scripts/build.mjs [--debug]
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdtempSync, rmSync, renameSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const release = !process.argv.includes('--debug')
const target = join(root, 'shmsock.node')

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { cwd: root, stdio: opts.capture ? ['ignore', 'pipe', 'inherit'] : 'inherit', encoding: 'utf8' })
  if (r.error) {
    if (r.error.code === 'ENOENT') {
      console.error(`shmsock: '${cmd}' was not found. Building the native module needs Rust: install it from your distribution or rustup, then run 'npm run build' in ${root}.`)
    } else {
      console.error(`shmsock: ${cmd} failed to start: ${r.error.message}`)
    }
    process.exit(1)
  }
  if (r.status !== 0) {
    console.error(`shmsock: '${cmd} ${args.join(' ')}' failed (exit ${r.status})`)
    process.exit(r.status || 1)
  }
  return r.stdout
}

function napiCli() {
  try {
    return createRequire(join(root, 'package.json')).resolve('@napi-rs/cli/package.json')
  } catch {
    return null
  }
}

// Replace atomically, so a running process that has the old module loaded is unaffected.
function install(from) {
  const tmp = `${target}.tmp-${process.pid}`
  copyFileSync(from, tmp)
  renameSync(tmp, target)
}

const cli = napiCli()
if (cli) {
  // napi build writes the .node file and a .d.ts into --output-dir: build into
  // a temporary folder and take only the module (native.d.ts is regenerated
  // and checked by scripts/gen-dts.mjs).
  const out = mkdtempSync(join(tmpdir(), 'shmsock-napi-'))
  try {
    const bin = join(dirname(cli), 'dist', 'cli.js')
    const args = [bin, 'build', '--output-dir', out, '--dts', 'native.d.ts']
    if (release) args.push('--release')
    run(process.execPath, args)
    install(join(out, 'shmsock.node'))
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
} else {
  const args = ['build', '-p', 'shmsock-node', '--message-format=json-render-diagnostics']
  if (release) args.push('--release')
  // The published tarball carries its own Cargo.lock: build exactly those versions.
  if (existsSync(join(root, 'Cargo.lock'))) args.push('--locked')
  const out = run('cargo', args, { capture: true })
  let lib = null
  for (const line of out.split('\n')) {
    if (!line.startsWith('{')) continue
    const msg = JSON.parse(line)
    if (msg.reason === 'compiler-artifact' && msg.target && msg.target.name === 'shmsock_node') {
      lib = msg.filenames.find((f) => f.endsWith('.so') || f.endsWith('.dylib') || f.endsWith('.dll'))
    }
  }
  if (!lib || !existsSync(lib)) {
    console.error('shmsock: cargo did not report the shmsock_node library')
    process.exit(1)
  }
  install(lib)
}
console.log(`shmsock: built ${target}`)
