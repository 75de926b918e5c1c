/* Publish/subscribe through the C ABI: every subscriber gets every message,
 * a latest topic reports lag, a closed topic ends subscribers cleanly, the
 * pollable fd, and bad arguments. */
#define _GNU_SOURCE
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"

static shmsock_subscriber *subscribe(const char *name, const shmsock_keypair *kp)
{
    shmsock_options *o = client_options(kp);
    shmsock_subscriber *s = NULL;
    CHECK_OK(shmsock_subscriber_connect(name, o, &s));
    shmsock_options_free(o);
    return s;
}

static shmsock_publisher *bind_topic(const char *name, const shmsock_keypair *kp, const shmsock_topic_config *c)
{
    shmsock_options *o = server_options(kp, 0);
    shmsock_publisher *p = NULL;
    CHECK_OK(shmsock_publisher_bind(name, o, c, &p));
    shmsock_options_free(o);
    return p;
}

TEST(two_subscribers_get_every_message)
{
    char name[64];
    unique_name(name, sizeof name, "c-pub");
    shmsock_keypair *kp = new_keypair();
    shmsock_topic_config c = shmsock_topic_config_default();
    c.slots = 8;
    c.max_message_size = 4096;
    shmsock_publisher *p = bind_topic(name, kp, &c);
    shmsock_subscriber *a = subscribe(name, kp), *b = subscribe(name, kp);
    CHECK_OK(shmsock_publisher_wait_for_subscribers(p, 2, 30000));
    size_t count = 0;
    CHECK_OK(shmsock_publisher_subscriber_count(p, &count));
    CHECK(count == 2);
    uint8_t out[4096], in[4096];
    for (uint32_t i = 0; i < 6; i++) {
        size_t len = (size_t)i * 700;
        fill_pattern(out, len, i);
        CHECK_OK(shmsock_publisher_publish(p, out, len));
    }
    shmsock_subscriber *subs[2] = {a, b};
    for (int s = 0; s < 2; s++) {
        for (uint32_t i = 0; i < 6; i++) {
            shmsock_delivery d;
            CHECK_OK(shmsock_subscriber_recv_into(subs[s], in, sizeof in, 30000, &d));
            CHECK(d.len == (size_t)i * 700 && d.sequence == i && d.lost == 0);
            CHECK(check_pattern(in, d.len, i));
        }
    }
    /* A buffer too small keeps the message and says what it needs. */
    CHECK_OK(shmsock_publisher_publish(p, out, 100));
    shmsock_delivery d;
    CHECK_RC(shmsock_subscriber_recv_into(a, in, 10, 30000, &d), SHMSOCK_BUFFER_TOO_SMALL);
    CHECK(d.len == 100);
    CHECK_OK(shmsock_subscriber_recv_into(a, in, sizeof in, 30000, &d));
    /* What a subscriber says of the topic and its publisher. */
    uint64_t n = 0;
    CHECK_OK(shmsock_subscriber_received(a, &n));
    CHECK(n == 7);
    CHECK_OK(shmsock_publisher_sequence(p, &n));
    CHECK(n == 7);
    CHECK_OK(shmsock_publisher_dropped_count(p, &n));
    CHECK(n == 0);
    CHECK_OK(shmsock_subscriber_epoch(a, &n));
    CHECK(n == 1);
    shmsock_cipher cipher;
    CHECK_OK(shmsock_subscriber_cipher(a, &cipher));
    CHECK(cipher == SHMSOCK_CIPHER_AEGIS_128L);
    uint8_t key[SHMSOCK_KEY_LEN], expected[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_subscriber_publisher_public_key(a, key, sizeof key));
    CHECK_OK(shmsock_keypair_public_key(kp, expected, sizeof expected));
    CHECK(memcmp(key, expected, sizeof key) == 0);
    CHECK_RC(shmsock_subscriber_publisher_public_key(a, key, 3), SHMSOCK_BUFFER_TOO_SMALL);
    /* Closing the topic: what was published, then PEER_CLOSED. */
    CHECK_OK(shmsock_publisher_close(p));
    CHECK_OK(shmsock_subscriber_recv_into(b, in, sizeof in, 30000, &d));
    CHECK(d.len == 100);
    CHECK_RC(shmsock_subscriber_recv_into(b, in, sizeof in, 30000, &d), SHMSOCK_PEER_CLOSED);
    CHECK_RC(shmsock_publisher_publish(p, out, 1), SHMSOCK_CLOSED);
    shmsock_subscriber_free(a);
    shmsock_subscriber_free(b);
    shmsock_publisher_free(p);
    shmsock_keypair_free(kp);
}

TEST(latest_topic_reports_lag_and_pollable_fd_wakes)
{
    char name[64];
    unique_name(name, sizeof name, "c-lag");
    shmsock_keypair *kp = new_keypair();
    shmsock_topic_config c = shmsock_topic_config_default();
    c.slots = 4;
    c.max_message_size = 64;
    c.policy = SHMSOCK_SLOW_LATEST;
    shmsock_publisher *p = bind_topic(name, kp, &c);
    shmsock_subscriber *s = subscribe(name, kp);
    CHECK_OK(shmsock_publisher_wait_for_subscribers(p, 1, 30000));
    uint8_t buf[64] = {0};
    for (int i = 0; i < 10; i++)
        CHECK_OK(shmsock_publisher_publish(p, buf, 8));
    shmsock_delivery d;
    CHECK_OK(shmsock_subscriber_try_recv_into(s, buf, sizeof buf, &d));
    CHECK(d.sequence == 6 && d.lost == 6);
    uint64_t lost = 0;
    CHECK_OK(shmsock_subscriber_lost(s, &lost));
    CHECK(lost == 6);
    for (int i = 7; i < 10; i++)
        CHECK_OK(shmsock_subscriber_try_recv_into(s, buf, sizeof buf, &d));
    CHECK_RC(shmsock_subscriber_try_recv_into(s, buf, sizeof buf, &d), SHMSOCK_WOULD_BLOCK);
    int fd = -1;
    CHECK_OK(shmsock_subscriber_pollable_fd(s, &fd));
    CHECK_OK(shmsock_publisher_publish(p, buf, 3));
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pfd, 1, 30000) == 1);
    CHECK_OK(shmsock_subscriber_try_recv_into(s, buf, sizeof buf, &d));
    CHECK(d.len == 3 && d.sequence == 10 && d.lost == 0);
    uint64_t epoch = 0;
    CHECK_OK(shmsock_publisher_epoch(p, &epoch));
    CHECK(epoch == 1);
    CHECK_OK(shmsock_publisher_rotate_key(p));
    CHECK_OK(shmsock_publisher_epoch(p, &epoch));
    CHECK(epoch == 2);
    CHECK_OK(shmsock_publisher_publish(p, buf, 5));
    CHECK_OK(shmsock_subscriber_recv_into(s, buf, sizeof buf, 30000, &d));
    CHECK(d.len == 5);
    CHECK_OK(shmsock_subscriber_close(s));
    CHECK_RC(shmsock_subscriber_recv_into(s, buf, sizeof buf, 0, &d), SHMSOCK_CLOSED);
    shmsock_subscriber_free(s);
    shmsock_publisher_free(p);
    shmsock_keypair_free(kp);
}

TEST(try_publish_waits_on_the_pollable_fd)
{
    char name[64];
    unique_name(name, sizeof name, "c-try");
    shmsock_keypair *kp = new_keypair();
    shmsock_topic_config c = shmsock_topic_config_default();
    c.slots = 2;
    c.max_message_size = 64;
    c.reliable_timeout_ms = 3600000;
    shmsock_publisher *p = bind_topic(name, kp, &c);
    shmsock_subscriber *s = subscribe(name, kp);
    CHECK_OK(shmsock_publisher_wait_for_subscribers(p, 1, 30000));
    uint8_t buf[64] = {0};
    uint64_t left = 0;
    CHECK_OK(shmsock_publisher_try_publish(p, buf, 8));
    CHECK_OK(shmsock_publisher_try_publish(p, buf, 8));
    CHECK_OK(shmsock_publisher_publish_deadline(p, &left));
    CHECK(left == SHMSOCK_FOREVER);
    CHECK_RC(shmsock_publisher_try_publish(p, buf, 8), SHMSOCK_WOULD_BLOCK);
    CHECK_OK(shmsock_publisher_publish_deadline(p, &left));
    CHECK(left > 0 && left <= 3600000);
    int fd = -1;
    CHECK_OK(shmsock_publisher_pollable_fd(p, &fd));
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pfd, 1, 0) == 0);
    shmsock_delivery d;
    CHECK_OK(shmsock_subscriber_recv_into(s, buf, sizeof buf, 30000, &d));
    CHECK(poll(&pfd, 1, 30000) == 1);
    CHECK_OK(shmsock_publisher_try_publish(p, buf, 8));
    CHECK_OK(shmsock_publisher_publish_deadline(p, &left));
    CHECK(left == SHMSOCK_FOREVER);
    shmsock_subscriber_free(s);
    shmsock_publisher_free(p);
    shmsock_keypair_free(kp);
}

TEST(bad_arguments)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = server_options(kp, 0);
    shmsock_publisher *p = NULL;
    shmsock_topic_config c = shmsock_topic_config_default();
    c.slots = 3;
    CHECK_RC(shmsock_publisher_bind("c-bad-slots", o, &c, &p), SHMSOCK_INVALID_ARGUMENT);
    c = shmsock_topic_config_default();
    c.policy = 9;
    CHECK_RC(shmsock_publisher_bind("c-bad-policy", o, &c, &p), SHMSOCK_INVALID_ARGUMENT);
    CHECK(p == NULL);
    CHECK_RC(shmsock_publisher_bind(NULL, o, NULL, &p), SHMSOCK_NULL_ARGUMENT);
    CHECK_RC(shmsock_publisher_publish(NULL, NULL, 0), SHMSOCK_NULL_ARGUMENT);
    uint64_t n;
    CHECK_RC(shmsock_publisher_sequence(NULL, &n), SHMSOCK_NULL_ARGUMENT);
    CHECK_RC(shmsock_publisher_try_publish(NULL, NULL, 0), SHMSOCK_NULL_ARGUMENT);
    CHECK_RC(shmsock_publisher_pollable_fd(NULL, NULL), SHMSOCK_NULL_ARGUMENT);
    CHECK_RC(shmsock_publisher_publish_deadline(NULL, &n), SHMSOCK_NULL_ARGUMENT);
    CHECK_RC(shmsock_publisher_dropped_count(NULL, &n), SHMSOCK_NULL_ARGUMENT);
    CHECK_RC(shmsock_subscriber_received(NULL, &n), SHMSOCK_NULL_ARGUMENT);
    CHECK_RC(shmsock_subscriber_epoch(NULL, &n), SHMSOCK_NULL_ARGUMENT);
    CHECK_RC(shmsock_subscriber_cipher(NULL, NULL), SHMSOCK_NULL_ARGUMENT);
    CHECK_RC(shmsock_subscriber_publisher_public_key(NULL, NULL, 0), SHMSOCK_NULL_ARGUMENT);
    shmsock_subscriber *s = NULL;
    shmsock_options *co = client_options(kp);
    CHECK_RC(shmsock_subscriber_connect("c-no-such-topic", co, &s), SHMSOCK_NOT_FOUND);
    CHECK(s == NULL);
    shmsock_publisher_free(NULL);
    shmsock_subscriber_free(NULL);
    shmsock_options_free(co);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
}
