/* Streams: connect, echo of 0 B to several MiB, the receive variants,
 * timeouts, closing, a peer's death, and what a stream reports. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_common.h"

static shmsock_stream *connect_to(const echo_server *server)
{
    shmsock_options *o = client_options(server->keypair);
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_stream_connect(server->name, o, &s));
    shmsock_options_free(o);
    return s;
}

/* Sends `len` bytes of pattern `seed` and checks the echo, received both ways. */
static void echo_once(shmsock_stream *s, size_t len, uint32_t seed, bool into)
{
    uint8_t *out = malloc(len ? len : 1);
    CHECK(out != NULL);
    fill_pattern(out, len, seed);
    CHECK_OK(shmsock_stream_send(s, out, len));
    if (into) {
        uint8_t *in = malloc(len + 16);
        size_t n = 0;
        CHECK(in != NULL);
        CHECK_OK(shmsock_stream_recv_into_timeout(s, in, len + 16, &n, 30000));
        CHECK(n == len && check_pattern(in, n, seed));
        free(in);
    } else {
        uint8_t *in = NULL;
        size_t n = 0;
        CHECK_OK(shmsock_stream_recv_timeout(s, 30000, &in, &n));
        CHECK(in != NULL);
        CHECK(n == len && check_pattern(in, n, seed));
        shmsock_buffer_free(in);
    }
    free(out);
}

/* The full cycle the valgrind run checks: bind, connect, echo, close, free. */
TEST(echo_cycle)
{
    echo_server server;
    echo_server_start(&server, "cycle", 1 << 16, 1);
    shmsock_stream *s = connect_to(&server);
    static const size_t sizes[] = {0, 1, 100, 65536, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        echo_once(s, sizes[i], (uint32_t)i, false);
        echo_once(s, sizes[i], (uint32_t)i + 100, true);
    }
    CHECK_OK(shmsock_stream_close(s));
    shmsock_stream_free(s);
    echo_server_join(&server);
    CHECK(server.end[0] == SHMSOCK_PEER_CLOSED);
    CHECK(server.echoed == 10);
}

TEST(echo_from_empty_to_several_mib)
{
    echo_server server;
    echo_server_start(&server, "sizes", 0, 1);
    shmsock_stream *s = connect_to(&server);
    static const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 4096, 65535, 65536, 65537,
                                   1 << 20, (1 << 20) + 1, 3 << 20, 8 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) echo_once(s, sizes[i], (uint32_t)i, i % 2 == 0);
    shmsock_stats stats;
    CHECK_OK(shmsock_stream_stats(s, &stats));
    CHECK(stats.messages_sent == sizeof sizes / sizeof sizes[0]);
    CHECK(stats.messages_received == stats.messages_sent);
    CHECK(stats.bytes_sent == stats.bytes_received && stats.bytes_sent > (12u << 20));
    CHECK_OK(shmsock_stream_close(s));
    shmsock_stream_free(s);
    echo_server_join(&server);
    CHECK(server.end[0] == SHMSOCK_PEER_CLOSED);
}

TEST(echo_with_named_backend_and_chacha)
{
    echo_server server;
    memset(&server, 0, sizeof server);
    unique_name(server.name, sizeof server.name, "named");
    /* Started by hand to set the backend and the cipher. */
    server.keypair = new_keypair();
    shmsock_options *o = server_options(server.keypair, 1 << 14);
    CHECK_OK(shmsock_options_set_backend(o, SHMSOCK_BACKEND_NAMED));
    CHECK_OK(shmsock_options_set_require_chacha(o, true));
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(server.name, o, &l));
    shmsock_options_free(o);

    shmsock_options *co = client_options(server.keypair);
    shmsock_stream *c = NULL;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        /* The client in a child process: connect, echo once, close. */
        if (shmsock_stream_connect(server.name, co, &c) != SHMSOCK_OK) _exit(2);
        uint8_t msg[1000], back[1000];
        size_t n = 0;
        fill_pattern(msg, sizeof msg, 5);
        if (shmsock_stream_send(c, msg, sizeof msg) != SHMSOCK_OK) _exit(3);
        if (shmsock_stream_recv_into_timeout(c, back, sizeof back, &n, 10000) != SHMSOCK_OK) _exit(4);
        if (n != sizeof msg || memcmp(msg, back, n) != 0) _exit(5);
        shmsock_stream_free(c);
        _exit(0);
    }
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_listener_accept(l, 10000, &s));
    shmsock_backend backend = 0;
    shmsock_cipher cipher = 0;
    CHECK_OK(shmsock_stream_backend(s, &backend));
    CHECK_OK(shmsock_stream_cipher(s, &cipher));
    CHECK(backend == SHMSOCK_BACKEND_NAMED);
    CHECK(cipher == SHMSOCK_CIPHER_CHACHA20_POLY1305);
    uint8_t *msg = NULL;
    size_t n = 0;
    CHECK_OK(shmsock_stream_recv_timeout(s, 10000, &msg, &n));
    CHECK_OK(shmsock_stream_send(s, msg, n));
    shmsock_buffer_free(msg);
    CHECK_RC(shmsock_stream_recv_timeout(s, 10000, &msg, &n), SHMSOCK_PEER_CLOSED);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    shmsock_stream_free(s);
    shmsock_listener_free(l);
    shmsock_options_free(co);
    shmsock_keypair_free(server.keypair);
}

TEST(buffer_too_small_reports_the_size_and_keeps_the_message)
{
    echo_server server;
    echo_server_start(&server, "small", 1 << 16, 1);
    shmsock_stream *s = connect_to(&server);
    uint8_t msg[300];
    fill_pattern(msg, sizeof msg, 9);
    CHECK_OK(shmsock_stream_send(s, msg, sizeof msg));
    uint8_t buf[300];
    size_t n = 0;
    CHECK_RC(shmsock_stream_recv_into_timeout(s, buf, 100, &n, 10000), SHMSOCK_BUFFER_TOO_SMALL);
    CHECK(n == sizeof msg);
    CHECK_LAST_ERROR_HAS("300");
    n = 0;
    CHECK_RC(shmsock_stream_try_recv_into(s, NULL, 0, &n), SHMSOCK_BUFFER_TOO_SMALL);
    CHECK(n == sizeof msg);
    CHECK_OK(shmsock_stream_recv_into(s, buf, sizeof buf, &n));
    CHECK(n == sizeof msg && memcmp(buf, msg, n) == 0);
    CHECK_OK(shmsock_stream_close(s));
    shmsock_stream_free(s);
    echo_server_join(&server);
}

TEST(recv_and_accept_time_out)
{
    echo_server server;
    echo_server_start(&server, "timeout", 1 << 16, 1);
    shmsock_stream *s = connect_to(&server);
    uint8_t buf[16];
    size_t n = 0;
    uint64_t t0 = now_ms();
    CHECK_RC(shmsock_stream_recv_into_timeout(s, buf, sizeof buf, &n, 100), SHMSOCK_TIMEOUT);
    uint64_t took = now_ms() - t0;
    CHECK(took >= 90 && took < 5000);
    uint8_t *out = NULL;
    CHECK_RC(shmsock_stream_recv_timeout(s, 0, &out, &n), SHMSOCK_TIMEOUT);
    CHECK(out == NULL);
    CHECK_RC(shmsock_stream_try_recv_into(s, buf, sizeof buf, &n), SHMSOCK_WOULD_BLOCK);
    CHECK_RC(shmsock_stream_try_recv(s, &out, &n), SHMSOCK_WOULD_BLOCK);
    /* The stream still works after timeouts. */
    echo_once(s, 10, 1, true);
    CHECK_OK(shmsock_stream_close(s));
    shmsock_stream_free(s);
    echo_server_join(&server);

    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = server_options(kp, 0);
    char name[64];
    unique_name(name, sizeof name, "accept");
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, o, &l));
    shmsock_stream *none = NULL;
    t0 = now_ms();
    CHECK_RC(shmsock_listener_accept(l, 100, &none), SHMSOCK_TIMEOUT);
    CHECK(now_ms() - t0 >= 90);
    CHECK_RC(shmsock_listener_accept(l, 0, &none), SHMSOCK_TIMEOUT);
    CHECK(none == NULL);
    shmsock_listener_free(l);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
}

TEST(default_recv_timeout_from_options)
{
    echo_server server;
    echo_server_start(&server, "deftimeout", 1 << 16, 1);
    shmsock_options *o = client_options(server.keypair);
    CHECK_OK(shmsock_options_set_recv_timeout(o, 50));
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_stream_connect(server.name, o, &s));
    uint8_t buf[8];
    size_t n;
    CHECK_RC(shmsock_stream_recv_into(s, buf, sizeof buf, &n), SHMSOCK_TIMEOUT);
    uint8_t *m = NULL;
    CHECK_RC(shmsock_stream_recv(s, &m, &n), SHMSOCK_TIMEOUT);
    shmsock_stream_free(s);
    shmsock_options_free(o);
    echo_server_join(&server);
}

/* A server that accepts one stream and never reads, so the client's ring fills. */
TEST(send_times_out_and_try_send_would_block_on_a_full_ring)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = server_options(kp, 1 << 12);
    char name[64];
    unique_name(name, sizeof name, "full");
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, o, &l));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        shmsock_stream *s = NULL;
        if (shmsock_listener_accept(l, 10000, &s) != SHMSOCK_OK) _exit(2);
        pause(); /* never reads; killed by the parent */
        _exit(0);
    }
    shmsock_options *co = client_options(kp);
    CHECK_OK(shmsock_options_set_send_timeout(co, 100));
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_stream_connect(name, co, &s));
    uint8_t msg[512] = {0};
    shmsock_result rc = SHMSOCK_OK;
    int sent = 0;
    while (sent < 100 && (rc = shmsock_stream_try_send(s, msg, sizeof msg)) == SHMSOCK_OK) sent++;
    CHECK(rc == SHMSOCK_WOULD_BLOCK);
    CHECK(sent > 0 && sent < 100);
    uint64_t t0 = now_ms();
    CHECK_RC(shmsock_stream_send(s, msg, sizeof msg), SHMSOCK_TIMEOUT);
    CHECK(now_ms() - t0 >= 90);
    CHECK_RC(shmsock_stream_send_timeout(s, msg, sizeof msg, 20), SHMSOCK_TIMEOUT);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    shmsock_stream_free(s);
    shmsock_options_free(co);
    shmsock_listener_free(l);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
}

TEST(close_is_idempotent_and_use_after_close_is_closed)
{
    echo_server server;
    echo_server_start(&server, "close", 1 << 16, 1);
    shmsock_stream *s = connect_to(&server);
    echo_once(s, 5, 5, true);
    bool closed = true;
    CHECK_OK(shmsock_stream_is_closed(s, &closed));
    CHECK(!closed);
    CHECK_OK(shmsock_stream_close(s));
    CHECK_OK(shmsock_stream_close(s));
    CHECK_OK(shmsock_stream_is_closed(s, &closed));
    CHECK(closed);
    uint8_t buf[8];
    size_t n = 0;
    uint8_t *m = NULL;
    CHECK_RC(shmsock_stream_send(s, buf, 1), SHMSOCK_CLOSED);
    CHECK_RC(shmsock_stream_try_send(s, buf, 1), SHMSOCK_CLOSED);
    CHECK_RC(shmsock_stream_send_timeout(s, buf, 1, 10), SHMSOCK_CLOSED);
    CHECK_RC(shmsock_stream_recv_into(s, buf, sizeof buf, &n), SHMSOCK_CLOSED);
    CHECK_RC(shmsock_stream_try_recv_into(s, buf, sizeof buf, &n), SHMSOCK_CLOSED);
    CHECK_RC(shmsock_stream_recv(s, &m, &n), SHMSOCK_CLOSED);
    CHECK_RC(shmsock_stream_try_recv(s, &m, &n), SHMSOCK_CLOSED);
    CHECK(m == NULL);
    /* Queries keep working. */
    uint8_t key[SHMSOCK_KEY_LEN];
    shmsock_stats st;
    CHECK_OK(shmsock_stream_peer_public_key(s, key, sizeof key));
    CHECK_OK(shmsock_stream_stats(s, &st));
    CHECK(st.messages_sent == 1);
    shmsock_stream_free(s);
    echo_server_join(&server);
    CHECK(server.end[0] == SHMSOCK_PEER_CLOSED);
}

static void *close_later(void *arg)
{
    sleep_ms(100);
    CHECK_OK(shmsock_stream_close(arg));
    return NULL;
}

TEST(close_wakes_a_blocked_receiver)
{
    echo_server server;
    echo_server_start(&server, "wake", 1 << 16, 1);
    shmsock_stream *s = connect_to(&server);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, close_later, s) == 0);
    uint8_t buf[8];
    size_t n = 0;
    CHECK_RC(shmsock_stream_recv_into_timeout(s, buf, sizeof buf, &n, 20000), SHMSOCK_CLOSED);
    CHECK(pthread_join(t, NULL) == 0);
    shmsock_stream_free(s);
    echo_server_join(&server);
}

TEST(peer_close_delivers_everything_then_peer_closed)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = server_options(kp, 1 << 16);
    char name[64];
    unique_name(name, sizeof name, "peerclose");
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, o, &l));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        shmsock_options *co = client_options(kp);
        shmsock_stream *c = NULL;
        if (shmsock_stream_connect(name, co, &c) != SHMSOCK_OK) _exit(2);
        for (uint32_t i = 0; i < 50; i++)
            if (shmsock_stream_send(c, (uint8_t *)&i, sizeof i) != SHMSOCK_OK) _exit(3);
        shmsock_stream_close(c);
        shmsock_stream_free(c);
        shmsock_options_free(co);
        _exit(0);
    }
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_listener_accept(l, 10000, &s));
    for (uint32_t i = 0; i < 50; i++) {
        uint32_t v = 0;
        size_t n = 0;
        CHECK_OK(shmsock_stream_recv_into_timeout(s, (uint8_t *)&v, sizeof v, &n, 10000));
        CHECK(n == sizeof v && v == i);
    }
    uint8_t buf[4];
    size_t n;
    CHECK_RC(shmsock_stream_recv_into_timeout(s, buf, sizeof buf, &n, 10000), SHMSOCK_PEER_CLOSED);
    CHECK_RC(shmsock_stream_recv_into_timeout(s, buf, sizeof buf, &n, 10), SHMSOCK_PEER_CLOSED);
    CHECK_RC(shmsock_stream_send(s, buf, 1), SHMSOCK_PEER_CLOSED);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    shmsock_stream_free(s);
    shmsock_listener_free(l);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
}

/* A child of fork() holds a copy of the stream, not the connection: its calls
 * are SHMSOCK_CLOSED, and closing and freeing its copy leave the parent's. */
TEST(a_child_of_fork_cannot_use_or_end_its_parents_stream)
{
    echo_server server;
    echo_server_start(&server, "forkcopy", 0, 1);
    shmsock_stream *s = connect_to(&server);
    echo_once(s, 100, 1, false);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        static const uint8_t message[] = "from the child";
        bool ok = shmsock_stream_send(s, message, sizeof message) == SHMSOCK_CLOSED &&
                  strstr(shmsock_last_error(), "fork()") != NULL;
        ok = ok && shmsock_stream_close(s) == SHMSOCK_OK;
        shmsock_stream_free(s);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    echo_once(s, 1000, 2, true);
    CHECK_OK(shmsock_stream_close(s));
    shmsock_stream_free(s);
    echo_server_join(&server);
    CHECK(server.end[0] == SHMSOCK_PEER_CLOSED);
    CHECK(server.echoed == 2);
}

TEST(peer_death_is_peer_gone)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = server_options(kp, 1 << 16);
    char name[64];
    unique_name(name, sizeof name, "gone");
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, o, &l));
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        shmsock_options *co = client_options(kp);
        shmsock_stream *c = NULL;
        if (shmsock_stream_connect(name, co, &c) != SHMSOCK_OK) _exit(2);
        if (shmsock_stream_send(c, (const uint8_t *)"bye", 3) != SHMSOCK_OK) _exit(3);
        _exit(0); /* dies without closing */
    }
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_listener_accept(l, 10000, &s));
    shmsock_credentials cred;
    CHECK_OK(shmsock_stream_peer_credentials(s, &cred));
    CHECK(cred.pid == pid && cred.uid == getuid());
    uint8_t buf[8];
    size_t n = 0;
    CHECK_OK(shmsock_stream_recv_into_timeout(s, buf, sizeof buf, &n, 10000));
    CHECK(n == 3 && memcmp(buf, "bye", 3) == 0);
    waitpid(pid, NULL, 0);
    uint64_t t0 = now_ms();
    CHECK_RC(shmsock_stream_recv_into_timeout(s, buf, sizeof buf, &n, 10000), SHMSOCK_PEER_GONE);
    CHECK(now_ms() - t0 < 5000); /* noticed at once, not by the timeout */
    shmsock_stream_free(s);
    shmsock_listener_free(l);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
}

TEST(stream_reports_keys_role_sizes_and_name)
{
    echo_server server;
    echo_server_start(&server, "info", 1 << 15, 1);
    shmsock_keypair *me = new_keypair();
    shmsock_options *o = client_options(server.keypair);
    CHECK_OK(shmsock_options_set_keypair(o, me));
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_stream_connect(server.name, o, &s));
    uint8_t peer[SHMSOCK_KEY_LEN], want[SHMSOCK_KEY_LEN], local[SHMSOCK_KEY_LEN], mine[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_stream_peer_public_key(s, peer, sizeof peer));
    CHECK_OK(shmsock_keypair_public_key(server.keypair, want, sizeof want));
    CHECK(memcmp(peer, want, sizeof peer) == 0);
    CHECK_OK(shmsock_stream_local_public_key(s, local, sizeof local));
    CHECK_OK(shmsock_keypair_public_key(me, mine, sizeof mine));
    CHECK(memcmp(local, mine, sizeof local) == 0);
    shmsock_role role = 0;
    CHECK_OK(shmsock_stream_role(s, &role));
    CHECK(role == SHMSOCK_ROLE_CLIENT);
    uint32_t ring = 0, max = 0;
    CHECK_OK(shmsock_stream_ring_size(s, &ring));
    CHECK(ring == 1 << 15);
    CHECK_OK(shmsock_stream_peer_max_message_size(s, &max));
    CHECK(max == 16u << 20);
    char name[128];
    size_t n = 0;
    CHECK_OK(shmsock_stream_endpoint(s, name, sizeof name, &n));
    CHECK(strcmp(name, server.name) == 0 && n == strlen(server.name));
    shmsock_cipher cipher = 0;
    CHECK_OK(shmsock_stream_cipher(s, &cipher));
    CHECK(cipher == SHMSOCK_CIPHER_AEGIS_128L || cipher == SHMSOCK_CIPHER_CHACHA20_POLY1305);
    int fd = -1;
    CHECK_OK(shmsock_stream_pollable_fd(s, &fd));
    CHECK(fd > 2);
    shmsock_stream_free(s);
    shmsock_options_free(o);
    shmsock_keypair_free(me);
    echo_server_join(&server);
}

TEST(listener_reports_key_fd_and_name)
{
    echo_server server;
    echo_server_start(&server, "lst", 0, 0);
    uint8_t key[SHMSOCK_KEY_LEN], want[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_listener_public_key(server.listener, key, sizeof key));
    CHECK_OK(shmsock_keypair_public_key(server.keypair, want, sizeof want));
    CHECK(memcmp(key, want, sizeof key) == 0);
    int fd = -1;
    CHECK_OK(shmsock_listener_fd(server.listener, &fd));
    CHECK(fd > 2);
    char name[128];
    CHECK_OK(shmsock_listener_name(server.listener, name, sizeof name, NULL));
    CHECK(strcmp(name, server.name) == 0);
    uint64_t rejected = 99;
    CHECK_OK(shmsock_listener_rejected_count(server.listener, &rejected));
    CHECK(rejected == 0);
    uint32_t code = 99;
    CHECK_OK(shmsock_listener_last_rejection(server.listener, &code));
    CHECK(code == SHMSOCK_OK);
    echo_server_join(&server);
}

/* An accept blocked in a thread of its own, with what it returned. */
typedef struct {
    shmsock_listener *listener;
    uint64_t timeout_ms;
    shmsock_result rc;
    shmsock_stream *stream;
} blocked_accept;

static void *accept_in_thread(void *arg)
{
    blocked_accept *a = arg;
    a->rc = shmsock_listener_accept(a->listener, a->timeout_ms, &a->stream);
    return NULL;
}

TEST(listener_close_from_another_thread_unblocks_accept)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = server_options(kp, 0);
    shmsock_options *co = client_options(kp);
    char name[64];
    unique_name(name, sizeof name, "lclose");
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, o, &l));

    blocked_accept a = {.listener = l, .timeout_ms = SHMSOCK_FOREVER, .rc = SHMSOCK_OK, .stream = NULL};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, accept_in_thread, &a) == 0);
    sleep_ms(100); /* let the accept block */
    uint64_t t0 = now_ms();
    CHECK_OK(shmsock_listener_close(l));
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(now_ms() - t0 < 5000);
    CHECK(a.rc == SHMSOCK_CLOSED);
    CHECK(a.stream == NULL);

    /* Idempotent; later accepts fail at once, whatever their timeout. */
    CHECK_OK(shmsock_listener_close(l));
    shmsock_stream *none = NULL;
    CHECK_RC(shmsock_listener_accept(l, 0, &none), SHMSOCK_CLOSED);
    CHECK_LAST_ERROR_HAS("closed");
    t0 = now_ms();
    CHECK_RC(shmsock_listener_accept(l, 10000, &none), SHMSOCK_CLOSED);
    CHECK(now_ms() - t0 < 5000);
    CHECK(none == NULL);
    /* The handle stays valid until freed: its queries still work. */
    char got[128];
    CHECK_OK(shmsock_listener_name(l, got, sizeof got, NULL));
    CHECK(strcmp(got, name) == 0);
    uint8_t key[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_listener_public_key(l, key, sizeof key));

    /* The endpoint is gone: nobody listens on the name... */
    shmsock_stream *c = NULL;
    CHECK_RC(shmsock_stream_connect(name, co, &c), SHMSOCK_NOT_FOUND);
    /* ...and it can be bound again while the closed listener still exists. */
    shmsock_listener *again = NULL;
    CHECK_OK(shmsock_listener_bind(name, o, &again));
    blocked_accept b = {.listener = again, .timeout_ms = 10000, .rc = SHMSOCK_OK, .stream = NULL};
    CHECK(pthread_create(&t, NULL, accept_in_thread, &b) == 0);
    CHECK_OK(shmsock_stream_connect(name, co, &c));
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(b.rc == SHMSOCK_OK && b.stream != NULL);
    CHECK_OK(shmsock_stream_send(c, (const uint8_t *)"hi", 2));
    uint8_t buf[8];
    size_t n = 0;
    CHECK_OK(shmsock_stream_recv_into_timeout(b.stream, buf, sizeof buf, &n, 5000));
    CHECK(n == 2 && memcmp(buf, "hi", 2) == 0);

    /* Closing the new listener leaves its accepted stream connected. */
    CHECK_OK(shmsock_listener_close(again));
    CHECK_OK(shmsock_stream_send(b.stream, (const uint8_t *)"yo", 2));
    CHECK_OK(shmsock_stream_recv_into_timeout(c, buf, sizeof buf, &n, 5000));
    CHECK(n == 2 && memcmp(buf, "yo", 2) == 0);

    shmsock_stream_free(c);
    shmsock_stream_free(b.stream);
    shmsock_listener_free(again);
    shmsock_listener_free(l);
    shmsock_options_free(co);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
}

/* Accepts `want` streams on `listener`, keeping them open. */
typedef struct {
    shmsock_listener *listener;
    shmsock_stream *accepted[4];
    int want;
} keeper;

static void *keep_accepting(void *arg)
{
    keeper *k = arg;
    for (int i = 0; i < k->want; i++) CHECK_OK(shmsock_listener_accept(k->listener, 10000, &k->accepted[i]));
    return NULL;
}

/* A listener keeps at most its bound of open streams: one more client is
 * refused with SHMSOCK_RESOURCE_EXHAUSTED; the bound changes while it serves. */
TEST(listener_set_max_connections_bounds_open_streams)
{
    char name[64];
    unique_name(name, sizeof name, "seats");
    shmsock_keypair *kp = new_keypair();
    shmsock_options *so = server_options(kp, 0);
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, so, &l));
    shmsock_options_free(so);
    CHECK_RC(shmsock_listener_set_max_connections(l, 0, 0), SHMSOCK_INVALID_ARGUMENT);
    CHECK_RC(shmsock_listener_set_max_connections(NULL, 1, 0), SHMSOCK_NULL_ARGUMENT);
    CHECK_OK(shmsock_listener_set_max_connections(l, 1, 0));
    keeper k = {.listener = l, .want = 2};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, keep_accepting, &k) == 0);
    shmsock_options *co = client_options(kp);
    shmsock_stream *first = NULL, *refused = NULL, *second = NULL;
    CHECK_OK(shmsock_stream_connect(name, co, &first));
    CHECK_RC(shmsock_stream_connect(name, co, &refused), SHMSOCK_RESOURCE_EXHAUSTED);
    CHECK(refused == NULL);
    char why[256];
    CHECK_OK(shmsock_last_error_message(why, sizeof why, NULL));
    CHECK(strstr(why, "full") != NULL);
    CHECK_OK(shmsock_listener_set_max_connections(l, 2, 2));
    CHECK_OK(shmsock_stream_connect(name, co, &second));
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_OK(shmsock_stream_send(second, (const uint8_t *)"seated", 6));
    uint8_t buf[16];
    size_t n = 0;
    CHECK_OK(shmsock_stream_recv_into_timeout(k.accepted[1], buf, sizeof buf, &n, 10000));
    CHECK(n == 6 && memcmp(buf, "seated", 6) == 0);
    shmsock_options_free(co);
    shmsock_stream_free(first);
    shmsock_stream_free(second);
    for (int i = 0; i < k.want; i++) shmsock_stream_free(k.accepted[i]);
    shmsock_listener_free(l);
    shmsock_keypair_free(kp);
}

TEST(endpoint_list_shows_a_bound_endpoint)
{
    echo_server server;
    echo_server_start(&server, "listed", 0, 0);
    shmsock_endpoint_list *list = NULL;
    CHECK_OK(shmsock_endpoint_list_new(&list));
    size_t len = 0;
    CHECK_OK(shmsock_endpoint_list_len(list, &len));
    bool found = false;
    for (size_t i = 0; i < len; i++) {
        shmsock_endpoint_info info;
        CHECK_OK(shmsock_endpoint_list_get(list, i, &info));
        if (strcmp(info.name, server.name) == 0) {
            found = true;
            CHECK(info.alive);
            CHECK(info.pid == getpid());
        }
    }
    CHECK(found);
    shmsock_endpoint_info info;
    CHECK_RC(shmsock_endpoint_list_get(list, len, &info), SHMSOCK_INVALID_ARGUMENT);
    shmsock_endpoint_list_free(list);
    echo_server_join(&server);
}

/* Several threads send on one stream at once: each message arrives whole. */
static void *send_many(void *arg)
{
    shmsock_stream *s = arg;
    uint8_t msg[3000];
    for (int i = 0; i < 100; i++) {
        fill_pattern(msg, sizeof msg, 77);
        CHECK_OK(shmsock_stream_send(s, msg, sizeof msg));
    }
    return NULL;
}

TEST(concurrent_senders_and_a_receiver)
{
    echo_server server;
    echo_server_start(&server, "threads", 1 << 14, 1);
    shmsock_stream *s = connect_to(&server);
    pthread_t t[3];
    for (int i = 0; i < 3; i++) CHECK(pthread_create(&t[i], NULL, send_many, s) == 0);
    uint8_t buf[3000];
    for (int i = 0; i < 300; i++) {
        size_t n = 0;
        CHECK_OK(shmsock_stream_recv_into_timeout(s, buf, sizeof buf, &n, 20000));
        CHECK(n == sizeof buf && check_pattern(buf, n, 77));
    }
    for (int i = 0; i < 3; i++) CHECK(pthread_join(t[i], NULL) == 0);
    shmsock_stream_free(s);
    echo_server_join(&server);
}
