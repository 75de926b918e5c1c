/*
 * shmsock_options_set_connect_wait: the option is checked, a connect under it
 * waits for a server that a thread binds later, and a wait that ends gives
 * SHMSOCK_NOT_FOUND.
 */
#include <pthread.h>

#include "test_common.h"

typedef struct {
    const char *name;
    shmsock_options *options;
    shmsock_result rc;
    shmsock_stream *stream;
} waiting_connect;

static void *connect_in_thread(void *arg)
{
    waiting_connect *c = arg;
    c->rc = shmsock_stream_connect(c->name, c->options, &c->stream);
    return NULL;
}

TEST(the_option_is_checked)
{
    shmsock_options *o = NULL;
    CHECK_OK(shmsock_options_new(&o));
    CHECK_OK(shmsock_options_set_connect_wait(o, 0));
    CHECK_OK(shmsock_options_set_connect_wait(o, 86400000));
    CHECK_OK(shmsock_options_set_connect_wait(o, SHMSOCK_FOREVER));
    CHECK_RC(shmsock_options_set_connect_wait(o, 86400001), SHMSOCK_INVALID_ARGUMENT);
    CHECK_LAST_ERROR_HAS("connect wait");
    CHECK_RC(shmsock_options_set_connect_wait(NULL, 10), SHMSOCK_NULL_ARGUMENT);
    shmsock_options_free(o);
}

TEST(a_connect_waits_for_a_server_bound_later)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *co = client_options(kp);
    CHECK_OK(shmsock_options_set_connect_wait(co, 60000));
    char name[64];
    unique_name(name, sizeof name, "cwait");

    waiting_connect c = {.name = name, .options = co, .rc = SHMSOCK_OK, .stream = NULL};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, connect_in_thread, &c) == 0);
    sleep_ms(200); /* let the connect find no server (no assertion depends on it) */
    shmsock_options *so = server_options(kp, 0);
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, so, &l));
    shmsock_stream *accepted = NULL;
    CHECK_OK(shmsock_listener_accept(l, 60000, &accepted));
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(c.rc == SHMSOCK_OK && c.stream != NULL);

    CHECK_OK(shmsock_stream_send(c.stream, (const uint8_t *)"hi", 2));
    uint8_t buf[8];
    size_t n = 0;
    CHECK_OK(shmsock_stream_recv_into_timeout(accepted, buf, sizeof buf, &n, 60000));
    CHECK(n == 2 && memcmp(buf, "hi", 2) == 0);

    shmsock_stream_free(c.stream);
    shmsock_stream_free(accepted);
    shmsock_listener_free(l);
    shmsock_options_free(so);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
}

TEST(a_wait_that_ends_gives_not_found)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *co = client_options(kp);
    CHECK_OK(shmsock_options_set_connect_wait(co, 200));
    char name[64];
    unique_name(name, sizeof name, "cwait-none");
    shmsock_stream *s = NULL;
    uint64_t t0 = now_ms();
    CHECK_RC(shmsock_stream_connect(name, co, &s), SHMSOCK_NOT_FOUND);
    CHECK(now_ms() - t0 >= 200);
    CHECK(s == NULL);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
}
