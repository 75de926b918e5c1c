// Every JavaScript code block of the READMEs (this package's, and the Node part
// of the repository's) runs as written: each is pasted into a file of a fresh
// project that depends on this package, and must exit by itself with status 0.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

import { root } from './helpers.mjs'

function jsBlocks(file) {
  const text = readFileSync(file, 'utf8')
  return [...text.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1])
}

function run(file, timeout) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`${file} did not exit within ${timeout} ms:\n${out}`))
    }, timeout)
    child.on('exit', (code) => {
      clearTimeout(timer)
      resolve({ code, out })
    })
  })
}

const sources = [
  ['bindings-node/README.md', join(root, 'README.md')],
  ['README.md', join(root, '..', 'README.md')],
]

for (const [label, file] of sources) {
  const blocks = jsBlocks(file)
  test(`${label} has JavaScript blocks`, () => assert.ok(blocks.length > 0))
  blocks.forEach((code, i) => {
    test(`${label}: JavaScript block ${i + 1} runs as written`, { timeout: 60000 }, async () => {
      const project = mkdtempSync(join(tmpdir(), 'shmsock-readme-'))
      try {
        mkdirSync(join(project, 'node_modules'))
        symlinkSync(root, join(project, 'node_modules', 'shmsock'))
        const script = join(project, `block${i + 1}.mjs`)
        writeFileSync(script, code)
        const r = await run(script, 30000)
        assert.equal(r.code, 0, r.out)
      } finally {
        rmSync(project, { recursive: true, force: true })
      }
    })
  })
}
