// Fails when package.json's version differs from the Cargo workspace's
// ([workspace.package] version in the repository's Cargo.toml).
import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = dirname(dirname(fileURLToPath(import.meta.url)))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const cargo = readFileSync(join(root, '..', 'Cargo.toml'), 'utf8')
const section = cargo.split(/^\[workspace\.package\]\s*$/m)[1]
const match = section && section.split(/^\[/m)[0].match(/^version\s*=\s*"([^"]+)"/m)
if (!match) {
  console.error('check-version: no [workspace.package] version in Cargo.toml')
  process.exit(1)
}
if (pkg.version !== match[1]) {
  console.error(`check-version: package.json has version ${pkg.version} but the Cargo workspace has ${match[1]}; make them equal`)
  process.exit(1)
}
console.log(`check-version: ${pkg.name} ${pkg.version} equals the workspace version`)
