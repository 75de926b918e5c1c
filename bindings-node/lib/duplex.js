'use strict'
// The `stream.Duplex` adapter of a Stream, for `pipeline()`: each chunk
// written is sent as one message, each message received is pushed as one
// chunk (a byte-stream consumer may merge chunks: boundaries then are the
// consumer's business). Ending the writable side does nothing to the
// connection; the readable side ends when the peer closes; destroying the
// Duplex closes the stream.

const { Duplex } = require('node:stream')
const { codes } = require('./errors.js')
const { checkOptions } = require('./args.js')

/**
 * What the adapter needs of a Stream.
 * @typedef {object} MessageStream
 * @property {() => Promise<Buffer>} recv
 * @property {(data: Uint8Array | string) => Promise<void>} send
 * @property {() => Promise<void>} close
 */

/**
 * @param {MessageStream} stream
 * @param {import('node:stream').DuplexOptions} [options]
 * @returns {Duplex}
 */
function toDuplex(stream, options) {
  let reading = false
  return new Duplex({
    ...checkOptions(options, 'options'),
    read() {
      if (reading) return
      reading = true
      const next = () => {
        stream.recv().then(
          (msg) => {
            if (this.push(msg)) next()
            else reading = false
          },
          (err) => {
            reading = false
            if (err.code === codes.PEER_CLOSED || err.code === codes.CLOSED) this.push(null)
            else this.destroy(err)
          }
        )
      }
      next()
    },
    write(chunk, encoding, callback) {
      stream.send(typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk).then(() => callback(), callback)
    },
    destroy(err, callback) {
      stream.close().then(
        () => callback(err),
        () => callback(err)
      )
    },
  })
}

module.exports = { toDuplex }
