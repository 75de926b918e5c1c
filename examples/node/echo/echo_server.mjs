// An echo server on the event-driven API: every message goes back to its sender.
//
//   node echo_server.mjs NAME KEYFILE
//
// Loads its keypair from KEYFILE (creating it if missing), prints its public key
// and serves endpoint NAME until SIGINT or SIGTERM.
import { createServer } from 'shmsock'

import { die, loadOrCreate } from '../common/example_keys.mjs'

const args = process.argv.slice(2)
if (args.length !== 2) {
  console.error('error: usage: echo_server NAME KEYFILE')
  process.exit(2)
}
const [name, keyFile] = args
try {
  const keypair = loadOrCreate(keyFile)
  const server = createServer({ keypair })
  server.on('connection', (conn) => console.log(`client ${conn.id} connected (${conn.stream.peerFingerprint})`))
  // Never blocks: the ring, or the connection's bounded queue. A client that
  // does not read its replies fills its queue (SHMSOCK_WOULD_BLOCK): its
  // replies are dropped, the server reads no more of its requests until it
  // takes a reply, and every other client is served as before.
  server.on('data', (conn, data) => {
    conn.send(data).catch((err) => console.error(`echo to client ${conn.id} dropped: ${err.message}`))
  })
  server.on('close', (conn, reason) => console.log(`client ${conn.id} left${reason ? `: ${reason.message}` : ''}`))
  server.on('error', (err, conn) => console.error(`${conn ? `client ${conn.id}` : 'handshake'}: ${err.message}`))
  server.listen(name, () => console.log(`serving '${name}' as ${keypair.publicKeyText}`))
  const stop = () => server.close()
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
} catch (err) {
  die('serve', err)
}
