/*
 * The C interop agent's topic commands, `publish` and `subscribe`, on the C
 * ABI's shmsock_publisher and shmsock_subscriber (tests/interop/README.md,
 * "Publish/subscribe").
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shmsock.h>

#include "agent.h"

/* A topic's slots hold 64 KiB by default: its largest message. */
#define DEFAULT_TOPIC_SIZES "0,1,64,4096,65536"

struct topic_args {
    const char *name, *key, *server_key, *cipher;
    uint32_t count, subscribers;
    uint32_t *sizes;
    size_t n_sizes;
    double timeout;
};

/* Parses the options of `publish` (publishing) or `subscribe`. */
static int parse_topic(int argc, char **argv, bool publishing, struct topic_args *a)
{
    const char *count = NULL, *subscribers = NULL, *sizes = NULL, *timeout = NULL;
    const char *command = publishing ? "publish" : "subscribe";
    int status = 0;
    for (int i = 0; status == 0 && i < argc; i++) {
        const char *o = argv[i];
        const char **slot = strcmp(o, "--name") == 0                      ? &a->name
                            : strcmp(o, "--key") == 0                     ? &a->key
                            : strcmp(o, "--cipher") == 0                  ? &a->cipher
                            : strcmp(o, "--count") == 0                   ? &count
                            : strcmp(o, "--sizes") == 0                   ? &sizes
                            : strcmp(o, "--timeout") == 0                 ? &timeout
                            : publishing && strcmp(o, "--subscribers") == 0 ? &subscribers
                            : !publishing && strcmp(o, "--server-key") == 0 ? &a->server_key
                                                                            : NULL;
        status = slot ? take(argc, argv, &i, slot) : usage_error("unknown option '%s' for %s", o, command);
    }
    if (status) return status;
    if (!a->name) return usage_error("--name is required");
    if (publishing && !a->key) return usage_error("--key is required");
    if (!publishing && !a->server_key) return usage_error("--server-key is required");
    if (!a->cipher) a->cipher = "aegis-128l";
    if (strcmp(a->cipher, "aegis-128l") != 0 && strcmp(a->cipher, "chacha20-poly1305") != 0)
        return usage_error("--cipher: '%s' is not aegis-128l or chacha20-poly1305", a->cipher);
    a->count = 100;
    if (count && !parse_u32(count, &a->count)) return usage_error("--count: '%s' is not a number", count);
    a->subscribers = 1;
    if (subscribers && !parse_u32(subscribers, &a->subscribers))
        return usage_error("--subscribers: '%s' is not a number", subscribers);
    a->timeout = 10;
    if (timeout && !parse_seconds(timeout, &a->timeout))
        return usage_error("--timeout: '%s' is not a positive number of seconds (at most 1e9)", timeout);
    return parse_sizes(sizes ? sizes : DEFAULT_TOPIC_SIZES, &a->sizes, &a->n_sizes);
}

static uint32_t largest_size(const struct topic_args *a)
{
    uint32_t largest = 0;
    for (size_t k = 0; k < a->n_sizes; k++) largest = a->sizes[k] > largest ? a->sizes[k] : largest;
    return largest;
}

int publish(int argc, char **argv)
{
    struct topic_args a = {0};
    int status = parse_topic(argc, argv, true, &a);
    if (status) return status;

    shmsock_keypair *keypair = NULL;
    shmsock_options *options = NULL;
    shmsock_publisher *publisher = NULL;
    char text[SHMSOCK_PUBLIC_KEY_TEXT_SIZE], fingerprint[SHMSOCK_FINGERPRINT_SIZE];
    uint8_t *message = malloc((size_t)largest_size(&a) + 1);
    if (!message) {
        fprintf(stderr, "error RESOURCE_EXHAUSTED: out of memory\n");
        free(a.sizes);
        return EXIT_SHMSOCK;
    }
    shmsock_result rc = shmsock_keypair_load(a.key, &keypair);
    if (rc == SHMSOCK_OK) rc = shmsock_options_new(&options);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_keypair(options, keypair);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_require_chacha(options, strcmp(a.cipher, "chacha20-poly1305") == 0);
    if (rc == SHMSOCK_OK) rc = shmsock_publisher_bind(a.name, options, NULL, &publisher);
    if (rc == SHMSOCK_OK) rc = shmsock_keypair_public_key_text(keypair, text, sizeof text, NULL);
    if (rc == SHMSOCK_OK) rc = shmsock_keypair_fingerprint(keypair, fingerprint, sizeof fingerprint, NULL);
    if (rc == SHMSOCK_OK) {
        say("ready %s %s %s", a.name, text, fingerprint);
        rc = shmsock_publisher_wait_for_subscribers(publisher, a.subscribers, (uint64_t)ceil(a.timeout * 1000));
    }
    uint64_t bytes = 0;
    for (uint32_t i = 0; rc == SHMSOCK_OK && i < a.count; i++) {
        size_t n = a.sizes[i % a.n_sizes];
        fill_message(message, i, n);
        rc = shmsock_publisher_publish(publisher, message, n);
        bytes += n;
    }
    if (rc == SHMSOCK_OK) {
        say("published messages=%u bytes=%llu", a.count, (unsigned long long)bytes);
        rc = shmsock_publisher_close(publisher);
    }
    status = rc == SHMSOCK_OK ? 0 : shmsock_error(rc);
    shmsock_publisher_free(publisher);
    shmsock_options_free(options);
    shmsock_keypair_free(keypair);
    free(message);
    free(a.sizes);
    return status;
}

/* Receives and checks the messages; 0 or an exit status. */
static int receive_all(shmsock_subscriber *subscriber, const struct topic_args *a, uint64_t *bytes)
{
    size_t room = (size_t)largest_size(a) + 1;
    uint8_t *expected = malloc(room), *got = malloc(room);
    int status = 0;
    if (!expected || !got) {
        fprintf(stderr, "error RESOURCE_EXHAUSTED: out of memory\n");
        status = EXIT_SHMSOCK;
    }
    uint64_t ms = (uint64_t)ceil(a->timeout * 1000);
    for (uint32_t i = 0; status == 0 && i < a->count; i++) {
        size_t n = a->sizes[i % a->n_sizes];
        shmsock_delivery d = {0};
        shmsock_result rc = shmsock_subscriber_recv_into(subscriber, got, room, ms, &d);
        fill_message(expected, i, n);
        if (rc == SHMSOCK_BUFFER_TOO_SMALL || (rc == SHMSOCK_OK && d.len != n)) {
            fprintf(stderr, "mismatch: message %u (%zu B): received %zu bytes\n", i, n, d.len);
            status = EXIT_VERIFY;
        } else if (rc != SHMSOCK_OK) {
            status = shmsock_error(rc);
        } else if (d.lost != 0) {
            fprintf(stderr, "mismatch: lost %llu messages\n", (unsigned long long)d.lost);
            status = EXIT_VERIFY;
        } else if (memcmp(got, expected, n) != 0) {
            size_t j = 0;
            while (got[j] == expected[j]) j++;
            fprintf(stderr, "mismatch: message %u (%zu B): byte %zu is %u, expected %u\n", i, n, j, got[j],
                    expected[j]);
            status = EXIT_VERIFY;
        } else {
            *bytes += n;
        }
    }
    free(expected);
    free(got);
    return status;
}

int subscribe(int argc, char **argv)
{
    struct topic_args a = {0};
    int status = parse_topic(argc, argv, false, &a);
    if (status) return status;

    uint8_t pinned[SHMSOCK_KEY_LEN], publisher_key[SHMSOCK_KEY_LEN];
    shmsock_options *options = NULL;
    shmsock_keypair *keypair = NULL;
    shmsock_subscriber *subscriber = NULL;
    shmsock_cipher cipher = 0;
    shmsock_result rc = shmsock_public_key_from_text(a.server_key, pinned, sizeof pinned);
    if (rc == SHMSOCK_OK) rc = shmsock_options_new(&options);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_server_key(options, pinned, sizeof pinned);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_require_chacha(options, strcmp(a.cipher, "chacha20-poly1305") == 0);
    if (rc == SHMSOCK_OK && a.key) rc = shmsock_keypair_load(a.key, &keypair);
    if (rc == SHMSOCK_OK && keypair) rc = shmsock_options_set_keypair(options, keypair);
    if (rc == SHMSOCK_OK) rc = shmsock_subscriber_connect(a.name, options, &subscriber);
    if (rc == SHMSOCK_OK) rc = shmsock_subscriber_publisher_public_key(subscriber, publisher_key, sizeof publisher_key);
    if (rc == SHMSOCK_OK) rc = shmsock_subscriber_cipher(subscriber, &cipher);
    char fingerprint[SHMSOCK_FINGERPRINT_SIZE];
    fingerprint_of(pinned, fingerprint);
    uint64_t bytes = 0, lost = 0;
    if (rc != SHMSOCK_OK) {
        status = shmsock_error(rc);
    } else if (memcmp(publisher_key, pinned, sizeof pinned) != 0) {
        fprintf(stderr, "mismatch: publisher key differs from %s\n", a.server_key);
        status = EXIT_VERIFY;
    } else if (strcmp(shmsock_cipher_name(cipher), a.cipher) != 0) {
        fprintf(stderr, "mismatch: cipher is %s, expected %s\n", shmsock_cipher_name(cipher), a.cipher);
        status = EXIT_VERIFY;
    } else {
        say("subscribed %s %s", fingerprint, a.cipher);
        status = receive_all(subscriber, &a, &bytes);
    }
    if (status == 0 && (rc = shmsock_subscriber_lost(subscriber, &lost)) != SHMSOCK_OK) status = shmsock_error(rc);
    if (status == 0)
        say("ok cipher=%s publisher=%s messages=%u bytes=%llu lost=%llu", a.cipher, fingerprint, a.count,
            (unsigned long long)bytes, (unsigned long long)lost);
    shmsock_subscriber_free(subscriber);
    shmsock_keypair_free(keypair);
    shmsock_options_free(options);
    free(a.sizes);
    return status;
}
