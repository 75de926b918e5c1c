// The TypeScript declarations: the examples type-check against index.d.ts with
// `tsc --noEmit` (strict, checkJs), and index.d.ts itself compiles.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'

import { root } from './helpers.mjs'

const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')

test('the examples type-check with tsc --noEmit', { timeout: 120000, skip: !existsSync(tsc) && 'typescript is not installed (npm install)' }, () => {
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '-p', join(root, '..', 'examples', 'node', 'tsconfig.json')], { encoding: 'utf8' })
  assert.equal(r.status, 0, `tsc found errors:\n${r.stdout}${r.stderr}`)
})

test('index.d.ts compiles on its own (strict)', { timeout: 120000, skip: !existsSync(tsc) && 'typescript is not installed (npm install)' }, () => {
  const r = spawnSync(process.execPath, [tsc, '--noEmit', '-p', join(root, 'tsconfig.json')], { encoding: 'utf8' })
  assert.equal(r.status, 0, `tsc found errors:\n${r.stdout}${r.stderr}`)
})
