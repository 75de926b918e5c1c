/*
 * `agent serve`: an echo server on a shmsock_listener, one thread per client.
 *
 * It runs a shmsock_listener rather than a shmsock_server: a
 * shmsock_connection does not tell its cipher, which the `connect` line
 * prints, while a shmsock_stream does. The main thread polls stdin (end of
 * file: stop), a signalfd (SIGTERM, SIGINT: stop) and the listener's fd (a
 * client is waiting: accept it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <shmsock.h>

#include "agent.h"

/* A connected client, served by its own (detached) thread. The list holds the
 * live ones, so that stopping can close them; a thread unlinks and frees its
 * client under the lock, so nobody touches a freed stream. */
struct client {
    shmsock_stream *stream;
    struct client *next;
};

static pthread_mutex_t clients_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t clients_gone = PTHREAD_COND_INITIALIZER;
static struct client *clients;

static void forget_client(struct client *me)
{
    pthread_mutex_lock(&clients_lock);
    for (struct client **p = &clients; *p; p = &(*p)->next) {
        if (*p == me) {
            *p = me->next;
            break;
        }
    }
    shmsock_stream_free(me->stream);
    free(me);
    pthread_cond_broadcast(&clients_gone);
    pthread_mutex_unlock(&clients_lock);
}

/* Sends every message back until the client leaves or the server stops. */
static void *echo(void *arg)
{
    struct client *me = arg;
    shmsock_stream *stream = me->stream;
    uint8_t key[SHMSOCK_KEY_LEN] = {0};
    char fingerprint[SHMSOCK_FINGERPRINT_SIZE] = "?";
    shmsock_cipher cipher = 0;
    if (shmsock_stream_peer_public_key(stream, key, sizeof key) == SHMSOCK_OK) fingerprint_of(key, fingerprint);
    shmsock_stream_cipher(stream, &cipher);
    say("connect %s %s", fingerprint, shmsock_cipher_name(cipher));

    size_t capacity = 64 * 1024;
    uint8_t *buf = malloc(capacity);
    shmsock_result rc = buf ? SHMSOCK_OK : SHMSOCK_RESOURCE_EXHAUSTED;
    while (rc == SHMSOCK_OK) {
        size_t len = 0;
        rc = shmsock_stream_recv_into(stream, buf, capacity, &len);
        if (rc == SHMSOCK_BUFFER_TOO_SMALL) { /* the message is kept: grow and retry */
            uint8_t *bigger = realloc(buf, len);
            if (!bigger) {
                fprintf(stderr, "client %s: out of memory for a %zu-byte message\n", fingerprint, len);
                break;
            }
            buf = bigger;
            capacity = len;
            rc = SHMSOCK_OK;
            continue;
        }
        if (rc == SHMSOCK_OK) rc = shmsock_stream_send(stream, buf, len);
    }
    if (!buf)
        fprintf(stderr, "client %s: out of memory\n", fingerprint);
    else if (rc != SHMSOCK_OK && rc != SHMSOCK_BUFFER_TOO_SMALL && rc != SHMSOCK_PEER_CLOSED && rc != SHMSOCK_CLOSED)
        fprintf(stderr, "client %s: %s: %s\n", fingerprint, code_name(rc), shmsock_last_error());
    free(buf);
    shmsock_stream_close(stream);
    shmsock_stats stats = {0};
    shmsock_stream_stats(stream, &stats);
    say("close %s %llu %llu", fingerprint, (unsigned long long)stats.messages_received,
        (unsigned long long)stats.bytes_received);
    forget_client(me);
    return NULL;
}

static void start_client(shmsock_stream *stream)
{
    struct client *c = malloc(sizeof *c);
    if (!c) {
        fprintf(stderr, "dropping a client: out of memory\n");
        shmsock_stream_free(stream);
        return;
    }
    c->stream = stream;
    pthread_mutex_lock(&clients_lock);
    c->next = clients;
    clients = c;
    pthread_mutex_unlock(&clients_lock);
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int err = pthread_create(&thread, &attr, echo, c);
    pthread_attr_destroy(&attr);
    if (err != 0) {
        fprintf(stderr, "dropping a client: cannot start a thread: %s\n", strerror(err));
        forget_client(c);
    }
}

/* Closes every client's stream (their threads wake up and end) and waits. */
static void stop_clients(void)
{
    pthread_mutex_lock(&clients_lock);
    for (struct client *c = clients; c; c = c->next) shmsock_stream_close(c->stream);
    while (clients) pthread_cond_wait(&clients_gone, &clients_lock);
    pthread_mutex_unlock(&clients_lock);
}

/* Prints a `reject` line for each client the listener refused since last time. */
static void report_rejections(const shmsock_listener *listener, uint64_t *seen)
{
    uint64_t count = 0;
    uint32_t code = 0;
    if (shmsock_listener_rejected_count(listener, &count) != SHMSOCK_OK || count == *seen) return;
    shmsock_listener_last_rejection(listener, &code); /* also sets shmsock_last_error() */
    for (; *seen < count; ++*seen) say("reject %s", code_name(code));
    fprintf(stderr, "rejected a client: %s: %s\n", code_name(code), shmsock_last_error());
}

/* Accepts clients until stdin ends or SIGTERM / SIGINT comes. */
static int serve_loop(shmsock_listener *listener, int signal_fd)
{
    int listener_fd = -1;
    shmsock_result rc = shmsock_listener_fd(listener, &listener_fd);
    if (rc != SHMSOCK_OK) return shmsock_error(rc);
    uint64_t rejected = 0;
    for (;;) {
        struct pollfd fds[3] = {
            {.fd = STDIN_FILENO, .events = POLLIN},
            {.fd = signal_fd, .events = POLLIN},
            {.fd = listener_fd, .events = POLLIN},
        };
        if (poll(fds, 3, -1) < 0) {
            if (errno == EINTR) continue;
            fprintf(stderr, "error IO: poll: %s\n", strerror(errno));
            return EXIT_SHMSOCK;
        }
        if (fds[1].revents) {
            struct signalfd_siginfo info;
            ssize_t got = read(signal_fd, &info, sizeof info);
            fprintf(stderr, "stopping (%s)\n", got == (ssize_t)sizeof info ? strsignal((int)info.ssi_signo) : "signal");
            return 0;
        }
        if (fds[0].revents) {
            char sink[4096];
            ssize_t got = (fds[0].revents & POLLNVAL) ? 0 : read(STDIN_FILENO, sink, sizeof sink);
            if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
                fprintf(stderr, "stopping (end of input)\n");
                return 0;
            }
        }
        if (fds[2].revents) {
            /* Timeout 0: only the client that is waiting (its handshake runs here). */
            shmsock_stream *stream = NULL;
            rc = shmsock_listener_accept(listener, 0, &stream);
            if (rc == SHMSOCK_OK)
                start_client(stream);
            else if (rc != SHMSOCK_TIMEOUT)
                fprintf(stderr, "accept failed: %s: %s\n", code_name(rc), shmsock_last_error());
            report_rejections(listener, &rejected);
        }
    }
}

int serve(int argc, char **argv)
{
    const char *name = NULL, *key = NULL, *backend_text = NULL;
    const char **allow = calloc((size_t)argc + 1, sizeof *allow); /* at most one per argument */
    size_t allowed = 0;
    if (!allow) {
        fprintf(stderr, "error RESOURCE_EXHAUSTED: out of memory\n");
        return EXIT_SHMSOCK;
    }
    int status = 0;
    for (int i = 0; status == 0 && i < argc; i++) {
        if (strcmp(argv[i], "--name") == 0)
            status = take(argc, argv, &i, &name);
        else if (strcmp(argv[i], "--key") == 0)
            status = take(argc, argv, &i, &key);
        else if (strcmp(argv[i], "--backend") == 0)
            status = take(argc, argv, &i, &backend_text);
        else if (strcmp(argv[i], "--allow") == 0)
            status = i + 1 < argc ? (allow[allowed++] = argv[++i], 0) : usage_error("--allow needs a value");
        else
            status = usage_error("unknown option '%s' for serve", argv[i]);
    }
    uint32_t backend = SHMSOCK_BACKEND_MEMFD;
    if (status == 0 && !name) status = usage_error("--name is required");
    if (status == 0 && !key) status = usage_error("--key is required");
    if (status == 0 && backend_text) {
        if (strcmp(backend_text, "named") == 0)
            backend = SHMSOCK_BACKEND_NAMED;
        else if (strcmp(backend_text, "memfd") != 0)
            status = usage_error("--backend: '%s' is not memfd or named", backend_text);
    }
    if (status != 0) {
        free(allow);
        return status;
    }

    /* Before any thread starts, so that every thread inherits the mask and
     * the signals only reach the signalfd. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    int signal_fd = signalfd(-1, &stop, SFD_CLOEXEC);
    if (signal_fd < 0) {
        fprintf(stderr, "error IO: signalfd: %s\n", strerror(errno));
        free(allow);
        return EXIT_SHMSOCK;
    }

    shmsock_keypair *keypair = NULL;
    shmsock_options *options = NULL;
    shmsock_listener *listener = NULL;
    char text[SHMSOCK_PUBLIC_KEY_TEXT_SIZE], fingerprint[SHMSOCK_FINGERPRINT_SIZE];
    shmsock_result rc = shmsock_keypair_load(key, &keypair);
    if (rc == SHMSOCK_OK) rc = shmsock_options_new(&options);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_keypair(options, keypair);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_backend(options, backend);
    for (size_t i = 0; rc == SHMSOCK_OK && i < allowed; i++) {
        uint8_t client_key[SHMSOCK_KEY_LEN];
        rc = shmsock_public_key_from_text(allow[i], client_key, sizeof client_key);
        if (rc == SHMSOCK_OK) rc = shmsock_options_allow_client(options, client_key, sizeof client_key);
    }
    if (rc == SHMSOCK_OK) rc = shmsock_keypair_public_key_text(keypair, text, sizeof text, NULL);
    if (rc == SHMSOCK_OK) rc = shmsock_keypair_fingerprint(keypair, fingerprint, sizeof fingerprint, NULL);
    if (rc == SHMSOCK_OK) rc = shmsock_listener_bind(name, options, &listener);
    if (rc == SHMSOCK_OK) {
        say("ready %s %s %s", name, text, fingerprint);
        status = serve_loop(listener, signal_fd);
    } else {
        status = shmsock_error(rc);
    }
    shmsock_listener_free(listener); /* removes the endpoint first */
    stop_clients();
    shmsock_options_free(options);
    shmsock_keypair_free(keypair);
    close(signal_fd);
    free(allow);
    return status;
}
