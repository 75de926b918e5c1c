/*
 * Publish/subscribe in C: one publisher, each message sealed once for every
 * subscriber.
 *
 *   pubsub NAME KEYFILE [COUNT] [SUBSCRIBERS]   the publisher
 *   pubsub -s NAME SERVER_KEY                   a subscriber
 *
 * The publisher binds topic NAME, prints its public key, waits for SUBSCRIBERS
 * subscribers (default 1), publishes COUNT messages (default 1000) and closes
 * the topic. A subscriber prints "received N messages, lost L" when the topic
 * closes.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shmsock.h>

#include "../common/example_keys.h"

static void publish(const char *name, const char *key_file, uint64_t count, size_t subscribers)
{
    shmsock_keypair *kp = load_or_create(key_file);
    printf("publisher of '%s', key %s\n", name, public_key_text(kp));
    fflush(stdout);
    shmsock_options *options = NULL;
    shmsock_result rc = shmsock_options_new(&options);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_keypair(options, kp);
    if (rc != SHMSOCK_OK) die("options", rc);
    shmsock_publisher *topic = NULL;
    if ((rc = shmsock_publisher_bind(name, options, NULL, &topic)) != SHMSOCK_OK) die("bind", rc);
    if ((rc = shmsock_publisher_wait_for_subscribers(topic, subscribers, SHMSOCK_FOREVER)) != SHMSOCK_OK) die("wait", rc);
    char msg[64];
    for (uint64_t i = 0; i < count; i++) {
        int len = snprintf(msg, sizeof msg, "tick %" PRIu64, i);
        if ((rc = shmsock_publisher_publish(topic, (const uint8_t *)msg, (size_t)len)) != SHMSOCK_OK) die("publish", rc);
    }
    shmsock_publisher_free(topic);
    printf("published %" PRIu64 " messages\n", count);
    shmsock_options_free(options);
    shmsock_keypair_free(kp);
}

static void subscribe(const char *name, const char *server_key)
{
    uint8_t key[SHMSOCK_KEY_LEN];
    public_key_arg(server_key, key);
    shmsock_options *options = NULL;
    shmsock_result rc = shmsock_options_new(&options);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_server_key(options, key, sizeof key);
    if (rc != SHMSOCK_OK) die("options", rc);
    shmsock_subscriber *sub = NULL;
    if ((rc = shmsock_subscriber_connect(name, options, &sub)) != SHMSOCK_OK) die("subscribe", rc);
    static uint8_t buf[64 * 1024];
    uint64_t received = 0, lost = 0;
    for (;;) {
        shmsock_delivery d;
        rc = shmsock_subscriber_recv_into(sub, buf, sizeof buf, SHMSOCK_FOREVER, &d);
        if (rc == SHMSOCK_PEER_CLOSED) break;
        if (rc != SHMSOCK_OK) die("recv", rc);
        received++;
        lost += d.lost;
    }
    printf("received %" PRIu64 " messages, lost %" PRIu64 "\n", received, lost);
    shmsock_subscriber_free(sub);
    shmsock_options_free(options);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "-s") == 0) {
        subscribe(argv[2], argv[3]);
    } else if (argc >= 3 && argc <= 5 && argv[1][0] != '-') {
        uint64_t count = argc >= 4 ? strtoull(argv[3], NULL, 10) : 1000;
        size_t subs = argc == 5 ? (size_t)strtoul(argv[4], NULL, 10) : 1;
        publish(argv[1], argv[2], count, subs);
    } else {
        fprintf(stderr, "usage: pubsub NAME KEYFILE [COUNT] [SUBSCRIBERS] | pubsub -s NAME SERVER_KEY\n");
        return 2;
    }
    return 0;
}
