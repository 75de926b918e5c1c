/* One thread drives a listener, several streams, a timer and a cross-thread
 * wake with one shmsock_reactor, echoing every message until each peer closed. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_common.h"

enum { CLIENTS = 4, MESSAGES = 200, MAX_MSG = 20000, LISTENER = 1000, TIMER = 2000 };

/* Echoes one message; false once the stream ended. */
static bool serve_one(shmsock_stream *s, uint8_t *buf, bool *more)
{
    size_t n = 0;
    shmsock_result rc = shmsock_stream_try_recv_into(s, buf, MAX_MSG, &n);
    *more = rc == SHMSOCK_OK;
    if (rc == SHMSOCK_WOULD_BLOCK) return true;
    if (rc != SHMSOCK_OK) {
        CHECK(rc == SHMSOCK_PEER_CLOSED);
        return false;
    }
    CHECK_OK(shmsock_stream_send(s, buf, n));
    return true;
}

static void *waker_main(void *p)
{
    usleep(1000);
    CHECK_OK(shmsock_reactor_wake(p));
    return NULL;
}

TEST(reactor_drives_many_streams_from_one_thread)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = server_options(kp, 1 << 16);
    char name[64];
    unique_name(name, sizeof name, "reactor");
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, o, &l));
    shmsock_reactor *r = NULL;
    CHECK(shmsock_reactor_new(2000000, &r) == SHMSOCK_INVALID_ARGUMENT);
    CHECK_OK(shmsock_reactor_new(20, &r));
    CHECK_OK(shmsock_reactor_add_listener(r, l, LISTENER));
    CHECK(shmsock_reactor_add_listener(r, l, UINT64_MAX) == SHMSOCK_INVALID_ARGUMENT);
    uint64_t timer = 0, cancelled = 0, left = 0;
    CHECK_OK(shmsock_reactor_add_timer(r, 5, TIMER, &timer));
    CHECK_OK(shmsock_reactor_add_timer(r, 1, TIMER + 1, &cancelled));
    CHECK_OK(shmsock_reactor_cancel_timer(r, cancelled));
    CHECK_OK(shmsock_reactor_next_timeout(r, &left));
    CHECK(left <= 5);
    int fd = -1;
    CHECK_OK(shmsock_reactor_fd(r, &fd));
    CHECK(fd >= 0);

    pthread_t t[CLIENTS], w;
    pattern_client args[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        args[i] = (pattern_client){name, kp, (uint32_t)i + 1, MESSAGES, MAX_MSG};
        CHECK(pthread_create(&t[i], NULL, pattern_client_main, &args[i]) == 0);
    }
    CHECK(pthread_create(&w, NULL, waker_main, r) == 0);
    shmsock_stream *streams[CLIENTS] = {0};
    bool live[CLIENTS] = {0};
    int accepted = 0, ended = 0, timers = 0, wakes = 0;
    uint8_t *buf = malloc(MAX_MSG);
    CHECK(buf != NULL);
    uint64_t deadline = now_ms() + 60000;
    while (ended < CLIENTS || wakes == 0 || timers == 0) {
        CHECK(now_ms() < deadline);
        shmsock_event events[4]; /* fewer than may be ready: the rest come next */
        size_t n = 0;
        CHECK_OK(shmsock_reactor_poll(r, 1000, events, 4, &n));
        for (size_t i = 0; i < n; i++) {
            if (events[i].kind == SHMSOCK_EVENT_WOKEN) {
                wakes++;
            } else if (events[i].kind == SHMSOCK_EVENT_TIMER) {
                CHECK(events[i].token == TIMER);
                timers++;
            } else if (events[i].token == LISTENER) {
                shmsock_stream *s = NULL;
                shmsock_result rc = shmsock_listener_accept(l, 0, &s);
                if (rc == SHMSOCK_TIMEOUT) continue;
                CHECK_OK(rc);
                CHECK(accepted < CLIENTS);
                streams[accepted] = s;
                live[accepted] = true;
                CHECK_OK(shmsock_reactor_add_stream(r, s, (uint64_t)accepted));
                /* Messages may already wait: look once, which also arms the fd. */
                bool more = true;
                while (more && live[accepted]) {
                    if (!serve_one(s, buf, &more)) {
                        CHECK_OK(shmsock_reactor_remove_stream(r, s));
                        live[accepted] = false;
                        ended++;
                    }
                }
                accepted++;
            } else {
                uint64_t k = events[i].token;
                CHECK(k < CLIENTS);
                if (!live[k]) continue;
                bool more = true;
                /* One message per event and turn: the fd stays readable while more wait. */
                if (!serve_one(streams[k], buf, &more)) {
                    CHECK_OK(shmsock_reactor_remove_stream(r, streams[k]));
                    live[k] = false;
                    ended++;
                }
            }
        }
    }
    CHECK(timers == 1);
    for (int i = 0; i < CLIENTS; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        shmsock_stream_free(streams[i]);
    }
    CHECK(pthread_join(w, NULL) == 0);
    CHECK(shmsock_reactor_poll(r, 0, NULL, 4, &(size_t){0}) == SHMSOCK_NULL_ARGUMENT);
    shmsock_reactor_free(r);
    shmsock_reactor_free(NULL);
    shmsock_listener_free(l);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
    free(buf);
}

TEST(server_limits_are_checked)
{
    shmsock_options *o = NULL;
    CHECK_OK(shmsock_options_new(&o));
    CHECK_OK(shmsock_options_set_server_limits(o, 10, 0, 4, 2, 4096, 2));
    CHECK(shmsock_options_set_server_limits(o, 0, 0, 4, 2, 4096, 2) == SHMSOCK_INVALID_ARGUMENT);
    CHECK(shmsock_options_set_server_limits(o, 10, 0, 4, 2, 4096, 0) == SHMSOCK_INVALID_ARGUMENT);
    CHECK(shmsock_options_set_server_limits(NULL, 10, 0, 4, 2, 4096, 1) == SHMSOCK_NULL_ARGUMENT);
    shmsock_options_free(o);
}

