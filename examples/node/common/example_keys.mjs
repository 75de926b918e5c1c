// Helpers shared by the Node examples: key files and pinned keys. They mirror
// examples/rust/src/lib.rs, so every language's examples take the same arguments.
import { Keypair, codes, parsePublicKey } from 'shmsock'

/**
 * Loads the keypair in `path`, or makes one and saves it there (mode 0600).
 * @param {string} path
 * @returns {Keypair}
 */
export function loadOrCreate(path) {
  try {
    return Keypair.load(path)
  } catch (err) {
    if (/** @type {{ code?: string }} */ (err).code !== codes.NOT_FOUND) throw err
    const keypair = Keypair.generate()
    keypair.save(path)
    return keypair
  }
}

/**
 * A key to pin, given as text (`shmsock-pk:...`) or as the path of the peer's
 * key file, whose public half is taken.
 * @param {string} arg
 * @returns {Buffer}
 */
export function publicKeyArg(arg) {
  return arg.startsWith('shmsock-pk:') ? parsePublicKey(arg) : Keypair.load(arg).publicKey
}

/**
 * Exits with a one-line error: what failed and the library's explanation.
 * @param {string} context
 * @param {unknown} err
 * @returns {never}
 */
export function die(context, err) {
  const e = /** @type {{ message?: string, code?: string }} */ (err)
  console.error(`error: ${context}: ${e.message ?? String(err)}${e.code ? ` (${e.code})` : ''}`)
  process.exit(1)
}
