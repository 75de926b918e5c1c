/* The event-driven Server and Client: callbacks, user_data, replies from
 * inside callbacks and from other threads, rejections, closing from anywhere. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_common.h"

/* What callbacks saw, guarded by a mutex; waiters sleep on the condition. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int connects, datas, errors, closes;
    uint64_t bytes;
    shmsock_result last_error, last_close;
    bool error_had_connection;
    bool close_message_null;
    shmsock_connection *kept;  /* a clone made in on_connect */
    pthread_t callback_thread; /* the thread callbacks ran on */
    bool close_on_data;        /* the client closes itself from on_data */
    shmsock_client *self;
    /* What the first on_connect read from its borrowed connection. */
    shmsock_cipher cipher;
    shmsock_result cipher_rc, cipher_null_out_rc;
    uint8_t local_key[SHMSOCK_KEY_LEN];
    shmsock_result local_key_rc, local_key_small_rc;
} events;

static void events_init(events *e)
{
    memset(e, 0, sizeof *e);
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    e->last_error = SHMSOCK_OK;
    e->last_close = 999;
}

static void events_destroy(events *e)
{
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
}

/* Waits until *counter >= target (10 s at most). */
static void wait_for(events *e, int *counter, int target)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 10;
    pthread_mutex_lock(&e->mu);
    while (*counter < target) {
        if (pthread_cond_timedwait(&e->cv, &e->mu, &deadline) == ETIMEDOUT) break;
    }
    int got = *counter;
    pthread_mutex_unlock(&e->mu);
    if (got < target) test_fail(__FILE__, __LINE__, "waited for %d events, saw %d", target, got);
}

#define BUMP(e, field)                  \
    do {                                \
        pthread_mutex_lock(&(e)->mu);   \
        (e)->field++;                   \
        (e)->callback_thread = pthread_self(); \
        pthread_cond_broadcast(&(e)->cv); \
        pthread_mutex_unlock(&(e)->mu); \
    } while (0)

/* ---------------------------------------------------------------- server side */

static void s_on_connect(void *user, shmsock_connection *c)
{
    events *e = user;
    /* Freeing a borrowed connection does nothing. */
    shmsock_connection_free(c);
    shmsock_connection *kept = NULL;
    CHECK_OK(shmsock_connection_clone(c, &kept));
    pthread_mutex_lock(&e->mu);
    if (!e->kept) {
        e->kept = kept;
        e->cipher_rc = shmsock_connection_cipher(c, &e->cipher);
        e->cipher_null_out_rc = shmsock_connection_cipher(c, NULL);
        e->local_key_rc = shmsock_connection_local_public_key(c, e->local_key, sizeof e->local_key);
        uint8_t small[SHMSOCK_KEY_LEN - 1];
        e->local_key_small_rc = shmsock_connection_local_public_key(c, small, sizeof small);
    } else {
        shmsock_connection_free(kept);
    }
    pthread_mutex_unlock(&e->mu);
    BUMP(e, connects);
}

static void s_on_data(void *user, shmsock_connection *c, const uint8_t *data, size_t len)
{
    events *e = user;
    CHECK(data != NULL);
    if (len == 3 && memcmp(data, "bye", 3) == 0) {
        CHECK_OK(shmsock_connection_close(c));
        CHECK_OK(shmsock_connection_close(c));
    } else {
        shmsock_result rc = shmsock_connection_send(c, data, len);
        CHECK(rc == SHMSOCK_OK || rc == SHMSOCK_PEER_CLOSED || rc == SHMSOCK_PEER_GONE);
    }
    pthread_mutex_lock(&e->mu);
    e->bytes += len;
    pthread_mutex_unlock(&e->mu);
    BUMP(e, datas);
}

static void s_on_error(void *user, shmsock_connection *c, shmsock_result rc, const char *message)
{
    events *e = user;
    CHECK(message != NULL && *message != '\0');
    pthread_mutex_lock(&e->mu);
    e->last_error = rc;
    e->error_had_connection = c != NULL;
    pthread_mutex_unlock(&e->mu);
    BUMP(e, errors);
}

static void s_on_close(void *user, shmsock_connection *c, shmsock_result rc, const char *message)
{
    events *e = user;
    CHECK(c != NULL);
    CHECK((rc == SHMSOCK_OK) == (message == NULL));
    pthread_mutex_lock(&e->mu);
    e->last_close = rc;
    pthread_mutex_unlock(&e->mu);
    BUMP(e, closes);
}

static const shmsock_server_callbacks server_callbacks = {s_on_connect, s_on_data, s_on_error, s_on_close};

typedef struct {
    char name[64];
    shmsock_keypair *kp;
    shmsock_server *server;
    events ev;
} running_server;

static void server_up(running_server *r, shmsock_options *extra)
{
    events_init(&r->ev);
    unique_name(r->name, sizeof r->name, "srv");
    r->kp = new_keypair();
    shmsock_options *o = extra ? extra : server_options(r->kp, 1 << 16);
    if (extra) CHECK_OK(shmsock_options_set_keypair(o, r->kp));
    CHECK_OK(shmsock_server_start(r->name, o, &server_callbacks, &r->ev, &r->server));
    if (!extra) shmsock_options_free(o);
}

static void server_down(running_server *r)
{
    CHECK_OK(shmsock_server_close(r->server));
    shmsock_server_free(r->server);
    shmsock_connection_free(r->ev.kept);
    shmsock_keypair_free(r->kp);
    events_destroy(&r->ev);
}

/* ---------------------------------------------------------------- client side */

static void c_on_data(void *user, const uint8_t *data, size_t len)
{
    events *e = user;
    CHECK(data != NULL);
    pthread_mutex_lock(&e->mu);
    e->bytes += len;
    pthread_mutex_unlock(&e->mu);
    if (e->close_on_data) {
        CHECK_OK(shmsock_client_close(e->self));
        CHECK_RC(shmsock_client_write(e->self, data, len), SHMSOCK_CLOSED);
    }
    BUMP(e, datas);
}

static void c_on_error(void *user, shmsock_result rc, const char *message)
{
    events *e = user;
    CHECK(message != NULL);
    pthread_mutex_lock(&e->mu);
    e->last_error = rc;
    pthread_mutex_unlock(&e->mu);
    BUMP(e, errors);
}

static void c_on_close(void *user, shmsock_result rc, const char *message)
{
    events *e = user;
    pthread_mutex_lock(&e->mu);
    e->last_close = rc;
    e->close_message_null = message == NULL;
    pthread_mutex_unlock(&e->mu);
    BUMP(e, closes);
}

static const shmsock_client_callbacks client_callbacks = {c_on_data, c_on_error, c_on_close};

static shmsock_client *client_up(running_server *r, events *ev)
{
    events_init(ev);
    shmsock_options *o = client_options(r->kp);
    shmsock_client *c = NULL;
    CHECK_OK(shmsock_client_connect(r->name, o, &client_callbacks, ev, &c));
    shmsock_options_free(o);
    ev->self = c;
    return c;
}

/*
 * Starts a server on a name a closed server had. The core releases the endpoint
 * when the last of its threads lets go of the listener: a handshake thread that
 * just finished may still hold it for a moment after shmsock_server_free()
 * returned (a core limitation, reported), so a busy name is retried briefly.
 */
static shmsock_server *start_again(const char *name, const shmsock_keypair *kp, events *ev)
{
    shmsock_options *o = server_options(kp, 0);
    shmsock_server *server = NULL;
    shmsock_result rc;
    uint64_t deadline = now_ms() + 2000;
    while ((rc = shmsock_server_start(name, o, &server_callbacks, ev, &server)) == SHMSOCK_ADDRESS_IN_USE &&
           now_ms() < deadline)
        sleep_ms(5);
    CHECK_OK(rc);
    shmsock_options_free(o);
    return server;
}

/* ----------------------------------------------------------------------- tests */

TEST(server_and_client_echo_through_callbacks)
{
    running_server r;
    server_up(&r, NULL);
    events ev;
    shmsock_client *c = client_up(&r, &ev);
    wait_for(&r.ev, &r.ev.connects, 1);
    size_t total = 0;
    for (int i = 0; i < 100; i++) {
        uint8_t msg[500];
        size_t len = (size_t)(i * 5);
        fill_pattern(msg, len, (uint32_t)i);
        CHECK_OK(shmsock_client_write(c, msg, len));
        total += len;
    }
    CHECK_OK(shmsock_client_write(c, NULL, 0));
    wait_for(&ev, &ev.datas, 101);
    CHECK(ev.bytes == total);
    CHECK(!pthread_equal(ev.callback_thread, pthread_self()));
    CHECK(!pthread_equal(r.ev.callback_thread, pthread_self()));
    shmsock_stats st;
    CHECK_OK(shmsock_client_stats(c, &st));
    CHECK(st.messages_sent == 101 && st.messages_received == 101);
    uint8_t a[SHMSOCK_KEY_LEN], b[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_client_server_public_key(c, a, sizeof a));
    CHECK_OK(shmsock_server_public_key(r.server, b, sizeof b));
    CHECK(memcmp(a, b, sizeof a) == 0);
    size_t count = 0;
    CHECK_OK(shmsock_server_connection_count(r.server, &count));
    CHECK(count == 1);

    CHECK_OK(shmsock_client_close(c));
    /* on_close ran before close returned: no callback after this point. */
    CHECK(ev.closes == 1 && ev.last_close == SHMSOCK_OK && ev.close_message_null);
    CHECK_OK(shmsock_client_close(c));
    CHECK_RC(shmsock_client_write(c, (const uint8_t *)"x", 1), SHMSOCK_CLOSED);
    wait_for(&r.ev, &r.ev.closes, 1);
    CHECK(r.ev.last_close == SHMSOCK_OK);
    CHECK(r.ev.errors == 0);
    shmsock_client_free(c);
    events_destroy(&ev);
    server_down(&r);
}

TEST(reply_from_another_thread_with_a_kept_connection)
{
    running_server r;
    server_up(&r, NULL);
    shmsock_options *o = client_options(r.kp);
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_stream_connect(r.name, o, &s));
    wait_for(&r.ev, &r.ev.connects, 1);
    shmsock_connection *kept = r.ev.kept;
    CHECK(kept != NULL);
    uint64_t id = 0;
    CHECK_OK(shmsock_connection_id(kept, &id));
    CHECK(id > 0);
    shmsock_credentials cred;
    CHECK_OK(shmsock_connection_peer_credentials(kept, &cred));
    CHECK(cred.pid == getpid());
    uint8_t peer[SHMSOCK_KEY_LEN], mine[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_connection_peer_public_key(kept, peer, sizeof peer));
    CHECK_OK(shmsock_stream_local_public_key(s, mine, sizeof mine));
    CHECK(memcmp(peer, mine, sizeof peer) == 0);

    CHECK_OK(shmsock_connection_send(kept, (const uint8_t *)"from main", 9));
    CHECK_OK(shmsock_connection_try_send(kept, (const uint8_t *)"try", 3));
    CHECK_OK(shmsock_connection_send_timeout(kept, (const uint8_t *)"timed", 5, 1000));
    uint8_t buf[16];
    size_t n = 0;
    CHECK_OK(shmsock_stream_recv_into_timeout(s, buf, sizeof buf, &n, 5000));
    CHECK(n == 9 && memcmp(buf, "from main", 9) == 0);
    CHECK_OK(shmsock_stream_recv_into_timeout(s, buf, sizeof buf, &n, 5000));
    CHECK_OK(shmsock_stream_recv_into_timeout(s, buf, sizeof buf, &n, 5000));
    shmsock_stats st;
    CHECK_OK(shmsock_connection_stats(kept, &st));
    CHECK(st.messages_sent == 3);

    CHECK_OK(shmsock_stream_close(s));
    wait_for(&r.ev, &r.ev.closes, 1);
    /* The kept copy outlives the connection: sends now fail cleanly. */
    shmsock_result rc = shmsock_connection_send(kept, (const uint8_t *)"late", 4);
    CHECK(rc == SHMSOCK_CLOSED || rc == SHMSOCK_PEER_CLOSED);
    shmsock_stream_free(s);
    shmsock_options_free(o);
    server_down(&r);
}

/* The cipher and local key a connection reports, read in on_connect, match the
 * client's stream; `chacha` makes the server require ChaCha20-Poly1305. */
static void connection_cipher_matches_the_client(bool chacha)
{
    running_server r;
    shmsock_options *so = NULL;
    if (chacha) {
        CHECK_OK(shmsock_options_new(&so));
        CHECK_OK(shmsock_options_set_require_chacha(so, true));
    }
    server_up(&r, so);
    shmsock_options *o = client_options(r.kp);
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_stream_connect(r.name, o, &s));
    wait_for(&r.ev, &r.ev.connects, 1);
    shmsock_cipher client_cipher = 0;
    CHECK_OK(shmsock_stream_cipher(s, &client_cipher));
    if (chacha) CHECK(client_cipher == SHMSOCK_CIPHER_CHACHA20_POLY1305);

    pthread_mutex_lock(&r.ev.mu);
    shmsock_result rc = r.ev.cipher_rc, null_rc = r.ev.cipher_null_out_rc;
    shmsock_cipher seen = r.ev.cipher;
    shmsock_result key_rc = r.ev.local_key_rc, small_rc = r.ev.local_key_small_rc;
    uint8_t local[SHMSOCK_KEY_LEN];
    memcpy(local, r.ev.local_key, sizeof local);
    pthread_mutex_unlock(&r.ev.mu);
    /* From the callback, on the borrowed connection. */
    CHECK(rc == SHMSOCK_OK);
    CHECK(seen == client_cipher);
    CHECK(null_rc == SHMSOCK_NULL_ARGUMENT);
    CHECK(key_rc == SHMSOCK_OK);
    CHECK(small_rc == SHMSOCK_BUFFER_TOO_SMALL);
    uint8_t server_key[SHMSOCK_KEY_LEN], peer_of_client[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_server_public_key(r.server, server_key, sizeof server_key));
    CHECK_OK(shmsock_stream_peer_public_key(s, peer_of_client, sizeof peer_of_client));
    CHECK(memcmp(local, server_key, sizeof local) == 0);
    CHECK(memcmp(local, peer_of_client, sizeof local) == 0);

    /* From this thread, on the kept copy; a NULL out is refused with a message. */
    shmsock_cipher kept_cipher = 0;
    CHECK_OK(shmsock_connection_cipher(r.ev.kept, &kept_cipher));
    CHECK(kept_cipher == client_cipher);
    CHECK_RC(shmsock_connection_cipher(r.ev.kept, NULL), SHMSOCK_NULL_ARGUMENT);
    CHECK_LAST_ERROR_HAS("'out'");

    /* Still answered after the connection ended. */
    CHECK_OK(shmsock_stream_close(s));
    wait_for(&r.ev, &r.ev.closes, 1);
    kept_cipher = 0;
    CHECK_OK(shmsock_connection_cipher(r.ev.kept, &kept_cipher));
    CHECK(kept_cipher == client_cipher);

    shmsock_stream_free(s);
    shmsock_options_free(o);
    shmsock_options_free(so);
    server_down(&r);
}

TEST(connection_reports_the_cipher_of_the_client_stream)
{
    connection_cipher_matches_the_client(false);
}

TEST(connection_reports_chacha_when_the_server_requires_it)
{
    connection_cipher_matches_the_client(true);
}

TEST(server_reports_a_rejected_client_without_a_connection)
{
    shmsock_options *o = NULL;
    CHECK_OK(shmsock_options_new(&o));
    shmsock_keypair *other = new_keypair();
    uint8_t other_key[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_keypair_public_key(other, other_key, sizeof other_key));
    CHECK_OK(shmsock_options_allow_client(o, other_key, sizeof other_key));
    running_server r;
    server_up(&r, o);
    shmsock_options *co = client_options(r.kp);
    shmsock_stream *s = NULL;
    CHECK_RC(shmsock_stream_connect(r.name, co, &s), SHMSOCK_HANDSHAKE_REJECTED);
    wait_for(&r.ev, &r.ev.errors, 1);
    CHECK(r.ev.last_error == SHMSOCK_HANDSHAKE_REJECTED);
    CHECK(!r.ev.error_had_connection);
    CHECK(r.ev.connects == 0);
    shmsock_options_free(co);
    shmsock_options_free(o);
    shmsock_keypair_free(other);
    server_down(&r);
}

TEST(server_reports_a_uid_not_allowed)
{
    shmsock_options *o = NULL;
    CHECK_OK(shmsock_options_new(&o));
    CHECK_OK(shmsock_options_allow_uid(o, (uint32_t)getuid() + 1));
    running_server r;
    server_up(&r, o);
    shmsock_options *co = client_options(r.kp);
    shmsock_stream *s = NULL;
    CHECK_RC(shmsock_stream_connect(r.name, co, &s), SHMSOCK_HANDSHAKE_REJECTED);
    CHECK_LAST_ERROR_HAS("user id");
    wait_for(&r.ev, &r.ev.errors, 1);
    CHECK(r.ev.last_error == SHMSOCK_PERMISSION_DENIED);
    /* Allowing our uid lets us in (on a new name: see start_again). */
    CHECK_OK(shmsock_server_close(r.server));
    shmsock_server_free(r.server);
    CHECK_OK(shmsock_options_allow_uid(o, (uint32_t)getuid()));
    unique_name(r.name, sizeof r.name, "srv-uid");
    CHECK_OK(shmsock_server_start(r.name, o, &server_callbacks, &r.ev, &r.server));
    CHECK_OK(shmsock_stream_connect(r.name, co, &s));
    shmsock_stream_free(s);
    shmsock_options_free(co);
    shmsock_options_free(o);
    server_down(&r);
}

TEST(server_close_ends_clients_cleanly)
{
    running_server r;
    server_up(&r, NULL);
    events ev[3];
    shmsock_client *c[3];
    for (int i = 0; i < 3; i++) c[i] = client_up(&r, &ev[i]);
    wait_for(&r.ev, &r.ev.connects, 3);
    CHECK_OK(shmsock_server_close(r.server));
    /* Every connection got on_close before shmsock_server_close returned. */
    CHECK(r.ev.closes == 3);
    CHECK_OK(shmsock_server_close(r.server));
    size_t count;
    CHECK_RC(shmsock_server_connection_count(r.server, &count), SHMSOCK_CLOSED);
    uint8_t key[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_server_public_key(r.server, key, sizeof key));
    for (int i = 0; i < 3; i++) {
        wait_for(&ev[i], &ev[i].closes, 1);
        CHECK(ev[i].last_close == SHMSOCK_OK);
        shmsock_client_free(c[i]);
        events_destroy(&ev[i]);
    }
    /* The name is free again once the server is freed. */
    shmsock_server_free(r.server);
    r.server = start_again(r.name, r.kp, &r.ev);
    shmsock_server *again = NULL;
    shmsock_options *o = server_options(r.kp, 0);
    CHECK_RC(shmsock_server_start(r.name, o, &server_callbacks, &r.ev, &again), SHMSOCK_ADDRESS_IN_USE);
    shmsock_server_free(again);
    shmsock_options_free(o);
    server_down(&r);
}

TEST(closing_from_inside_callbacks)
{
    running_server r;
    server_up(&r, NULL);
    /* The server closes a connection from on_data ("bye"). */
    events ev;
    shmsock_client *c = client_up(&r, &ev);
    CHECK_OK(shmsock_client_write(c, (const uint8_t *)"bye", 3));
    wait_for(&r.ev, &r.ev.closes, 1);
    wait_for(&ev, &ev.closes, 1);
    CHECK(ev.last_close == SHMSOCK_OK);
    shmsock_client_free(c);
    events_destroy(&ev);

    /* A client closes itself from on_data. */
    c = client_up(&r, &ev);
    ev.close_on_data = true;
    CHECK_OK(shmsock_client_write(c, (const uint8_t *)"echo me", 7));
    wait_for(&ev, &ev.closes, 1);
    CHECK(ev.datas == 1);
    CHECK_OK(shmsock_client_close(c));
    shmsock_client_free(c);
    events_destroy(&ev);
    server_down(&r);
}

static void *stop_server_soon(void *arg)
{
    sleep_ms(50);
    CHECK_OK(shmsock_server_close(arg));
    return NULL;
}

TEST(server_close_from_another_thread_while_serving)
{
    running_server r;
    server_up(&r, NULL);
    events ev;
    shmsock_client *c = client_up(&r, &ev);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, stop_server_soon, r.server) == 0);
    uint8_t msg[100] = {0};
    for (int i = 0; i < 1000; i++) {
        shmsock_result rc = shmsock_client_write(c, msg, sizeof msg);
        if (rc != SHMSOCK_OK) {
            CHECK(rc == SHMSOCK_PEER_CLOSED || rc == SHMSOCK_PEER_GONE || rc == SHMSOCK_CLOSED);
            break;
        }
        sleep_ms(1);
    }
    CHECK(pthread_join(t, NULL) == 0);
    wait_for(&ev, &ev.closes, 1);
    shmsock_client_free(c);
    events_destroy(&ev);
    server_down(&r);
}

TEST(client_sees_the_server_process_die)
{
    char name[64];
    unique_name(name, sizeof name, "dies");
    shmsock_keypair *kp = new_keypair();
    int ready[2];
    CHECK(pipe(ready) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        shmsock_options *o = server_options(kp, 0);
        shmsock_listener *l = NULL;
        if (shmsock_listener_bind(name, o, &l) != SHMSOCK_OK) _exit(2);
        if (write(ready[1], "x", 1) != 1) _exit(3);
        shmsock_stream *s = NULL;
        if (shmsock_listener_accept(l, 10000, &s) != SHMSOCK_OK) _exit(4);
        pause();
        _exit(0);
    }
    char x;
    CHECK(read(ready[0], &x, 1) == 1);
    running_server r = {.kp = kp};
    strcpy(r.name, name);
    events ev;
    shmsock_client *c = client_up(&r, &ev);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    wait_for(&ev, &ev.closes, 1);
    CHECK(ev.errors == 1 && ev.last_error == SHMSOCK_PEER_GONE);
    CHECK(ev.last_close == SHMSOCK_PEER_GONE && !ev.close_message_null);
    shmsock_client_free(c);
    events_destroy(&ev);
    shmsock_keypair_free(kp);
    close(ready[0]);
    close(ready[1]);
}

TEST(client_connect_errors)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = client_options(kp);
    events ev;
    events_init(&ev);
    shmsock_client *c = NULL;
    CHECK_RC(shmsock_client_connect("nobody-here", o, &client_callbacks, &ev, &c), SHMSOCK_NOT_FOUND);
    CHECK(c == NULL && ev.closes == 0);
    events_destroy(&ev);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
}

TEST(free_without_close_waits_for_callbacks)
{
    running_server r;
    server_up(&r, NULL);
    events ev;
    shmsock_client *c = client_up(&r, &ev);
    CHECK_OK(shmsock_client_write(c, (const uint8_t *)"hi", 2));
    wait_for(&ev, &ev.datas, 1);
    shmsock_client_free(c);
    CHECK(ev.closes == 1);
    events_destroy(&ev);
    /* Freeing a server with live connections closes them. */
    server_down(&r);
}
