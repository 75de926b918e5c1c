// Publish/subscribe: one publisher, each message sealed once for every
// subscriber. One program, two roles:
//
//   node pubsub.mjs NAME KEYFILE [COUNT] [SUBSCRIBERS]   the publisher
//   node pubsub.mjs -s NAME SERVER_KEY                   a subscriber
//
// The publisher loads its keypair from KEYFILE (creating it if missing), binds
// topic NAME, prints its public key, waits for SUBSCRIBERS subscribers
// (default 1), publishes COUNT messages (default 1000) and closes the topic.
// A subscriber pins SERVER_KEY (the key as text, shmsock-pk:..., or the
// publisher's key file) and prints "received N messages, lost L" when the
// publisher closes the topic.
import { Publisher, Subscriber } from 'shmsock'

import { die, loadOrCreate, publicKeyArg } from '../common/example_keys.mjs'

/**
 * @param {string} name
 * @param {string} keyFile
 * @param {number} count
 * @param {number} subscribers
 */
async function publish(name, keyFile, count, subscribers) {
  const keypair = loadOrCreate(keyFile)
  console.log(`publisher of '${name}', key ${keypair.publicKeyText}`)
  const topic = Publisher.bind(name, { keypair })
  await topic.waitForSubscribers(subscribers)
  // A reliable topic (the default): each publish may wait for the slowest
  // subscriber, off the JavaScript thread.
  for (let i = 0; i < count; i++) await topic.publish(`tick ${i}`)
  topic.close()
  console.log(`published ${count} messages`)
}

/**
 * @param {string} name
 * @param {string} serverKey
 */
async function subscribe(name, serverKey) {
  const sub = await Subscriber.connect(name, { serverKey: publicKeyArg(serverKey) })
  let received = 0
  // Ends when the publisher closes the topic.
  for await (const _message of sub) received += 1
  console.log(`received ${received} messages, lost ${sub.lost}`)
  sub.close()
}

/** @param {string} arg */
function number(arg) {
  const n = Number(arg)
  if (!Number.isInteger(n) || n < 0) die('number', new Error(`'${arg}' is not a number`))
  return n
}

const args = process.argv.slice(2)
try {
  if (args.length === 3 && args[0] === '-s') {
    await subscribe(args[1], args[2])
  } else if (args.length >= 2 && args.length <= 4 && !args[0].startsWith('-')) {
    await publish(args[0], args[1], args.length > 2 ? number(args[2]) : 1000, args.length > 3 ? number(args[3]) : 1)
  } else {
    console.error('error: usage: pubsub NAME KEYFILE [COUNT] [SUBSCRIBERS] | pubsub -s NAME SERVER_KEY')
    process.exit(2)
  }
} catch (err) {
  die(args[0] === '-s' ? 'subscribe' : 'publish', err)
}
