// Keypair: generation, text forms, key files and their checks.
import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'

import { createRequire } from 'node:module'

import { shm } from './helpers.mjs'

const require = createRequire(import.meta.url)

const { Keypair, codes } = shm

test('generate, text form, fingerprint', () => {
  const kp = Keypair.generate()
  assert.equal(kp.publicKey.length, 32)
  assert.match(kp.publicKeyText, /^shmsock-pk:[A-Za-z0-9_-]{43}$/)
  assert.match(kp.fingerprint, /^[0-9a-f]{4}(:[0-9a-f]{4}){3}$/)
  assert.ok(shm.parsePublicKey(kp.publicKeyText).equals(kp.publicKey))
  assert.equal(shm.publicKeyText(kp.publicKey), kp.publicKeyText)
  assert.equal(shm.fingerprint(kp.publicKeyText), kp.fingerprint)
  assert.ok(!String(kp).includes('shmsock-sk'), 'toString never shows the secret')
  assert.notEqual(Keypair.generate().publicKeyText, kp.publicKeyText)
  const again = Keypair.fromSecretKey(Buffer.alloc(32, 5))
  assert.ok(again.publicKey.equals(Keypair.fromSecretKey(new Uint8Array(32).fill(5)).publicKey))
})

test('save and load a key file (mode 0600, never overwritten)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shmsock-keys-'))
  try {
    const path = join(dir, 'id.key')
    const kp = Keypair.generate()
    kp.save(path)
    assert.equal(statSync(path).mode & 0o777, 0o600)
    assert.equal(Keypair.load(path).publicKeyText, kp.publicKeyText)
    assert.throws(() => kp.save(path), (e) => e.code === codes.INVALID_ARGUMENT && /exists/.test(e.message))
    chmodSync(path, 0o644)
    assert.throws(() => Keypair.load(path), (e) => e.code === codes.INSECURE_KEY_FILE && /chmod 600/.test(e.message))
    const bad = join(dir, 'bad.key')
    writeFileSync(bad, 'public-key: shmsock-pk:AAAA\n', { mode: 0o600 })
    assert.throws(() => Keypair.load(bad), (e) => e.code === codes.INVALID_KEY)
    assert.throws(() => Keypair.load(join(dir, 'missing.key')), (e) => e.code === codes.NOT_FOUND)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
})

test('bad keys and argument types', () => {
  assert.throws(() => Keypair.load(42), TypeError)
  assert.throws(() => Keypair.generate().save(null), TypeError)
  assert.throws(() => Keypair.fromSecretKey('secret'), TypeError)
  assert.throws(() => Keypair.fromSecretKey(Buffer.alloc(31)), (e) => e.code === codes.INVALID_KEY)
  assert.throws(() => shm.parsePublicKey(42), TypeError)
  assert.throws(() => shm.parsePublicKey('shmsock-sk:AAAA'), (e) => e.code === codes.INVALID_KEY)
  assert.throws(() => shm.fingerprint(Buffer.alloc(3)), (e) => e.code === codes.INVALID_KEY)
  assert.throws(() => new Keypair(), TypeError)
})

test('every error code is SHMSOCK_ + a stable name', () => {
  assert.equal(codes.TIMEOUT, 'SHMSOCK_TIMEOUT')
  assert.equal(codes.PEER_GONE, 'SHMSOCK_PEER_GONE')
  for (const [k, v] of Object.entries(codes)) assert.equal(v, `SHMSOCK_${k}`)
  assert.ok(Object.isFrozen(codes))
  assert.equal(shm.version, JSON.parse(
    // the package version equals the native module's (the workspace's)
    require('node:fs').readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version)
})
