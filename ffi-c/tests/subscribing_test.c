/* shmsock_subscribe_start(): subscriptions that an event loop drives. A
 * subscription started before its topic is bound (a connect wait) finds it
 * through its fd, the same fd throughout; no topic without a wait is
 * SHMSOCK_NOT_FOUND at once; a server that never answers times out; bad
 * arguments. */
#define _GNU_SOURCE
#include <poll.h>
#include <string.h>

#include "test_common.h"

/* Polls the subscription's fd and advances it until it is done; returns the
 * last result (SHMSOCK_OK with *out set, or the error). */
static shmsock_result drive(shmsock_subscribing *s, shmsock_subscriber **out)
{
    int first = -1;
    CHECK_OK(shmsock_subscribing_fd(s, &first));
    uint64_t deadline = now_ms() + 30000;
    for (;;) {
        CHECK(now_ms() < deadline);
        shmsock_result rc = shmsock_subscribing_advance(s, out);
        if (rc != SHMSOCK_WOULD_BLOCK) return rc;
        int fd = -1;
        uint64_t left = 0;
        CHECK_OK(shmsock_subscribing_fd(s, &fd));
        CHECK(fd == first);
        CHECK_OK(shmsock_subscribing_time_left(s, &left));
        struct pollfd p = {.fd = fd, .events = POLLIN};
        CHECK(poll(&p, 1, left > 1000 ? 1000 : (int)left + 1) >= 0);
    }
}

TEST(a_subscription_with_a_wait_finds_a_topic_bound_later)
{
    char name[64];
    unique_name(name, sizeof name, "sg-later");
    shmsock_keypair *kp = new_keypair();
    shmsock_options *co = client_options(kp);
    CHECK_OK(shmsock_options_set_connect_wait(co, 20000));
    shmsock_subscribing *s = NULL;
    CHECK_OK(shmsock_subscribe_start(name, co, &s));
    shmsock_subscriber *sub = NULL;
    CHECK_RC(shmsock_subscribing_advance(s, &sub), SHMSOCK_WOULD_BLOCK);

    shmsock_options *so = server_options(kp, 0);
    shmsock_topic_config c = shmsock_topic_config_default();
    shmsock_publisher *p = NULL;
    CHECK_OK(shmsock_publisher_bind(name, so, &c, &p));
    CHECK_OK(drive(s, &sub));
    CHECK_RC(shmsock_subscribing_advance(s, &sub), SHMSOCK_CLOSED);
    shmsock_subscribing_free(s);

    CHECK_OK(shmsock_publisher_wait_for_subscribers(p, 1, 30000));
    const uint8_t msg[5] = {'l', 'a', 't', 'e', 'r'};
    CHECK_OK(shmsock_publisher_publish(p, msg, sizeof msg));
    uint8_t in[16];
    shmsock_delivery d;
    CHECK_OK(shmsock_subscriber_recv_into(sub, in, sizeof in, 30000, &d));
    CHECK(d.len == sizeof msg && memcmp(in, msg, sizeof msg) == 0);
    shmsock_subscriber_free(sub);
    shmsock_publisher_free(p);
    shmsock_options_free(so);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
}

TEST(no_topic_is_not_found_and_a_silent_server_times_out)
{
    char name[64];
    unique_name(name, sizeof name, "sg-none");
    shmsock_keypair *kp = new_keypair();
    shmsock_options *co = client_options(kp);
    shmsock_subscribing *s = (shmsock_subscribing *)1;
    CHECK_RC(shmsock_subscribe_start(name, co, &s), SHMSOCK_NOT_FOUND);
    CHECK_RC(shmsock_subscribe_start(name, co, NULL), SHMSOCK_NULL_ARGUMENT);
    CHECK_RC(shmsock_subscribing_advance(NULL, NULL), SHMSOCK_NULL_ARGUMENT);
    shmsock_subscribing_free(NULL);

    /* A stream listener that never accepts: nobody answers the SUBSCRIBE. */
    unique_name(name, sizeof name, "sg-silent");
    shmsock_options *so = server_options(kp, 0);
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, so, &l));
    CHECK_OK(shmsock_options_set_handshake_timeout(co, 200));
    s = NULL;
    CHECK_OK(shmsock_subscribe_start(name, co, &s));
    shmsock_subscriber *sub = NULL;
    CHECK_RC(drive(s, &sub), SHMSOCK_TIMEOUT);
    CHECK_LAST_ERROR_HAS("did not answer");
    int fd = 0;
    CHECK_RC(shmsock_subscribing_fd(s, &fd), SHMSOCK_CLOSED);
    shmsock_subscribing_free(s);
    shmsock_listener_free(l);
    shmsock_options_free(so);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
}

/* The publisher's side for event loops: shmsock_publisher_try_wait_for_subscribers
 * is SHMSOCK_WOULD_BLOCK until enough subscribers joined, and the membership
 * fd says when to look again. */
TEST(a_publisher_waits_for_subscribers_through_its_membership_fd)
{
    char name[64];
    unique_name(name, sizeof name, "sg-members");
    shmsock_keypair *kp = new_keypair();
    shmsock_options *so = server_options(kp, 0);
    shmsock_topic_config c = shmsock_topic_config_default();
    shmsock_publisher *p = NULL;
    CHECK_OK(shmsock_publisher_bind(name, so, &c, &p));
    CHECK_RC(shmsock_publisher_try_wait_for_subscribers(p, 1), SHMSOCK_WOULD_BLOCK);
    CHECK_RC(shmsock_publisher_try_wait_for_subscribers(NULL, 1), SHMSOCK_NULL_ARGUMENT);
    int fd = -1;
    CHECK_OK(shmsock_publisher_membership_fd(p, &fd));
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    CHECK(poll(&pfd, 1, 0) == 0);

    shmsock_options *co = client_options(kp);
    shmsock_subscriber *sub = NULL;
    CHECK_OK(shmsock_subscriber_connect(name, co, &sub));
    uint64_t deadline = now_ms() + 30000;
    shmsock_result rc;
    while ((rc = shmsock_publisher_try_wait_for_subscribers(p, 1)) == SHMSOCK_WOULD_BLOCK) {
        CHECK(now_ms() < deadline);
        CHECK(poll(&pfd, 1, 1000) >= 0);
    }
    CHECK_OK(rc);
    shmsock_subscriber_free(sub);
    CHECK_OK(shmsock_publisher_close(p));
    CHECK_RC(shmsock_publisher_try_wait_for_subscribers(p, 1), SHMSOCK_CLOSED);
    shmsock_publisher_free(p);
    shmsock_options_free(so);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
}
