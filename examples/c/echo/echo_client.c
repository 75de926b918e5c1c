/*
 * Echo client: `echo_client NAME SERVER_KEY [MESSAGE...]` sends each message
 * (default: "hello") and prints the echo. SERVER_KEY is the server's public key
 * as text (shmsock-pk:...) or the server's key file.
 */
#include <stdio.h>
#include <string.h>

#include <shmsock.h>

#include "../common/example_keys.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "error: usage: echo_client NAME SERVER_KEY [MESSAGE...]\n");
        return 1;
    }
    uint8_t key[SHMSOCK_KEY_LEN];
    public_key_arg(argv[2], key);
    shmsock_options *options = NULL;
    shmsock_result rc = shmsock_options_new(&options);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_server_key(options, key, sizeof key);
    if (rc != SHMSOCK_OK) die("options", rc);
    shmsock_stream *stream = NULL;
    if ((rc = shmsock_stream_connect(argv[1], options, &stream)) != SHMSOCK_OK) die("connect", rc);

    static const char *fallback[] = {"hello"};
    const char **messages = argc > 3 ? (const char **)argv + 3 : fallback;
    int count = argc > 3 ? argc - 3 : 1;
    for (int i = 0; i < count; i++) {
        if ((rc = shmsock_stream_send(stream, (const uint8_t *)messages[i], strlen(messages[i]))) != SHMSOCK_OK)
            die("send", rc);
        uint8_t *echo = NULL;
        size_t len = 0;
        if ((rc = shmsock_stream_recv(stream, &echo, &len)) != SHMSOCK_OK) die("recv", rc);
        printf("%.*s\n", (int)len, (const char *)echo);
        shmsock_buffer_free(echo);
    }
    if ((rc = shmsock_stream_close(stream)) != SHMSOCK_OK) die("close", rc);
    shmsock_stream_free(stream);
    shmsock_options_free(options);
    return 0;
}
