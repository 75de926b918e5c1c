// An echo client on the stream API: sends each message, prints each echo.
//
//   node echo_client.mjs NAME SERVER_KEY [MESSAGE...]
//
// SERVER_KEY is the server's key as text (shmsock-pk:...) or its key file.
import { Stream } from 'shmsock'

import { die, publicKeyArg } from '../common/example_keys.mjs'

const args = process.argv.slice(2)
if (args.length < 2) {
  console.error('error: usage: echo_client NAME SERVER_KEY [MESSAGE...]')
  process.exit(2)
}
const [name, serverKey, ...messages] = args
try {
  const stream = await Stream.connect(name, { serverKey: publicKeyArg(serverKey), recvTimeout: 5000 })
  for (const message of messages.length ? messages : ['hello']) {
    await stream.send(message)
    console.log((await stream.recv()).toString())
  }
  await stream.close()
} catch (err) {
  die('echo', err)
}
