'use strict'
// shmsock for Node.js: the public API over the native module (shmsock.node).
//
// The package only adapts: promises, async iteration, EventEmitters, argument
// checks, timeouts, AbortSignals and error objects. Every piece of protocol and
// transport logic is in the Rust core; waiting is done by this thread's own
// event loop (libuv poll handles on the connections' fds, in the native
// module), which hands its results to lib/dispatch.js.
//
// This file only re-exports, and defines the short function forms
// (`connect`, `listen`, ...) of the classes' factories. One concept per file
// under lib/: errors, args (plain argument checks), keypair, options,
// dispatch, events (the error reporting of event emitters), stream, duplex,
// listener, server (Server, Connection), client, pubsub (Publisher,
// Subscriber).

const native = require('./lib/native.js')
const { codes, ShmsockError, typeError, describe, callNative } = require('./lib/errors.js')
const { Keypair, toKey } = require('./lib/keypair.js')
const dispatch = require('./lib/dispatch.js')
const { Stream } = require('./lib/stream.js')
const { Listener } = require('./lib/listener.js')
const { Server, Connection, createServer } = require('./lib/server.js')
const { Client } = require('./lib/client.js')
const { Publisher, Subscriber } = require('./lib/pubsub.js')

/** The package version (equal to the Rust workspace's). */
const version = native.nativeVersion()

/**
 * Connects a Stream (same as `Stream.connect`).
 * @param {string} name
 * @param {object} [options]
 */
function connect(name, options) {
  return Stream.connect(name, options)
}

/**
 * Binds a Listener (same as `Listener.bind`).
 * @param {string} name
 * @param {object} options
 */
function listen(name, options) {
  return Listener.bind(name, options)
}

/**
 * Connects a Client (same as `Client.connect`).
 * @param {string} name
 * @param {object} [options]
 */
function connectClient(name, options) {
  return Client.connect(name, options)
}

/**
 * Binds a topic (same as `Publisher.bind`).
 * @param {string} name
 * @param {object} options
 */
function publish(name, options) {
  return Publisher.bind(name, options)
}

/**
 * Subscribes to a topic (same as `Subscriber.connect`).
 * @param {string} name
 * @param {object} [options]
 */
function subscribe(name, options) {
  return Subscriber.connect(name, options)
}

/**
 * The text form `shmsock-pk:...` of a public key.
 * @param {Keypair | Uint8Array | string} key
 */
function publicKeyText(key) {
  return native.publicKeyText(toKey(key, 'key'))
}

/**
 * The short fingerprint of a public key, e.g. `3f2a:9c11:07be:55d0`.
 * @param {Keypair | Uint8Array | string} key
 */
function fingerprint(key) {
  return native.fingerprint(toKey(key, 'key'))
}

/**
 * The 32 bytes of a public key in text form.
 * @param {string} text
 */
function parsePublicKey(text) {
  if (typeof text !== 'string') throw typeError(`the key must be a string 'shmsock-pk:...'; received ${describe(text)}`)
  return callNative(() => native.parsePublicKey(text))
}

// Written out name by name so that ES modules can import them by name.
module.exports = {
  Keypair,
  Stream,
  Listener,
  Server,
  Connection,
  Client,
  Publisher,
  Subscriber,
  ShmsockError,
  codes,
  version,
  connect,
  listen,
  createServer,
  connectClient,
  publish,
  subscribe,
  publicKeyText,
  fingerprint,
  parsePublicKey,
}

// For the package's own tests: counters of native resources.
Object.defineProperty(module.exports, '_internals', {
  enumerable: false,
  value: {
    liveStreams: native.liveStreams,
    liveListeners: native.liveListeners,
    active: dispatch.activeCount,
    pending: () => dispatch.pending.size,
  },
})
