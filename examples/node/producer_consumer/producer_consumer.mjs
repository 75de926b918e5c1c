// The simple producer/consumer of the original sketch, one program, two roles:
//
//   node producer_consumer.mjs NAME KEYFILE                 the consumer
//   node producer_consumer.mjs -p NAME SERVER_KEY [COUNT]   the producer
//
// The consumer loads its keypair from KEYFILE (creating it if missing), prints
// its public key, serves endpoint NAME and prints "consumed 1k messages",
// "consumed 2k messages", ... as messages arrive, from one producer after
// another, until stopped. The producer pins SERVER_KEY (the key as text,
// shmsock-pk:..., or the consumer's key file), connects, sends COUNT messages
// (default 10000) and closes.
import { Listener, Stream } from 'shmsock'

import { die, loadOrCreate, publicKeyArg } from '../common/example_keys.mjs'

/**
 * @param {string} name
 * @param {string} keyFile
 */
async function consume(name, keyFile) {
  const keypair = loadOrCreate(keyFile)
  const listener = Listener.bind(name, { keypair })
  console.log(`consumer on '${name}', key ${keypair.publicKeyText}`)
  const stop = () => listener.close()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  let consumed = 0
  for await (const stream of listener) {
    try {
      for await (const _message of stream) {
        consumed += 1
        if (consumed % 1000 === 0) console.log(`consumed ${consumed / 1000}k messages`)
      }
    } catch (err) {
      console.error(`producer left: ${/** @type {Error} */ (err).message}`)
    }
    await stream.close()
  }
}

/**
 * @param {string} name
 * @param {string} serverKey
 * @param {number} count
 */
async function produce(name, serverKey, count) {
  const stream = await Stream.connect(name, { serverKey: publicKeyArg(serverKey) })
  for (let i = 0; i < count; i++) await stream.send(`message ${i}`)
  await stream.close()
  console.log(`produced ${count} messages`)
}

const args = process.argv.slice(2)
try {
  if ((args.length === 3 || args.length === 4) && args[0] === '-p') {
    const count = args.length === 4 ? Number(args[3]) : 10000
    if (!Number.isInteger(count) || count < 0) die('count', new Error(`'${args[3]}' is not a number`))
    await produce(args[1], args[2], count)
  } else if (args.length === 2 && !args[0].startsWith('-')) {
    await consume(args[0], args[1])
  } else {
    console.error('error: usage: producer_consumer NAME KEYFILE | producer_consumer -p NAME SERVER_KEY [COUNT]')
    process.exit(2)
  }
} catch (err) {
  die(args[0] === '-p' ? 'produce' : 'consume', err)
}
