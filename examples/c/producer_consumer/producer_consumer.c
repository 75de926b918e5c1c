/*
 * The producer/consumer of the original sketch, in C.
 *
 *   producer_consumer NAME KEYFILE                 the consumer
 *   producer_consumer -p NAME SERVER_KEY [COUNT]   the producer
 *
 * The consumer loads its keypair from KEYFILE (creating it, mode 0600, if
 * missing), prints its public key, serves endpoint NAME and prints
 * "consumed 1k messages", "consumed 2k messages", ... as messages arrive, from
 * one producer after another, until it is stopped.
 * The producer pins SERVER_KEY (the consumer's public key as text,
 * shmsock-pk:..., or the consumer's key file), connects, sends COUNT messages
 * (default 10000) and closes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shmsock.h>

#include "../common/example_keys.h"

static void consume(const char *name, const char *key_file)
{
    shmsock_keypair *kp = load_or_create(key_file);
    printf("consumer on '%s', key %s\n", name, public_key_text(kp));
    fflush(stdout);

    shmsock_options *options = NULL;
    shmsock_result rc = shmsock_options_new(&options);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_keypair(options, kp);
    if (rc != SHMSOCK_OK) die("options", rc);
    shmsock_listener *listener = NULL;
    if ((rc = shmsock_listener_bind(name, options, &listener)) != SHMSOCK_OK) die("bind", rc);

    static uint8_t buf[64 * 1024];
    uint64_t consumed = 0;
    for (;;) {
        shmsock_stream *stream = NULL;
        if ((rc = shmsock_listener_accept(listener, SHMSOCK_FOREVER, &stream)) != SHMSOCK_OK) die("accept", rc);
        for (;;) {
            size_t len = 0;
            rc = shmsock_stream_recv_into(stream, buf, sizeof buf, &len);
            if (rc == SHMSOCK_PEER_CLOSED || rc == SHMSOCK_PEER_GONE) break;
            if (rc != SHMSOCK_OK) die("recv", rc);
            if (++consumed % 1000 == 0) {
                printf("consumed %" PRIu64 "k messages\n", consumed / 1000);
                fflush(stdout);
            }
        }
        shmsock_stream_free(stream);
    }
}

static void produce(const char *name, const char *server_key, uint64_t count)
{
    uint8_t key[SHMSOCK_KEY_LEN];
    public_key_arg(server_key, key);
    shmsock_options *options = NULL;
    shmsock_result rc = shmsock_options_new(&options);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_server_key(options, key, sizeof key);
    if (rc != SHMSOCK_OK) die("options", rc);
    shmsock_stream *stream = NULL;
    if ((rc = shmsock_stream_connect(name, options, &stream)) != SHMSOCK_OK) die("connect", rc);

    char message[48];
    for (uint64_t i = 0; i < count; i++) {
        int len = snprintf(message, sizeof message, "message %" PRIu64, i);
        if ((rc = shmsock_stream_send(stream, (const uint8_t *)message, (size_t)len)) != SHMSOCK_OK) die("send", rc);
    }
    if ((rc = shmsock_stream_close(stream)) != SHMSOCK_OK) die("close", rc);
    printf("produced %" PRIu64 " messages\n", count);
    shmsock_stream_free(stream);
    shmsock_options_free(options);
}

int main(int argc, char **argv)
{
    if ((argc == 4 || argc == 5) && strcmp(argv[1], "-p") == 0) {
        char *end = NULL;
        uint64_t count = argc == 5 ? strtoull(argv[4], &end, 10) : 10000;
        if (argc == 5 && (end == argv[4] || *end != '\0')) {
            fprintf(stderr, "error: count: '%s' is not a number\n", argv[4]);
            return 1;
        }
        produce(argv[2], argv[3], count);
        return 0;
    }
    if (argc == 3 && argv[1][0] != '-') {
        consume(argv[1], argv[2]);
        return 0;
    }
    fprintf(stderr, "error: usage: producer_consumer NAME KEYFILE | producer_consumer -p NAME SERVER_KEY [COUNT]\n");
    return 1;
}
