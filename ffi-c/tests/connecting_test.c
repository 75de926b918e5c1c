/* shmsock_connect_start(): connects that an event loop drives. One thread,
 * one epoll set: a listener and several connects to it advance side by side,
 * and no call waits. Also: no server, a connect started before its server
 * binds (a connect wait), a server that never answers, and a finished
 * connect. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "test_common.h"

enum { CONNECTS = 4 };

/* Token of the listener in the epoll set; connects are 0 .. CONNECTS-1. */
#define LISTENER_TOKEN UINT64_MAX

static void watch(int ep, int fd, uint64_t token)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = token};
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0);
}

TEST(one_thread_drives_a_listener_and_its_clients)
{
    char name[64];
    unique_name(name, sizeof name, "cg-loop");
    shmsock_keypair *kp = new_keypair();
    shmsock_options *so = server_options(kp, 0);
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, so, &l));
    shmsock_options *co = client_options(kp);

    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    int lfd = -1;
    CHECK_OK(shmsock_listener_fd(l, &lfd));
    watch(ep, lfd, LISTENER_TOKEN);

    shmsock_connecting *pending[CONNECTS] = {0};
    shmsock_stream *clients[CONNECTS] = {0};
    shmsock_stream *served[CONNECTS] = {0};
    int fds[CONNECTS];
    for (int i = 0; i < CONNECTS; i++) {
        CHECK_OK(shmsock_connect_start(name, co, &pending[i]));
        CHECK_OK(shmsock_connecting_fd(pending[i], &fds[i]));
        watch(ep, fds[i], (uint64_t)i);
        uint64_t left = 0;
        CHECK_OK(shmsock_connecting_time_left(pending[i], &left));
        CHECK(left > 0);
    }

    int connected = 0, accepted = 0;
    uint64_t deadline = now_ms() + 30000;
    while (connected < CONNECTS || accepted < CONNECTS) {
        CHECK(now_ms() < deadline);
        struct epoll_event events[8];
        int n = epoll_wait(ep, events, 8, 1000);
        CHECK(n >= 0);
        for (int e = 0; e < n; e++) {
            uint64_t token = events[e].data.u64;
            if (token == LISTENER_TOKEN) {
                for (;;) {
                    shmsock_stream *s = NULL;
                    shmsock_result rc = shmsock_listener_accept(l, 0, &s);
                    if (rc == SHMSOCK_TIMEOUT) break;
                    CHECK_OK(rc);
                    CHECK(accepted < CONNECTS);
                    served[accepted++] = s;
                }
                continue;
            }
            shmsock_connecting *c = pending[token];
            CHECK(c != NULL);
            shmsock_stream *s = NULL;
            shmsock_result rc = shmsock_connecting_advance(c, &s);
            if (rc == SHMSOCK_WOULD_BLOCK) continue;
            CHECK_OK(rc);
            /* The socket lives on in the stream: stop watching it. */
            CHECK(epoll_ctl(ep, EPOLL_CTL_DEL, fds[token], NULL) == 0);
            /* Finished: the handle only reports that it is over. */
            CHECK_RC(shmsock_connecting_advance(c, &s), SHMSOCK_CLOSED);
            shmsock_connecting_free(c);
            pending[token] = NULL;
            clients[token] = s;
            connected++;
        }
    }
    /* Every pair talks (the order of accepts need not match the connects'). */
    for (int i = 0; i < CONNECTS; i++) {
        uint8_t msg[1] = {(uint8_t)i};
        CHECK_OK(shmsock_stream_send(clients[i], msg, 1));
    }
    bool seen[CONNECTS] = {false};
    for (int i = 0; i < CONNECTS; i++) {
        uint8_t buf[4];
        size_t got = 0;
        CHECK_OK(shmsock_stream_recv_into_timeout(served[i], buf, sizeof buf, &got, 10000));
        CHECK(got == 1 && buf[0] < CONNECTS && !seen[buf[0]]);
        seen[buf[0]] = true;
    }
    for (int i = 0; i < CONNECTS; i++) {
        shmsock_stream_free(clients[i]);
        shmsock_stream_free(served[i]);
    }
    close(ep);
    shmsock_listener_free(l);
    shmsock_options_free(so);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
}

TEST(no_server_is_not_found_at_once)
{
    char name[64];
    unique_name(name, sizeof name, "cg-none");
    shmsock_keypair *kp = new_keypair();
    shmsock_options *co = client_options(kp);
    shmsock_connecting *c = (shmsock_connecting *)1;
    CHECK_RC(shmsock_connect_start(name, co, &c), SHMSOCK_NOT_FOUND);
    CHECK_RC(shmsock_connect_start(name, co, NULL), SHMSOCK_NULL_ARGUMENT);
    CHECK_RC(shmsock_connecting_advance(NULL, NULL), SHMSOCK_NULL_ARGUMENT);
    shmsock_connecting_free(NULL);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
}

/* A listener that never accepts: the connect's advance says WOULD_BLOCK
 * until the handshake timeout, then TIMEOUT, and the connect is over. */
TEST(a_silent_server_times_out)
{
    char name[64];
    unique_name(name, sizeof name, "cg-silent");
    shmsock_keypair *kp = new_keypair();
    shmsock_options *so = server_options(kp, 0);
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, so, &l));
    shmsock_options *co = client_options(kp);
    CHECK_OK(shmsock_options_set_handshake_timeout(co, 200));
    shmsock_connecting *c = NULL;
    CHECK_OK(shmsock_connect_start(name, co, &c));
    shmsock_stream *s = NULL;
    CHECK_RC(shmsock_connecting_advance(c, &s), SHMSOCK_WOULD_BLOCK);
    uint64_t left = 0;
    CHECK_OK(shmsock_connecting_time_left(c, &left));
    CHECK(left <= 200);
    sleep_ms((unsigned)left + 10);
    CHECK_OK(shmsock_connecting_time_left(c, &left));
    CHECK(left == 0);
    CHECK_RC(shmsock_connecting_advance(c, &s), SHMSOCK_TIMEOUT);
    CHECK_LAST_ERROR_HAS("did not answer the handshake");
    CHECK_RC(shmsock_connecting_advance(c, &s), SHMSOCK_CLOSED);
    int fd = 0;
    CHECK_RC(shmsock_connecting_fd(c, &fd), SHMSOCK_CLOSED);
    shmsock_connecting_free(c);
    shmsock_listener_free(l);
    shmsock_options_free(so);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
}

/* With a connect wait, a connect started before its server binds looks for
 * it through its fd (the same fd throughout), and one thread then drives the
 * listener and the connect. */
TEST(a_connect_wait_finds_a_server_that_binds_later)
{
    char name[64];
    unique_name(name, sizeof name, "cg-later");
    shmsock_keypair *kp = new_keypair();
    shmsock_options *co = client_options(kp);
    CHECK_OK(shmsock_options_set_connect_wait(co, 20000));
    shmsock_connecting *c = NULL;
    CHECK_OK(shmsock_connect_start(name, co, &c));
    int cfd = -1;
    CHECK_OK(shmsock_connecting_fd(c, &cfd));
    shmsock_stream *client = NULL;
    CHECK_RC(shmsock_connecting_advance(c, &client), SHMSOCK_WOULD_BLOCK);

    shmsock_options *so = server_options(kp, 0);
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, so, &l));
    int lfd = -1;
    CHECK_OK(shmsock_listener_fd(l, &lfd));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    CHECK(ep >= 0);
    watch(ep, lfd, LISTENER_TOKEN);
    watch(ep, cfd, 0);
    shmsock_stream *served = NULL;
    uint64_t deadline = now_ms() + 30000;
    while (client == NULL || served == NULL) {
        CHECK(now_ms() < deadline);
        struct epoll_event events[2];
        CHECK(epoll_wait(ep, events, 2, 1000) >= 0);
        if (served == NULL) {
            shmsock_result rc = shmsock_listener_accept(l, 0, &served);
            if (rc != SHMSOCK_TIMEOUT) CHECK_OK(rc);
        }
        if (client == NULL) {
            int fd = -1;
            CHECK_OK(shmsock_connecting_fd(c, &fd));
            CHECK(fd == cfd);
            /* Done: the fd of a connect that waited is closed, which takes it
             * out of the epoll set. */
            shmsock_result rc = shmsock_connecting_advance(c, &client);
            if (rc != SHMSOCK_WOULD_BLOCK) CHECK_OK(rc);
        }
    }
    uint8_t msg[5] = {'l', 'a', 't', 'e', 'r'}, buf[8];
    size_t got = 0;
    CHECK_OK(shmsock_stream_send(client, msg, sizeof msg));
    CHECK_OK(shmsock_stream_recv_into_timeout(served, buf, sizeof buf, &got, 10000));
    CHECK(got == sizeof msg && memcmp(buf, msg, got) == 0);
    close(ep);
    shmsock_connecting_free(c);
    shmsock_stream_free(client);
    shmsock_stream_free(served);
    shmsock_listener_free(l);
    shmsock_options_free(so);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
}

/* A connect wait that ends before any server binds: SHMSOCK_NOT_FOUND from
 * the advance at its end. */
TEST(a_connect_wait_that_ends_is_not_found)
{
    char name[64];
    unique_name(name, sizeof name, "cg-never");
    shmsock_keypair *kp = new_keypair();
    shmsock_options *co = client_options(kp);
    CHECK_OK(shmsock_options_set_connect_wait(co, 100));
    shmsock_connecting *c = NULL;
    CHECK_OK(shmsock_connect_start(name, co, &c));
    shmsock_stream *s = NULL;
    shmsock_result rc = SHMSOCK_WOULD_BLOCK;
    uint64_t deadline = now_ms() + 30000;
    while (rc == SHMSOCK_WOULD_BLOCK) {
        CHECK(now_ms() < deadline);
        int fd = -1;
        uint64_t left = 0;
        CHECK_OK(shmsock_connecting_fd(c, &fd));
        CHECK_OK(shmsock_connecting_time_left(c, &left));
        struct pollfd p = {.fd = fd, .events = POLLIN};
        CHECK(poll(&p, 1, (int)left + 1) >= 0);
        rc = shmsock_connecting_advance(c, &s);
    }
    CHECK_RC(rc, SHMSOCK_NOT_FOUND);
    CHECK_LAST_ERROR_HAS("no server is listening");
    shmsock_connecting_free(c);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
}
