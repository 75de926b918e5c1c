/*
 * The C interop agent: keygen, pubkey, an echo server and a checking client,
 * on the C ABI of shmsock only (shmsock.h); publish and subscribe are in
 * topics.c.
 *
 * The command line, the output lines and the exit codes are the contract in
 * tests/interop/README.md ("The agent command line"). Build it with
 * ./build.sh next to this file, run it with ./agent.
 *
 * `serve` runs a shmsock_listener with one thread per client rather than a
 * shmsock_server: a shmsock_connection does not tell its cipher, which the
 * `connect` line prints, while a shmsock_stream does. The main thread polls
 * stdin (end of file: stop), a signalfd (SIGTERM, SIGINT: stop) and the
 * listener's fd (a client is waiting: accept it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <shmsock.h>

#include "agent.h"

#define DEFAULT_SIZES "0,1,64,65536,262144"
#define MAX_SECONDS 1e9 /* longer --seconds / --timeout values are refused */

static const char USAGE[] =
    "usage: agent keygen FILE\n"
    "       agent pubkey FILE\n"
    "       agent serve --name NAME --key FILE [--allow PUBLIC]... [--backend memfd|named]\n"
    "       agent client --name NAME --server-key PUBLIC [--key FILE]\n"
    "                    [--cipher aegis-128l|chacha20-poly1305] [--ring-size BYTES]\n"
    "                    [--sizes LIST] [--seconds S] [--timeout S]\n"
    "       agent publish --name NAME --key FILE [--count N] [--sizes LIST]\n"
    "                     [--subscribers K] [--timeout S] [--cipher C]\n"
    "       agent subscribe --name NAME --server-key PUBLIC [--key FILE] [--count N]\n"
    "                       [--sizes LIST] [--timeout S] [--cipher C]\n"
    "(see tests/interop/README.md)";

/* ------------------------------------------------------------------ output */

/* One stdout line, flushed at once; whole even when threads print at once. */
void say(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    flockfile(stdout);
    vfprintf(stdout, format, args);
    fputc('\n', stdout);
    fflush(stdout);
    funlockfile(stdout);
    va_end(args);
}

int usage_error(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    fputs("usage error: ", stderr);
    vfprintf(stderr, format, args);
    fputs(" (run 'agent --help' for the command line)\n", stderr);
    va_end(args);
    return EXIT_USAGE;
}

/* The stable name of a result code: "SHMSOCK_TIMEOUT" -> "TIMEOUT". */
static const char *code_name(uint32_t rc)
{
    const char *name = shmsock_result_name(rc);
    return strncmp(name, "SHMSOCK_", 8) == 0 ? name + 8 : name;
}

/* Reports the failure `rc` of the last shmsock call on this thread. */
int shmsock_error(shmsock_result rc)
{
    fprintf(stderr, "error %s: %s\n", code_name(rc), shmsock_last_error());
    return EXIT_SHMSOCK;
}

void fingerprint_of(const uint8_t key[SHMSOCK_KEY_LEN], char out[SHMSOCK_FINGERPRINT_SIZE])
{
    if (shmsock_public_key_fingerprint(key, SHMSOCK_KEY_LEN, out, SHMSOCK_FINGERPRINT_SIZE, NULL) != SHMSOCK_OK)
        snprintf(out, SHMSOCK_FINGERPRINT_SIZE, "?");
}

/* ------------------------------------------------------------------- numbers */

bool parse_u32(const char *text, uint32_t *out)
{
    if (text[0] < '0' || text[0] > '9') return false;
    errno = 0;
    char *end = NULL;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0' || value > UINT32_MAX) return false;
    *out = (uint32_t)value;
    return true;
}

/* A positive number of seconds, at most MAX_SECONDS. */
bool parse_seconds(const char *text, double *out)
{
    errno = 0;
    char *end = NULL;
    double value = strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !isfinite(value) || value <= 0 || value > MAX_SECONDS) return false;
    *out = value;
    return true;
}

/* Parses the comma-separated --sizes list into a new array (free it). */
int parse_sizes(const char *text, uint32_t **out, size_t *count)
{
    size_t n = 1;
    for (const char *p = text; *p; p++) n += *p == ',';
    uint32_t *sizes = calloc(n, sizeof *sizes);
    char *copy = strdup(text);
    if (!sizes || !copy) {
        free(sizes);
        free(copy);
        fprintf(stderr, "error RESOURCE_EXHAUSTED: out of memory\n");
        return EXIT_SHMSOCK;
    }
    char *part = copy;
    for (size_t i = 0; i < n; i++) {
        char *comma = strchr(part, ',');
        if (comma) *comma = '\0';
        if (!parse_u32(part, &sizes[i])) {
            int status = usage_error("--sizes: '%s' is not a size in bytes (in '%s')", part, text);
            free(sizes);
            free(copy);
            return status;
        }
        part = comma ? comma + 1 : part;
    }
    free(copy);
    *out = sizes;
    *count = n;
    return 0;
}

/* Takes the value of option argv[*i] into *slot (once). */
int take(int argc, char **argv, int *i, const char **slot)
{
    const char *option = argv[*i];
    if (*i + 1 >= argc) return usage_error("%s needs a value", option);
    if (*slot) return usage_error("%s given twice", option);
    *slot = argv[++*i];
    return 0;
}

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* --------------------------------------------------------------------- keys */

static int keygen(const char *path)
{
    shmsock_keypair *keypair = NULL;
    char text[SHMSOCK_PUBLIC_KEY_TEXT_SIZE];
    shmsock_result rc = shmsock_keypair_generate(&keypair);
    if (rc == SHMSOCK_OK) rc = shmsock_keypair_save(keypair, path);
    if (rc == SHMSOCK_OK) rc = shmsock_keypair_public_key_text(keypair, text, sizeof text, NULL);
    int status = rc == SHMSOCK_OK ? 0 : shmsock_error(rc);
    if (rc == SHMSOCK_OK) say("public %s", text);
    shmsock_keypair_free(keypair);
    return status;
}

static int pubkey(const char *path)
{
    shmsock_keypair *keypair = NULL;
    char text[SHMSOCK_PUBLIC_KEY_TEXT_SIZE], fingerprint[SHMSOCK_FINGERPRINT_SIZE];
    shmsock_result rc = shmsock_keypair_load(path, &keypair);
    if (rc == SHMSOCK_OK) rc = shmsock_keypair_public_key_text(keypair, text, sizeof text, NULL);
    if (rc == SHMSOCK_OK) rc = shmsock_keypair_fingerprint(keypair, fingerprint, sizeof fingerprint, NULL);
    int status = rc == SHMSOCK_OK ? 0 : shmsock_error(rc);
    if (rc == SHMSOCK_OK) say("public %s %s", text, fingerprint);
    shmsock_keypair_free(keypair);
    return status;
}

/* ------------------------------------------------------------------- server */

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

static int serve(int argc, char **argv)
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

/* ------------------------------------------------------------------- client */

struct client_args {
    const char *name, *server_key, *key, *cipher;
    uint32_t ring_size;
    bool has_ring_size;
    uint32_t *sizes;
    size_t n_sizes;
    double seconds; /* 0: send each size once */
    double timeout;
};

static int parse_client(int argc, char **argv, struct client_args *a)
{
    const char *ring = NULL, *sizes = NULL, *seconds = NULL, *timeout = NULL;
    int status = 0;
    for (int i = 0; status == 0 && i < argc; i++) {
        const char *o = argv[i];
        const char **slot = strcmp(o, "--name") == 0         ? &a->name
                            : strcmp(o, "--server-key") == 0 ? &a->server_key
                            : strcmp(o, "--key") == 0        ? &a->key
                            : strcmp(o, "--cipher") == 0     ? &a->cipher
                            : strcmp(o, "--ring-size") == 0  ? &ring
                            : strcmp(o, "--sizes") == 0      ? &sizes
                            : strcmp(o, "--seconds") == 0    ? &seconds
                            : strcmp(o, "--timeout") == 0    ? &timeout
                                                             : NULL;
        status = slot ? take(argc, argv, &i, slot) : usage_error("unknown option '%s' for client", o);
    }
    if (status) return status;
    if (!a->name) return usage_error("--name is required");
    if (!a->server_key) return usage_error("--server-key is required");
    if (!a->cipher) a->cipher = "aegis-128l";
    if (strcmp(a->cipher, "aegis-128l") != 0 && strcmp(a->cipher, "chacha20-poly1305") != 0)
        return usage_error("--cipher: '%s' is not aegis-128l or chacha20-poly1305", a->cipher);
    if (ring && !(a->has_ring_size = parse_u32(ring, &a->ring_size)))
        return usage_error("--ring-size: '%s' is not a size in bytes", ring);
    if (seconds && !parse_seconds(seconds, &a->seconds))
        return usage_error("--seconds: '%s' is not a positive number of seconds (at most 1e9)", seconds);
    a->timeout = 10;
    if (timeout && !parse_seconds(timeout, &a->timeout))
        return usage_error("--timeout: '%s' is not a positive number of seconds (at most 1e9)", timeout);
    return parse_sizes(sizes ? sizes : DEFAULT_SIZES, &a->sizes, &a->n_sizes);
}

/* Message `i` of size `n`: byte `j` is (i + 31 * j + n) mod 256. */
void fill_message(uint8_t *message, uint64_t i, size_t n)
{
    uint8_t byte = (uint8_t)(i + n);
    for (size_t j = 0; j < n; j++, byte += 31) message[j] = byte;
}

/* Sends the messages and checks their echoes; 0 or an exit status. */
static int exchange(shmsock_stream *stream, const struct client_args *a, uint64_t *count, uint64_t *bytes)
{
    size_t largest = 0;
    for (size_t k = 0; k < a->n_sizes; k++) largest = a->sizes[k] > largest ? a->sizes[k] : largest;
    uint8_t *message = malloc(largest + 1), *reply = malloc(largest + 1);
    int status = 0;
    if (!message || !reply) {
        fprintf(stderr, "error RESOURCE_EXHAUSTED: cannot allocate two messages of %zu bytes\n", largest);
        status = EXIT_SHMSOCK;
    }
    double start = now_seconds(), next_progress = 1;
    uint64_t i = 0;
    for (; status == 0; i++) {
        if (a->seconds > 0 ? now_seconds() - start >= a->seconds : i == a->n_sizes) break;
        size_t n = a->sizes[i % a->n_sizes], len = 0;
        fill_message(message, i, n);
        shmsock_result rc = shmsock_stream_send(stream, message, n);
        if (rc == SHMSOCK_OK) rc = shmsock_stream_recv_into(stream, reply, largest + 1, &len);
        if (rc == SHMSOCK_BUFFER_TOO_SMALL || (rc == SHMSOCK_OK && len != n)) {
            fprintf(stderr, "mismatch: message %llu (%zu B): received %zu bytes\n", (unsigned long long)i, n, len);
            status = EXIT_VERIFY;
        } else if (rc != SHMSOCK_OK) {
            status = shmsock_error(rc);
        } else if (memcmp(reply, message, n) != 0) {
            size_t j = 0;
            while (reply[j] == message[j]) j++;
            fprintf(stderr, "mismatch: message %llu (%zu B): byte %zu is %u, expected %u\n", (unsigned long long)i, n,
                    j, reply[j], message[j]);
            status = EXIT_VERIFY;
        } else {
            *bytes += n;
            double elapsed = now_seconds() - start;
            if (a->seconds > 0 && elapsed >= next_progress) {
                next_progress += 1;
                say("progress %llu %llu %.3f", (unsigned long long)(i + 1), (unsigned long long)*bytes, elapsed);
            }
        }
    }
    *count = i;
    free(message);
    free(reply);
    return status;
}

static int client(int argc, char **argv)
{
    struct client_args a = {0};
    int status = parse_client(argc, argv, &a);
    if (status) return status;

    uint8_t server_key[SHMSOCK_KEY_LEN], peer[SHMSOCK_KEY_LEN], local[SHMSOCK_KEY_LEN];
    shmsock_options *options = NULL;
    shmsock_keypair *keypair = NULL;
    shmsock_stream *stream = NULL;
    shmsock_cipher cipher = 0;
    double ms = ceil(a.timeout * 1000);
    shmsock_result rc = shmsock_public_key_from_text(a.server_key, server_key, sizeof server_key);
    if (rc == SHMSOCK_OK) rc = shmsock_options_new(&options);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_server_key(options, server_key, sizeof server_key);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_recv_timeout(options, (uint64_t)ms);
    if (rc == SHMSOCK_OK) rc = shmsock_options_set_require_chacha(options, strcmp(a.cipher, "chacha20-poly1305") == 0);
    if (rc == SHMSOCK_OK && a.has_ring_size) rc = shmsock_options_set_ring_size(options, a.ring_size);
    if (rc == SHMSOCK_OK && a.key) rc = shmsock_keypair_load(a.key, &keypair);
    if (rc == SHMSOCK_OK && keypair) rc = shmsock_options_set_keypair(options, keypair);
    if (rc == SHMSOCK_OK) rc = shmsock_stream_connect(a.name, options, &stream);
    if (rc == SHMSOCK_OK) rc = shmsock_stream_peer_public_key(stream, peer, sizeof peer);
    if (rc == SHMSOCK_OK) rc = shmsock_stream_local_public_key(stream, local, sizeof local);
    if (rc == SHMSOCK_OK) rc = shmsock_stream_cipher(stream, &cipher);
    if (rc != SHMSOCK_OK) {
        status = shmsock_error(rc);
        goto done;
    }
    if (memcmp(peer, server_key, sizeof peer) != 0) {
        char got[SHMSOCK_PUBLIC_KEY_TEXT_SIZE] = "?";
        shmsock_public_key_to_text(peer, sizeof peer, got, sizeof got, NULL);
        fprintf(stderr, "mismatch: server key is %s, expected %s\n", got, a.server_key);
        status = EXIT_VERIFY;
        goto done;
    }
    if (strcmp(shmsock_cipher_name(cipher), a.cipher) != 0) {
        fprintf(stderr, "mismatch: cipher is %s, expected %s\n", shmsock_cipher_name(cipher), a.cipher);
        status = EXIT_VERIFY;
        goto done;
    }

    double start = now_seconds();
    uint64_t count = 0, bytes = 0;
    status = exchange(stream, &a, &count, &bytes);
    double elapsed = now_seconds() - start;
    if (status == 0 && (rc = shmsock_stream_close(stream)) != SHMSOCK_OK) status = shmsock_error(rc);
    if (status == 0) {
        char server_fp[SHMSOCK_FINGERPRINT_SIZE], client_fp[SHMSOCK_FINGERPRINT_SIZE];
        fingerprint_of(server_key, server_fp);
        fingerprint_of(local, client_fp);
        say("ok cipher=%s server=%s client=%s messages=%llu bytes=%llu seconds=%.3f", shmsock_cipher_name(cipher),
            server_fp, client_fp, (unsigned long long)count, (unsigned long long)bytes, elapsed);
    }
done:
    shmsock_stream_free(stream);
    shmsock_keypair_free(keypair);
    shmsock_options_free(options);
    free(a.sizes);
    return status;
}

/* --------------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    /* Lines go out at once, also into a pipe; a closed stdout must not kill us. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) return usage_error("no command");
    const char *command = argv[1];
    if (strcmp(command, "keygen") == 0 || strcmp(command, "pubkey") == 0) {
        if (argc < 3) return usage_error("%s needs a FILE", command);
        if (argc > 3) return usage_error("unexpected argument '%s'", argv[3]);
        return command[0] == 'k' ? keygen(argv[2]) : pubkey(argv[2]);
    }
    if (strcmp(command, "serve") == 0) return serve(argc - 2, argv + 2);
    if (strcmp(command, "client") == 0) return client(argc - 2, argv + 2);
    if (strcmp(command, "publish") == 0) return publish(argc - 2, argv + 2);
    if (strcmp(command, "subscribe") == 0) return subscribe(argc - 2, argv + 2);
    if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 || strcmp(command, "help") == 0) {
        say("%s", USAGE);
        return 0;
    }
    return usage_error("unknown command '%s'", command);
}
