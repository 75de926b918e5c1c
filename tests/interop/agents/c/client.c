/*
 * `agent client`: connects, sends messages of the --sizes and checks that each
 * comes back unchanged (the echo server's counterpart).
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shmsock.h>

#include "agent.h"

#define DEFAULT_SIZES "0,1,64,65536,262144"

struct client_args {
    const char *name, *server_key, *key, *cipher;
    uint32_t ring_size;
    bool has_ring_size;
    uint32_t *sizes;
    size_t n_sizes;
    double seconds; /* 0: send each size once */
    double timeout;
};

static int parse_client(int argc, char **argv, struct client_args *a)
{
    const char *ring = NULL, *sizes = NULL, *seconds = NULL, *timeout = NULL;
    int status = 0;
    for (int i = 0; status == 0 && i < argc; i++) {
        const char *o = argv[i];
        const char **slot = strcmp(o, "--name") == 0         ? &a->name
                            : strcmp(o, "--server-key") == 0 ? &a->server_key
                            : strcmp(o, "--key") == 0        ? &a->key
                            : strcmp(o, "--cipher") == 0     ? &a->cipher
                            : strcmp(o, "--ring-size") == 0  ? &ring
                            : strcmp(o, "--sizes") == 0      ? &sizes
                            : strcmp(o, "--seconds") == 0    ? &seconds
                            : strcmp(o, "--timeout") == 0    ? &timeout
                                                             : NULL;
        status = slot ? take(argc, argv, &i, slot) : usage_error("unknown option '%s' for client", o);
    }
    if (status) return status;
    if (!a->name) return usage_error("--name is required");
    if (!a->server_key) return usage_error("--server-key is required");
    if (!a->cipher) a->cipher = "aegis-128l";
    if (strcmp(a->cipher, "aegis-128l") != 0 && strcmp(a->cipher, "chacha20-poly1305") != 0)
        return usage_error("--cipher: '%s' is not aegis-128l or chacha20-poly1305", a->cipher);
    if (ring && !(a->has_ring_size = parse_u32(ring, &a->ring_size)))
        return usage_error("--ring-size: '%s' is not a size in bytes", ring);
    if (seconds && !parse_seconds(seconds, &a->seconds))
        return usage_error("--seconds: '%s' is not a positive number of seconds (at most 1e9)", seconds);
    a->timeout = 10;
    if (timeout && !parse_seconds(timeout, &a->timeout))
        return usage_error("--timeout: '%s' is not a positive number of seconds (at most 1e9)", timeout);
    return parse_sizes(sizes ? sizes : DEFAULT_SIZES, &a->sizes, &a->n_sizes);
}

/* Sends the messages and checks their echoes; 0 or an exit status. */
static int exchange(shmsock_stream *stream, const struct client_args *a, uint64_t *count, uint64_t *bytes)
{
    size_t largest = 0;
    for (size_t k = 0; k < a->n_sizes; k++) largest = a->sizes[k] > largest ? a->sizes[k] : largest;
    uint8_t *message = malloc(largest + 1), *reply = malloc(largest + 1);
    int status = 0;
    if (!message || !reply) {
        fprintf(stderr, "error RESOURCE_EXHAUSTED: cannot allocate two messages of %zu bytes\n", largest);
        status = EXIT_SHMSOCK;
    }
    double start = now_seconds(), next_progress = 1;
    uint64_t i = 0;
    for (; status == 0; i++) {
        if (a->seconds > 0 ? now_seconds() - start >= a->seconds : i == a->n_sizes) break;
        size_t n = a->sizes[i % a->n_sizes], len = 0;
        fill_message(message, i, n);
        shmsock_result rc = shmsock_stream_send(stream, message, n);
        if (rc == SHMSOCK_OK) rc = shmsock_stream_recv_into(stream, reply, largest + 1, &len);
        if (rc == SHMSOCK_BUFFER_TOO_SMALL || (rc == SHMSOCK_OK && len != n)) {
            fprintf(stderr, "mismatch: message %llu (%zu B): received %zu bytes\n", (unsigned long long)i, n, len);
            status = EXIT_VERIFY;
        } else if (rc != SHMSOCK_OK) {
            status = shmsock_error(rc);
        } else if (memcmp(reply, message, n) != 0) {
            size_t j = 0;
            while (reply[j] == message[j]) j++;
            fprintf(stderr, "mismatch: message %llu (%zu B): byte %zu is %u, expected %u\n", (unsigned long long)i, n,
                    j, reply[j], message[j]);
            status = EXIT_VERIFY;
        } else {
            *bytes += n;
            double elapsed = now_seconds() - start;
            if (a->seconds > 0 && elapsed >= next_progress) {
                next_progress += 1;
                say("progress %llu %llu %.3f", (unsigned long long)(i + 1), (unsigned long long)*bytes, elapsed);
            }
        }
    }
    *count = i;
    free(message);
    free(reply);
    return status;
}

int client(int argc, char **argv)
{
    struct client_args a = {0};
    int status = parse_client(argc, argv, &a);
    if (status) return status;

    uint8_t server_key[SHMSOCK_KEY_LEN], peer[SHMSOCK_KEY_LEN], local[SHMSOCK_KEY_LEN];
    shmsock_options *options = NULL;
    shmsock_keypair *keypair = NULL;
    shmsock_stream *stream = NULL;
    shmsock_cipher cipher = 0;
    double ms = ceil(a.timeout * 1000);
    shmsock_result rc = shmsock_public_key_from_text(a.server_key, server_key, sizeof server_key);
    if (rc == SHMSOCK_OK) rc = shmsock_options_new(&options);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_server_key(options, server_key, sizeof server_key);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_recv_timeout(options, (uint64_t)ms);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_require_chacha(options, strcmp(a.cipher, "chacha20-poly1305") == 0);
    if (rc == SHMSOCK_OK && a.has_ring_size) rc = shmsock_options_set_ring_size(options, a.ring_size);
    if (rc == SHMSOCK_OK && a.key) rc = shmsock_keypair_load(a.key, &keypair);
    if (rc == SHMSOCK_OK && keypair) rc = shmsock_options_set_keypair(options, keypair);
    if (rc == SHMSOCK_OK) rc = shmsock_stream_connect(a.name, options, &stream);
    if (rc == SHMSOCK_OK) rc = shmsock_stream_peer_public_key(stream, peer, sizeof peer);
    if (rc == SHMSOCK_OK) rc = shmsock_stream_local_public_key(stream, local, sizeof local);
    if (rc == SHMSOCK_OK) rc = shmsock_stream_cipher(stream, &cipher);
    if (rc != SHMSOCK_OK) {
        status = shmsock_error(rc);
        goto done;
    }
    if (memcmp(peer, server_key, sizeof peer) != 0) {
        char got[SHMSOCK_PUBLIC_KEY_TEXT_SIZE] = "?";
        shmsock_public_key_to_text(peer, sizeof peer, got, sizeof got, NULL);
        fprintf(stderr, "mismatch: server key is %s, expected %s\n", got, a.server_key);
        status = EXIT_VERIFY;
        goto done;
    }
    if (strcmp(shmsock_cipher_name(cipher), a.cipher) != 0) {
        fprintf(stderr, "mismatch: cipher is %s, expected %s\n", shmsock_cipher_name(cipher), a.cipher);
        status = EXIT_VERIFY;
        goto done;
    }

    double start = now_seconds();
    uint64_t count = 0, bytes = 0;
    status = exchange(stream, &a, &count, &bytes);
    double elapsed = now_seconds() - start;
    if (status == 0 && (rc = shmsock_stream_close(stream)) != SHMSOCK_OK) status = shmsock_error(rc);
    if (status == 0) {
        char server_fp[SHMSOCK_FINGERPRINT_SIZE], client_fp[SHMSOCK_FINGERPRINT_SIZE];
        fingerprint_of(server_key, server_fp);
        fingerprint_of(local, client_fp);
        say("ok cipher=%s server=%s client=%s messages=%llu bytes=%llu seconds=%.3f", shmsock_cipher_name(cipher),
            server_fp, client_fp, (unsigned long long)count, (unsigned long long)bytes, elapsed);
    }
done:
    shmsock_stream_free(stream);
    shmsock_keypair_free(keypair);
    shmsock_options_free(options);
    free(a.sizes);
    return status;
}
