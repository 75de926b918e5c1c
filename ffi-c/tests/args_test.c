/* Bad arguments: NULL handles and out-pointers, NULL buffers with a nonzero
 * length, invalid names, buffers too small, double close, use after close,
 * freeing NULL. Each gives a clear result code and message, never a crash. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"

#define NUL SHMSOCK_NULL_ARGUMENT

TEST(free_functions_accept_null)
{
    shmsock_keypair_free(NULL);
    shmsock_options_free(NULL);
    shmsock_listener_free(NULL);
    shmsock_stream_free(NULL);
    shmsock_server_free(NULL);
    shmsock_client_free(NULL);
    shmsock_connection_free(NULL);
    shmsock_endpoint_list_free(NULL);
    shmsock_buffer_free(NULL);
}

TEST(null_handles_are_refused)
{
    uint8_t key[SHMSOCK_KEY_LEN] = {0};
    char text[128];
    size_t n;
    uint8_t *buf;
    int fd;
    uint64_t u64;
    uint32_t u32;
    size_t sz;
    bool b;
    shmsock_stats st;
    shmsock_credentials cr;
    shmsock_cipher ci;
    shmsock_backend be;
    shmsock_role ro;
    shmsock_stream *stream;

    CHECK_RC(shmsock_keypair_save(NULL, "/tmp/x"), NUL);
    CHECK_LAST_ERROR_HAS("'keypair'");
    CHECK_RC(shmsock_keypair_public_key(NULL, key, sizeof key), NUL);
    CHECK_RC(shmsock_keypair_public_key_text(NULL, text, sizeof text, &n), NUL);
    CHECK_RC(shmsock_keypair_fingerprint(NULL, text, sizeof text, &n), NUL);

    CHECK_RC(shmsock_options_set_keypair(NULL, NULL), NUL);
    CHECK_RC(shmsock_options_set_server_key(NULL, key, sizeof key), NUL);
    CHECK_RC(shmsock_options_allow_client(NULL, key, sizeof key), NUL);
    CHECK_RC(shmsock_options_allow_any_client(NULL), NUL);
    CHECK_RC(shmsock_options_allow_uid(NULL, 0), NUL);
    CHECK_RC(shmsock_options_allow_any_uid(NULL), NUL);
    CHECK_RC(shmsock_options_set_ring_size(NULL, 0), NUL);
    CHECK_RC(shmsock_options_set_max_message_size(NULL, 0), NUL);
    CHECK_RC(shmsock_options_set_send_timeout(NULL, 0), NUL);
    CHECK_RC(shmsock_options_set_recv_timeout(NULL, 0), NUL);
    CHECK_RC(shmsock_options_set_handshake_timeout(NULL, 1), NUL);
    CHECK_RC(shmsock_options_set_spin(NULL, 0), NUL);
    CHECK_RC(shmsock_options_set_backend(NULL, 1), NUL);
    CHECK_RC(shmsock_options_set_require_chacha(NULL, true), NUL);
    CHECK_RC(shmsock_options_set_max_reassembly_bytes(NULL, 1 << 20), NUL);

    CHECK_RC(shmsock_listener_accept(NULL, 0, &stream), NUL);
    CHECK_RC(shmsock_listener_public_key(NULL, key, sizeof key), NUL);
    CHECK_RC(shmsock_listener_fd(NULL, &fd), NUL);
    CHECK_RC(shmsock_listener_name(NULL, text, sizeof text, &n), NUL);
    CHECK_RC(shmsock_listener_rejected_count(NULL, &u64), NUL);
    CHECK_RC(shmsock_listener_last_rejection(NULL, &u32), NUL);
    CHECK_RC(shmsock_listener_close(NULL), NUL);

    CHECK_RC(shmsock_stream_send(NULL, key, 1), NUL);
    CHECK_RC(shmsock_stream_send_timeout(NULL, key, 1, 0), NUL);
    CHECK_RC(shmsock_stream_try_send(NULL, key, 1), NUL);
    CHECK_RC(shmsock_stream_recv_into(NULL, key, sizeof key, &n), NUL);
    CHECK_RC(shmsock_stream_recv_into_timeout(NULL, key, sizeof key, &n, 0), NUL);
    CHECK_RC(shmsock_stream_try_recv_into(NULL, key, sizeof key, &n), NUL);
    CHECK_RC(shmsock_stream_recv(NULL, &buf, &n), NUL);
    CHECK_RC(shmsock_stream_recv_timeout(NULL, 0, &buf, &n), NUL);
    CHECK_RC(shmsock_stream_try_recv(NULL, &buf, &n), NUL);
    CHECK_RC(shmsock_stream_close(NULL), NUL);
    CHECK_RC(shmsock_stream_is_closed(NULL, &b), NUL);
    CHECK_RC(shmsock_stream_peer_public_key(NULL, key, sizeof key), NUL);
    CHECK_RC(shmsock_stream_local_public_key(NULL, key, sizeof key), NUL);
    CHECK_RC(shmsock_stream_peer_credentials(NULL, &cr), NUL);
    CHECK_RC(shmsock_stream_stats(NULL, &st), NUL);
    CHECK_RC(shmsock_stream_pollable_fd(NULL, &fd), NUL);
    CHECK_RC(shmsock_stream_cipher(NULL, &ci), NUL);
    CHECK_RC(shmsock_stream_backend(NULL, &be), NUL);
    CHECK_RC(shmsock_stream_role(NULL, &ro), NUL);
    CHECK_RC(shmsock_stream_ring_size(NULL, &u32), NUL);
    CHECK_RC(shmsock_stream_peer_max_message_size(NULL, &u32), NUL);
    CHECK_RC(shmsock_stream_endpoint(NULL, text, sizeof text, &n), NUL);

    CHECK_RC(shmsock_server_close(NULL), NUL);
    CHECK_RC(shmsock_server_public_key(NULL, key, sizeof key), NUL);
    CHECK_RC(shmsock_server_connection_count(NULL, &sz), NUL);
    CHECK_RC(shmsock_connection_clone(NULL, (shmsock_connection **)&buf), NUL);
    CHECK_RC(shmsock_connection_id(NULL, &u64), NUL);
    CHECK_RC(shmsock_connection_send(NULL, key, 1), NUL);
    CHECK_RC(shmsock_connection_send_timeout(NULL, key, 1, 0), NUL);
    CHECK_RC(shmsock_connection_try_send(NULL, key, 1), NUL);
    CHECK_RC(shmsock_connection_close(NULL), NUL);
    CHECK_RC(shmsock_connection_peer_public_key(NULL, key, sizeof key), NUL);
    CHECK_RC(shmsock_connection_local_public_key(NULL, key, sizeof key), NUL);
    CHECK_RC(shmsock_connection_peer_credentials(NULL, &cr), NUL);
    CHECK_RC(shmsock_connection_stats(NULL, &st), NUL);
    CHECK_RC(shmsock_connection_cipher(NULL, &ci), NUL);
    CHECK_LAST_ERROR_HAS("'connection'");

    CHECK_RC(shmsock_client_write(NULL, key, 1), NUL);
    CHECK_RC(shmsock_client_write_timeout(NULL, key, 1, 0), NUL);
    CHECK_RC(shmsock_client_try_write(NULL, key, 1), NUL);
    CHECK_RC(shmsock_client_close(NULL), NUL);
    CHECK_RC(shmsock_client_server_public_key(NULL, key, sizeof key), NUL);
    CHECK_RC(shmsock_client_stats(NULL, &st), NUL);

    CHECK_RC(shmsock_endpoint_list_len(NULL, &sz), NUL);
    CHECK_RC(shmsock_endpoint_list_get(NULL, 0, (shmsock_endpoint_info *)&st), NUL);
}

TEST(null_out_pointers_are_refused_before_any_work)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = server_options(kp, 0);
    char name[64];
    unique_name(name, sizeof name, "nullout");
    CHECK_RC(shmsock_keypair_generate(NULL), NUL);
    CHECK_RC(shmsock_keypair_load("/x", NULL), NUL);
    CHECK_RC(shmsock_keypair_from_secret((uint8_t[32]){0}, 32, NULL), NUL);
    CHECK_RC(shmsock_options_new(NULL), NUL);
    CHECK_RC(shmsock_endpoint_list_new(NULL), NUL);
    /* A bind with a NULL out binds nothing: the name stays free. */
    CHECK_RC(shmsock_listener_bind(name, o, NULL), NUL);
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, o, &l));
    /* An accept with a NULL out takes no client. */
    CHECK_RC(shmsock_listener_accept(l, 0, NULL), NUL);
    shmsock_options *co = client_options(kp);
    CHECK_RC(shmsock_stream_connect(name, co, NULL), NUL);
    shmsock_server_callbacks cb = {0};
    CHECK_RC(shmsock_server_start(name, o, &cb, NULL, NULL), NUL);
    shmsock_client_callbacks ccb = {0};
    CHECK_RC(shmsock_client_connect(name, co, &ccb, NULL, NULL), NUL);
    uint64_t rejected = 1;
    CHECK_OK(shmsock_listener_rejected_count(l, &rejected));
    CHECK(rejected == 0);
    shmsock_listener_free(l);
    shmsock_options_free(o);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
}

TEST(null_strings_and_options_are_refused)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = server_options(kp, 0);
    shmsock_listener *l = NULL;
    shmsock_stream *s = NULL;
    shmsock_server *srv = NULL;
    shmsock_client *cl = NULL;
    shmsock_server_callbacks cb = {0};
    shmsock_client_callbacks ccb = {0};
    CHECK_RC(shmsock_listener_bind(NULL, o, &l), NUL);
    CHECK_LAST_ERROR_HAS("'name'");
    CHECK_RC(shmsock_listener_bind("x", NULL, &l), NUL);
    CHECK_RC(shmsock_stream_connect(NULL, o, &s), NUL);
    CHECK_RC(shmsock_stream_connect("x", NULL, &s), NUL);
    CHECK_RC(shmsock_server_start(NULL, o, &cb, NULL, &srv), NUL);
    CHECK_RC(shmsock_server_start("x", o, NULL, NULL, &srv), NUL);
    CHECK_RC(shmsock_client_connect("x", o, NULL, NULL, &cl), NUL);
    CHECK_RC(shmsock_client_connect(NULL, o, &ccb, NULL, &cl), NUL);
    CHECK_RC(shmsock_keypair_load(NULL, &kp), NUL);
    CHECK_RC(shmsock_keypair_save(kp, NULL), NUL);
    CHECK_RC(shmsock_keypair_save(kp, ""), SHMSOCK_INVALID_ARGUMENT);
    CHECK_RC(shmsock_public_key_from_text(NULL, (uint8_t[32]){0}, 32), NUL);
    CHECK_RC(shmsock_options_set_keypair(o, NULL), NUL);
    CHECK(l == NULL && s == NULL && srv == NULL && cl == NULL);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
}

TEST(null_buffers_with_nonzero_length_are_refused)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = NULL;
    CHECK_OK(shmsock_options_new(&o));
    size_t n;
    CHECK_RC(shmsock_options_set_server_key(o, NULL, 32), NUL);
    CHECK_RC(shmsock_options_allow_client(o, NULL, 32), NUL);
    CHECK_RC(shmsock_keypair_public_key(kp, NULL, 32), NUL);
    CHECK_RC(shmsock_keypair_public_key_text(kp, NULL, 64, &n), NUL);
    CHECK_RC(shmsock_keypair_from_secret(NULL, 32, &kp), NUL);
    CHECK_RC(shmsock_public_key_to_text(NULL, 32, (char[64]){0}, 64, NULL), NUL);
    CHECK_RC(shmsock_public_key_from_text("shmsock-pk:x", NULL, 32), NUL);
    CHECK_RC(shmsock_last_error_message(NULL, 10, &n), NUL);
    /* Lengths larger than any buffer. */
    CHECK_RC(shmsock_options_set_server_key(o, (uint8_t[32]){0}, SIZE_MAX), SHMSOCK_INVALID_ARGUMENT);

    echo_server server;
    echo_server_start(&server, "nullbuf", 1 << 16, 1);
    shmsock_options *co = client_options(server.keypair);
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_stream_connect(server.name, co, &s));
    CHECK_RC(shmsock_stream_send(s, NULL, 5), NUL);
    CHECK_LAST_ERROR_HAS("'data'");
    CHECK_RC(shmsock_stream_try_send(s, NULL, 5), NUL);
    CHECK_RC(shmsock_stream_send_timeout(s, NULL, 5, 10), NUL);
    CHECK_RC(shmsock_stream_recv_into(s, NULL, 5, &n), NUL);
    CHECK_RC(shmsock_stream_try_recv_into(s, NULL, 5, &n), NUL);
    CHECK_RC(shmsock_stream_recv_into_timeout(s, (uint8_t[4]){0}, 4, NULL, 10), NUL);
    uint8_t *buf = NULL;
    CHECK_RC(shmsock_stream_recv(s, NULL, &n), NUL);
    CHECK_RC(shmsock_stream_recv(s, &buf, NULL), NUL);
    /* NULL with length 0 is an empty message. */
    CHECK_OK(shmsock_stream_send(s, NULL, 0));
    CHECK_OK(shmsock_stream_recv_timeout(s, 10000, &buf, &n));
    CHECK(buf != NULL && n == 0);
    shmsock_buffer_free(buf);
    shmsock_stream_free(s);
    shmsock_options_free(co);
    echo_server_join(&server);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
}

TEST(invalid_names_are_refused)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = server_options(kp, 0);
    char long_name[200];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    static const char *bad[] = {"", ".", "..", "a/b", "a b", "tab\there", "semi;colon", "\xc3\xa9t\xc3\xa9"};
    shmsock_listener *l = NULL;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_RC(shmsock_listener_bind(bad[i], o, &l), SHMSOCK_INVALID_NAME);
        CHECK(l == NULL);
    }
    CHECK_RC(shmsock_listener_bind(long_name, o, &l), SHMSOCK_INVALID_NAME);
    CHECK_RC(shmsock_listener_bind("bad\xff", o, &l), SHMSOCK_INVALID_UTF8);
    shmsock_options *co = client_options(kp);
    shmsock_stream *s = NULL;
    CHECK_RC(shmsock_stream_connect("a/../b", co, &s), SHMSOCK_INVALID_NAME);
    CHECK_RC(shmsock_stream_connect(long_name, co, &s), SHMSOCK_INVALID_NAME);
    shmsock_server *srv = NULL;
    shmsock_server_callbacks cb = {0};
    CHECK_RC(shmsock_server_start("x y", o, &cb, NULL, &srv), SHMSOCK_INVALID_NAME);
    shmsock_options_free(o);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
}

TEST(small_buffers_report_their_need)
{
    echo_server server;
    echo_server_start(&server, "needs", 1 << 16, 1);
    char name[4];
    size_t n = 0;
    CHECK_RC(shmsock_listener_name(server.listener, name, sizeof name, &n), SHMSOCK_BUFFER_TOO_SMALL);
    CHECK(n == strlen(server.name));
    uint8_t key[16];
    CHECK_RC(shmsock_listener_public_key(server.listener, key, sizeof key), SHMSOCK_BUFFER_TOO_SMALL);
    shmsock_options *co = client_options(server.keypair);
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_stream_connect(server.name, co, &s));
    CHECK_RC(shmsock_stream_endpoint(s, name, sizeof name, &n), SHMSOCK_BUFFER_TOO_SMALL);
    CHECK_RC(shmsock_stream_peer_public_key(s, key, sizeof key), SHMSOCK_BUFFER_TOO_SMALL);
    shmsock_stream_free(s);
    shmsock_options_free(co);
    echo_server_join(&server);
}

TEST(double_close_and_use_after_close)
{
    echo_server server;
    echo_server_start(&server, "twice", 1 << 16, 1);
    shmsock_options *co = client_options(server.keypair);
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_stream_connect(server.name, co, &s));
    for (int i = 0; i < 3; i++) CHECK_OK(shmsock_stream_close(s));
    CHECK_RC(shmsock_stream_send(s, (const uint8_t *)"x", 1), SHMSOCK_CLOSED);
    CHECK_LAST_ERROR_HAS("closed");
    shmsock_stream_free(s);
    shmsock_options_free(co);
    echo_server_join(&server);
}

/* Several threads close, send and receive on one stream at once. A call
 * already under way when another thread closes may see the echo server hang
 * up in answer to the close (SHMSOCK_PEER_GONE); later calls see CLOSED. */
static void *hammer(void *arg)
{
    shmsock_stream *s = arg;
    uint8_t buf[64];
    size_t n;
    for (int i = 0; i < 200; i++) {
        shmsock_result rc = shmsock_stream_try_send(s, buf, sizeof buf);
        CHECK(rc == SHMSOCK_OK || rc == SHMSOCK_WOULD_BLOCK || rc == SHMSOCK_CLOSED || rc == SHMSOCK_PEER_GONE);
        rc = shmsock_stream_try_recv_into(s, buf, sizeof buf, &n);
        CHECK(rc == SHMSOCK_OK || rc == SHMSOCK_WOULD_BLOCK || rc == SHMSOCK_CLOSED ||
              rc == SHMSOCK_PEER_CLOSED || rc == SHMSOCK_PEER_GONE);
        if (i == 100) CHECK_OK(shmsock_stream_close(s));
    }
    return NULL;
}

TEST(calls_from_several_threads_at_once)
{
    echo_server server;
    echo_server_start(&server, "hammer", 1 << 16, 1);
    shmsock_options *co = client_options(server.keypair);
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_stream_connect(server.name, co, &s));
    pthread_t t[4];
    for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, hammer, s) == 0);
    for (int i = 0; i < 4; i++) CHECK(pthread_join(t[i], NULL) == 0);
    shmsock_stream_free(s);
    shmsock_options_free(co);
    echo_server_join(&server);
}
