/* A tiny program built against an installed libshmsock (see install_test.sh):
 * starts an echo server, connects, sends "ping", expects it back. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <shmsock.h>

static void echo(void *user_data, shmsock_connection *c, const uint8_t *data, size_t len)
{
    (void)user_data;
    shmsock_connection_send(c, data, len);
}

static int fail(const char *what, shmsock_result rc)
{
    fprintf(stderr, "%s: %s: %s\n", what, shmsock_result_name(rc), shmsock_last_error());
    return 1;
}

int main(void)
{
    if (strcmp(shmsock_version(), SHMSOCK_VERSION) != 0) {
        fprintf(stderr, "header %s, library %s\n", SHMSOCK_VERSION, shmsock_version());
        return 1;
    }
    char name[64];
    snprintf(name, sizeof name, "consumer-%d", (int)getpid());
    shmsock_keypair *kp = NULL;
    shmsock_options *so = NULL, *co = NULL;
    shmsock_server *server = NULL;
    shmsock_stream *stream = NULL;
    uint8_t key[SHMSOCK_KEY_LEN], buf[16];
    size_t n = 0;
    shmsock_server_callbacks cb = {NULL, echo, NULL, NULL};
    shmsock_result rc;
    if ((rc = shmsock_keypair_generate(&kp)) != SHMSOCK_OK) return fail("keypair", rc);
    shmsock_options_new(&so);
    shmsock_options_set_keypair(so, kp);
    if ((rc = shmsock_server_start(name, so, &cb, NULL, &server)) != SHMSOCK_OK) return fail("server", rc);
    shmsock_keypair_public_key(kp, key, sizeof key);
    shmsock_options_new(&co);
    shmsock_options_set_server_key(co, key, sizeof key);
    if ((rc = shmsock_stream_connect(name, co, &stream)) != SHMSOCK_OK) return fail("connect", rc);
    if ((rc = shmsock_stream_send(stream, (const uint8_t *)"ping", 4)) != SHMSOCK_OK) return fail("send", rc);
    if ((rc = shmsock_stream_recv_into_timeout(stream, buf, sizeof buf, &n, 5000)) != SHMSOCK_OK)
        return fail("recv", rc);
    if (n != 4 || memcmp(buf, "ping", 4) != 0) return fail("echo", SHMSOCK_OK);
    shmsock_stream_free(stream);
    shmsock_server_free(server);
    shmsock_options_free(so);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
    printf("consumer: libshmsock %s echoed ping\n", shmsock_version());
    return 0;
}
