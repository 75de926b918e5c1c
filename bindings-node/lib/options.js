'use strict'
// Option objects: the user's options of a connection, a listener or a topic,
// checked and turned into the native module's options objects.

const { typeError, describe } = require('./errors.js')
const { optionalNumber, optionalPositiveCount, optionalTimeout, checkOptions } = require('./args.js')
const { Keypair, toKey } = require('./keypair.js')

/**
 * The native options object, checked; returns [keypair, nativeOptions].
 * @param {unknown} options
 * @param {string} what
 * @returns {[import('../native').NativeKeypair | undefined, import('../native').NativeOptions]}
 */
function nativeOptions(options, what) {
  const o = checkOptions(options, what)
  /** @type {import('../native').NativeOptions} */
  const n = {}
  let keypair
  if (o.keypair !== undefined && o.keypair !== null) {
    if (!(o.keypair instanceof Keypair)) throw typeError(`options.keypair must be a Keypair; received ${describe(o.keypair)}`)
    keypair = o.keypair._n
  }
  if (o.serverKey !== undefined && o.serverKey !== null) n.serverKey = toKey(o.serverKey, 'options.serverKey')
  if (o.allowedClients !== undefined && o.allowedClients !== null) {
    if (!Array.isArray(o.allowedClients)) throw typeError(`options.allowedClients must be an array of public keys; received ${describe(o.allowedClients)}`)
    n.allowedClients = o.allowedClients.map((k, i) => toKey(k, `options.allowedClients[${i}]`))
  }
  if (o.allowedUids !== undefined && o.allowedUids !== null) {
    if (!Array.isArray(o.allowedUids) || !o.allowedUids.every((u) => Number.isInteger(u) && u >= 0)) {
      throw typeError(`options.allowedUids must be an array of non-negative integers; received ${describe(o.allowedUids)}`)
    }
    n.allowedUids = o.allowedUids
  }
  const ringSize = optionalNumber(o, 'ringSize', true)
  if (ringSize !== undefined) n.ringSize = ringSize
  const maxMessageSize = optionalNumber(o, 'maxMessageSize', true)
  if (maxMessageSize !== undefined) n.maxMessageSize = maxMessageSize
  const maxQueuedBytes = optionalNumber(o, 'maxQueuedBytes', true)
  if (maxQueuedBytes !== undefined) n.maxQueuedBytes = maxQueuedBytes
  const maxReassemblyBytes = optionalNumber(o, 'maxReassemblyBytes', true)
  if (maxReassemblyBytes !== undefined) n.maxReassemblyBytes = maxReassemblyBytes
  // Listeners, servers and topics; the core keeps its default (64) for the one not given.
  for (const name of /** @type {const} */ (['maxPendingHandshakes', 'maxPendingHandshakesPerUid'])) {
    const v = optionalPositiveCount(o, name)
    if (v !== undefined) n[name] = v
  }
  for (const t of /** @type {const} */ (['sendTimeout', 'recvTimeout', 'handshakeTimeout'])) {
    const v = optionalTimeout(o, t)
    if (v !== undefined) n[t] = v
  }
  if (o.backend !== undefined && o.backend !== null) {
    if (typeof o.backend !== 'string') throw typeError(`options.backend must be 'memfd' or 'named'; received ${describe(o.backend)}`)
    n.backend = o.backend
  }
  if (o.requireChacha !== undefined && o.requireChacha !== null) {
    if (typeof o.requireChacha !== 'boolean') throw typeError(`options.requireChacha must be a boolean; received ${describe(o.requireChacha)}`)
    n.requireChacha = o.requireChacha
  }
  return [keypair, n]
}

/**
 * The topic's shape and policy, checked: the native topic options object.
 * @param {Record<string, any>} o
 * @returns {import('../native').NativeTopicOptions}
 */
function topicOptions(o) {
  /** @type {import('../native').NativeTopicOptions} */
  const t = {}
  for (const name of /** @type {const} */ (['slots', 'maxMessageSize', 'maxSubscribers'])) {
    const v = optionalNumber(o, name, true)
    if (v !== undefined) t[name] = v
  }
  if (o.policy !== undefined && o.policy !== null) {
    if (o.policy !== 'reliable' && o.policy !== 'latest') {
      throw typeError(`options.policy must be 'reliable' or 'latest'; received ${describe(o.policy)}`)
    }
    t.policy = o.policy
  }
  const timeout = optionalTimeout(o, 'reliableTimeout')
  if (timeout !== undefined) t.reliableTimeout = timeout
  if (o.rekeyInterval === false || o.rekeyInterval === Infinity) {
    t.noRekey = true
  } else {
    const interval = optionalNumber(o, 'rekeyInterval', false)
    if (interval !== undefined) t.rekeyInterval = interval
  }
  return t
}

module.exports = { nativeOptions, topicOptions }
