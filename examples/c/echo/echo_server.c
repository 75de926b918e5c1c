/*
 * Echo server: `echo_server NAME KEYFILE` serves endpoint NAME with the keypair
 * in KEYFILE (created, mode 0600, if missing) and sends every message back,
 * from the event-driven server's dispatch thread. Stops on SIGINT or SIGTERM.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>

#include <shmsock.h>

#include "../common/example_keys.h"

static void on_connect(void *user_data, shmsock_connection *c)
{
    (void)user_data;
    uint64_t id = 0;
    uint8_t key[SHMSOCK_KEY_LEN];
    char fingerprint[SHMSOCK_FINGERPRINT_SIZE] = "?";
    shmsock_connection_id(c, &id);
    if (shmsock_connection_peer_public_key(c, key, sizeof key) == SHMSOCK_OK)
        shmsock_public_key_fingerprint(key, sizeof key, fingerprint, sizeof fingerprint, NULL);
    printf("client %llu connected (%s)\n", (unsigned long long)id, fingerprint);
    fflush(stdout);
}

static void on_data(void *user_data, shmsock_connection *c, const uint8_t *data, size_t len)
{
    (void)user_data;
    /* Never blocks: the ring, or the connection's bounded queue. A client that
     * does not read its replies fills its queue (SHMSOCK_WOULD_BLOCK): that
     * reply is dropped, the server stops reading the client until it reads
     * (its own sends wait), and every other client is served as before. */
    if (shmsock_connection_send(c, data, len) != SHMSOCK_OK) {
        uint64_t id = 0;
        shmsock_connection_id(c, &id);
        fprintf(stderr, "echo to client %llu dropped: %s\n", (unsigned long long)id, shmsock_last_error());
    }
}

static void on_error(void *user_data, shmsock_connection *c, shmsock_result result, const char *message)
{
    (void)user_data;
    (void)result;
    uint64_t id = 0;
    if (c) shmsock_connection_id(c, &id);
    if (c)
        fprintf(stderr, "error (client %llu): %s\n", (unsigned long long)id, message);
    else
        fprintf(stderr, "error (handshake): %s\n", message);
}

static void on_close(void *user_data, shmsock_connection *c, shmsock_result result, const char *message)
{
    (void)user_data;
    uint64_t id = 0;
    shmsock_connection_id(c, &id);
    if (result == SHMSOCK_OK)
        printf("client %llu left\n", (unsigned long long)id);
    else
        printf("client %llu left: %s\n", (unsigned long long)id, message);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "error: usage: echo_server NAME KEYFILE\n");
        return 1;
    }
    /* Block the stop signals in every thread (the library's threads inherit
     * this mask), then wait for one here. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    shmsock_keypair *kp = load_or_create(argv[2]);
    printf("serving '%s' as %s\n", argv[1], public_key_text(kp));
    fflush(stdout);
    shmsock_options *options = NULL;
    shmsock_result rc = shmsock_options_new(&options);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_keypair(options, kp);
    if (rc != SHMSOCK_OK) die("options", rc);
    const shmsock_server_callbacks callbacks = {on_connect, on_data, on_error, on_close};
    shmsock_server *server = NULL;
    if ((rc = shmsock_server_start(argv[1], options, &callbacks, NULL, &server)) != SHMSOCK_OK) die("bind", rc);

    int sig = 0;
    sigwait(&stop, &sig);
    shmsock_server_free(server); /* closes every connection, then the endpoint */
    shmsock_options_free(options);
    shmsock_keypair_free(kp);
    printf("stopped\n");
    return 0;
}
