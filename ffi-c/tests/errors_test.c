/* Every result code that C can reach, each from a real situation.
 * (SHMSOCK_PANIC is only reachable through a bug in the library.) */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "test_common.h"

/* A connected pair: listener, server stream and client stream. */
typedef struct {
    char name[64];
    shmsock_keypair *kp;
    shmsock_listener *listener;
    shmsock_stream *server;
    shmsock_stream *client;
} pair;

static void *accept_one(void *arg)
{
    pair *p = arg;
    CHECK_OK(shmsock_listener_accept(p->listener, 10000, &p->server));
    return NULL;
}

static void pair_open(pair *p, uint32_t ring_size, uint32_t server_max_message)
{
    memset(p, 0, sizeof *p);
    unique_name(p->name, sizeof p->name, "pair");
    p->kp = new_keypair();
    shmsock_options *so = server_options(p->kp, ring_size);
    if (server_max_message) CHECK_OK(shmsock_options_set_max_message_size(so, server_max_message));
    CHECK_OK(shmsock_listener_bind(p->name, so, &p->listener));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, accept_one, p) == 0);
    shmsock_options *co = client_options(p->kp);
    CHECK_OK(shmsock_stream_connect(p->name, co, &p->client));
    CHECK(pthread_join(t, NULL) == 0);
    shmsock_options_free(so);
    shmsock_options_free(co);
}

static void pair_close(pair *p)
{
    shmsock_stream_free(p->client);
    shmsock_stream_free(p->server);
    shmsock_listener_free(p->listener);
    shmsock_keypair_free(p->kp);
}

TEST(timeout)
{
    pair p;
    pair_open(&p, 0, 0);
    uint8_t b[4];
    size_t n;
    CHECK_RC(shmsock_stream_recv_into_timeout(p.client, b, sizeof b, &n, 20), SHMSOCK_TIMEOUT);
    pair_close(&p);
}

TEST(would_block)
{
    pair p;
    pair_open(&p, 0, 0);
    uint8_t b[4];
    size_t n;
    CHECK_RC(shmsock_stream_try_recv_into(p.server, b, sizeof b, &n), SHMSOCK_WOULD_BLOCK);
    pair_close(&p);
}

TEST(closed)
{
    pair p;
    pair_open(&p, 0, 0);
    CHECK_OK(shmsock_stream_close(p.client));
    CHECK_RC(shmsock_stream_send(p.client, (const uint8_t *)"x", 1), SHMSOCK_CLOSED);
    pair_close(&p);
}

TEST(peer_closed)
{
    pair p;
    pair_open(&p, 0, 0);
    CHECK_OK(shmsock_stream_close(p.server));
    uint8_t b[4];
    size_t n;
    CHECK_RC(shmsock_stream_recv_into_timeout(p.client, b, sizeof b, &n, 5000), SHMSOCK_PEER_CLOSED);
    pair_close(&p);
}

/* The stream's control socket: the socket in the epoll set that is its
 * pollable fd (listed in /proc/self/fdinfo of that fd). Only for playing the
 * peer's death below; applications never need it. */
static int control_socket_of(const shmsock_stream *s)
{
    int epfd = -1;
    CHECK_OK(shmsock_stream_pollable_fd(s, &epfd));
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", epfd);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    char line[256];
    int found = -1;
    while (fgets(line, sizeof line, f)) {
        int tfd;
        if (sscanf(line, "tfd: %d", &tfd) != 1) continue;
        char link[64], target[128];
        snprintf(link, sizeof link, "/proc/self/fd/%d", tfd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n > 0) {
            target[n] = '\0';
            if (strncmp(target, "socket:", 7) == 0) found = tfd;
        }
    }
    fclose(f);
    CHECK(found >= 0);
    return found;
}

TEST(peer_gone)
{
    /* The peer's control socket closes without a close frame: as when its
     * process dies (stream_test covers a real death). Freeing the server
     * stream closes cleanly, so shut its control socket down under it
     * instead. */
    pair p;
    pair_open(&p, 0, 0);
    int fd = control_socket_of(p.server);
    CHECK(shutdown(fd, SHUT_RDWR) == 0);
    uint8_t b[4];
    size_t n;
    CHECK_RC(shmsock_stream_recv_into_timeout(p.client, b, sizeof b, &n, 5000), SHMSOCK_PEER_GONE);
    pair_close(&p);
}

TEST(handshake_rejected)
{
    char name[64];
    unique_name(name, sizeof name, "allow");
    shmsock_keypair *kp = new_keypair(), *allowed = new_keypair();
    uint8_t allowed_key[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_keypair_public_key(allowed, allowed_key, sizeof allowed_key));
    shmsock_options *so = server_options(kp, 0);
    CHECK_OK(shmsock_options_allow_client(so, allowed_key, sizeof allowed_key));
    shmsock_listener *l = NULL;
    CHECK_OK(shmsock_listener_bind(name, so, &l));
    /* The listener must run the handshake: a thread accepts (and skips us). */
    pthread_t t;
    pair p = {.listener = l};
    CHECK(pthread_create(&t, NULL, accept_one, &p) == 0);
    shmsock_options *co = client_options(kp); /* a fresh client key: not allowed */
    shmsock_stream *s = NULL;
    CHECK_RC(shmsock_stream_connect(name, co, &s), SHMSOCK_HANDSHAKE_REJECTED);
    CHECK_LAST_ERROR_HAS("allow-list");
    CHECK(s == NULL);
    /* The allowed key gets in (and ends the accepting thread). */
    CHECK_OK(shmsock_options_set_keypair(co, allowed));
    CHECK_OK(shmsock_stream_connect(name, co, &s));
    CHECK(pthread_join(t, NULL) == 0);
    uint64_t rejected = 0;
    uint32_t why = 0;
    CHECK_OK(shmsock_listener_rejected_count(l, &rejected));
    CHECK(rejected == 1);
    CHECK_OK(shmsock_listener_last_rejection(l, &why));
    CHECK(why == SHMSOCK_HANDSHAKE_REJECTED);
    shmsock_stream_free(s);
    shmsock_stream_free(p.server);
    shmsock_listener_free(l);
    shmsock_options_free(so);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
    shmsock_keypair_free(allowed);
}

TEST(server_key_mismatch)
{
    pair p;
    pair_open(&p, 0, 0);
    pthread_t t;
    shmsock_stream *first = p.server;
    CHECK(pthread_create(&t, NULL, accept_one, &p) == 0);
    shmsock_keypair *other = new_keypair();
    shmsock_options *co = client_options(other);
    shmsock_stream *s = NULL;
    CHECK_RC(shmsock_stream_connect(p.name, co, &s), SHMSOCK_SERVER_KEY_MISMATCH);
    /* Let the accepting thread finish with a good client. */
    shmsock_options *good = client_options(p.kp);
    CHECK_OK(shmsock_stream_connect(p.name, good, &s));
    CHECK(pthread_join(t, NULL) == 0);
    shmsock_stream_free(s);
    shmsock_stream_free(first);
    shmsock_options_free(co);
    shmsock_options_free(good);
    shmsock_keypair_free(other);
    pair_close(&p);
}

/* Overwrites one ciphertext byte of the next server-to-client frame, as a
 * hostile process with the segment mapped could. The segment is found in
 * /proc/self/maps by its size (ring 16 KiB: 0x1000 + 2 * 0x4000 bytes) and
 * by a frame at `frame_at` (the listener's spare segment for its next client
 * has the same size and header, and empty rings). */
static uint8_t *find_segment(size_t size, size_t frame_at)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    CHECK(maps != NULL);
    char line[512];
    uint8_t *found = NULL;
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        char perms[8];
        if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3) continue;
        if (hi - lo == size && strncmp(perms, "rw-s", 4) == 0 && strstr(line, "memfd:shmsock")) {
            uint8_t *base = (uint8_t *)lo;
            if (memcmp(base, "shmsock\0", 8) == 0 && base[frame_at] == 1) {
                found = base;
                break;
            }
        }
    }
    fclose(maps);
    return found;
}

TEST(authentication_failed)
{
    const uint32_t ring = 1 << 14;
    pair p;
    pair_open(&p, ring, 0);
    CHECK_OK(shmsock_stream_send(p.server, (const uint8_t *)"attack at dawn", 14));
    /* Ring 1 (server to client) data starts at 0x1000 + ring; the first frame
     * has a 16-byte header (kind 1, DATA), then its ciphertext. */
    uint8_t *seg = find_segment(0x1000 + 2 * (size_t)ring, 0x1000 + ring);
    CHECK(seg != NULL);
    volatile uint8_t *ciphertext = seg + 0x1000 + ring + 16;
    *ciphertext ^= 0x01;
    uint8_t b[64];
    size_t n = 0;
    CHECK_RC(shmsock_stream_recv_into_timeout(p.client, b, sizeof b, &n, 5000), SHMSOCK_AUTHENTICATION_FAILED);
    /* The connection is over, for every later call too. */
    CHECK_RC(shmsock_stream_recv_into_timeout(p.client, b, sizeof b, &n, 10), SHMSOCK_AUTHENTICATION_FAILED);
    pair_close(&p);
}

/* A fake server on the endpoint's socket that answers a HELLO with `reply`. */
typedef struct {
    int listen_fd;
    uint8_t reply[64];
    size_t reply_len;
} fake_server;

static void *fake_serve(void *arg)
{
    fake_server *f = arg;
    int c = accept(f->listen_fd, NULL, NULL);
    CHECK(c >= 0);
    uint8_t header[4];
    CHECK(recv(c, header, 4, MSG_WAITALL) == 4);
    size_t len = (size_t)header[2] | (size_t)header[3] << 8;
    uint8_t body[2048];
    CHECK(len <= sizeof body && recv(c, body, len, MSG_WAITALL) == (ssize_t)len);
    CHECK(send(c, f->reply, f->reply_len, MSG_NOSIGNAL) == (ssize_t)f->reply_len);
    sleep_ms(200);
    close(c);
    return NULL;
}

static shmsock_result connect_to_fake(const uint8_t *reply, size_t reply_len)
{
    char name[64];
    unique_name(name, sizeof name, "fake");
    fake_server f = {.reply_len = reply_len};
    memcpy(f.reply, reply, reply_len);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s/%s.sock", runtime_dir(), name);
    f.listen_fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(f.listen_fd >= 0);
    CHECK(bind(f.listen_fd, (struct sockaddr *)&addr, sizeof addr) == 0);
    CHECK(listen(f.listen_fd, 1) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fake_serve, &f) == 0);
    shmsock_keypair *kp = new_keypair();
    shmsock_options *co = client_options(kp);
    shmsock_stream *s = NULL;
    shmsock_result rc = shmsock_stream_connect(name, co, &s);
    CHECK(s == NULL);
    CHECK(pthread_join(t, NULL) == 0);
    close(f.listen_fd);
    unlink(addr.sun_path);
    shmsock_options_free(co);
    shmsock_keypair_free(kp);
    return rc;
}

/* A REJECT record: type 3, reserved 0, u16le body length, u16le reason, text. */
static shmsock_result rejected_with(uint16_t reason)
{
    uint8_t rec[] = {3, 0, 4, 0, (uint8_t)reason, (uint8_t)(reason >> 8), 'n', 'o'};
    return connect_to_fake(rec, sizeof rec);
}

TEST(protocol_version)
{
    CHECK_RC(rejected_with(3), SHMSOCK_PROTOCOL_VERSION);
    CHECK_LAST_ERROR_HAS("server says: no");
}

TEST(no_common_cipher)
{
    CHECK_RC(rejected_with(4), SHMSOCK_NO_COMMON_CIPHER);
}

TEST(resource_exhausted_reported_by_the_server)
{
    CHECK_RC(rejected_with(7), SHMSOCK_RESOURCE_EXHAUSTED);
}

TEST(protocol_violation)
{
    static const uint8_t garbage[] = {9, 0, 0, 0};
    CHECK_RC(connect_to_fake(garbage, sizeof garbage), SHMSOCK_PROTOCOL_VIOLATION);
}

TEST(message_too_large)
{
    pair p;
    pair_open(&p, 0, 1024);
    uint32_t max = 0;
    CHECK_OK(shmsock_stream_peer_max_message_size(p.client, &max));
    CHECK(max == 1024);
    static uint8_t big[1025];
    CHECK_RC(shmsock_stream_send(p.client, big, sizeof big), SHMSOCK_MESSAGE_TOO_LARGE);
    CHECK_OK(shmsock_stream_send(p.client, big, 1024)); /* the stream still works */
    pair_close(&p);
}

TEST(buffer_too_small)
{
    pair p;
    pair_open(&p, 0, 0);
    CHECK_OK(shmsock_stream_send(p.server, (const uint8_t *)"0123456789", 10));
    uint8_t b[4];
    size_t n = 0;
    CHECK_RC(shmsock_stream_recv_into_timeout(p.client, b, sizeof b, &n, 5000), SHMSOCK_BUFFER_TOO_SMALL);
    CHECK(n == 10);
    pair_close(&p);
}

TEST(invalid_name)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = server_options(kp, 0);
    shmsock_listener *l = NULL;
    CHECK_RC(shmsock_listener_bind("no spaces", o, &l), SHMSOCK_INVALID_NAME);
    CHECK(l == NULL);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
}

TEST(address_in_use)
{
    pair p;
    pair_open(&p, 0, 0);
    shmsock_options *o = server_options(p.kp, 0);
    shmsock_listener *l = NULL;
    CHECK_RC(shmsock_listener_bind(p.name, o, &l), SHMSOCK_ADDRESS_IN_USE);
    shmsock_options_free(o);
    pair_close(&p);
}

TEST(not_found)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = client_options(kp);
    shmsock_stream *s = NULL;
    CHECK_RC(shmsock_stream_connect("nobody-serves-this", o, &s), SHMSOCK_NOT_FOUND);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
}

TEST(invalid_key)
{
    uint8_t k[SHMSOCK_KEY_LEN];
    CHECK_RC(shmsock_public_key_from_text("shmsock-pk:short", k, sizeof k), SHMSOCK_INVALID_KEY);
}

TEST(insecure_key_file)
{
    char path[512];
    snprintf(path, sizeof path, "%s/insecure.key", runtime_dir());
    shmsock_keypair *kp = new_keypair(), *loaded = NULL;
    CHECK_OK(shmsock_keypair_save(kp, path));
    CHECK(chmod(path, 0640) == 0);
    CHECK_RC(shmsock_keypair_load(path, &loaded), SHMSOCK_INSECURE_KEY_FILE);
    shmsock_keypair_free(kp);
    unlink(path);
}

TEST(invalid_argument)
{
    shmsock_options *o = NULL;
    CHECK_OK(shmsock_options_new(&o));
    CHECK_RC(shmsock_options_set_ring_size(o, 1000), SHMSOCK_INVALID_ARGUMENT);
    CHECK_RC(shmsock_options_set_ring_size(o, 2048), SHMSOCK_INVALID_ARGUMENT);
    CHECK_RC(shmsock_options_set_handshake_timeout(o, 0), SHMSOCK_INVALID_ARGUMENT);
    CHECK_RC(shmsock_options_set_backend(o, 3), SHMSOCK_INVALID_ARGUMENT);
    /* A server without a keypair, a client without a pinned key. */
    shmsock_listener *l = NULL;
    shmsock_stream *s = NULL;
    CHECK_RC(shmsock_listener_bind("no-key", o, &l), SHMSOCK_INVALID_ARGUMENT);
    CHECK_RC(shmsock_stream_connect("no-key", o, &s), SHMSOCK_INVALID_ARGUMENT);
    CHECK_LAST_ERROR_HAS("server_key");
    shmsock_options_free(o);
}

TEST(resource_exhausted_out_of_file_descriptors)
{
    char path[512];
    snprintf(path, sizeof path, "%s/fd.key", runtime_dir());
    shmsock_keypair *kp = new_keypair(), *loaded = NULL;
    CHECK_OK(shmsock_keypair_save(kp, path));
    struct rlimit old;
    CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0);
    /* Occupy every descriptor below a low limit, then lower the limit. */
    int fds[64];
    int count = 0;
    for (;;) {
        int fd = dup(0);
        CHECK(fd >= 0);
        if (fd >= 32 || count == 64) {
            close(fd);
            break;
        }
        fds[count++] = fd;
    }
    struct rlimit low = {32, old.rlim_max};
    CHECK(setrlimit(RLIMIT_NOFILE, &low) == 0);
    shmsock_result rc = shmsock_keypair_load(path, &loaded);
    CHECK(setrlimit(RLIMIT_NOFILE, &old) == 0);
    for (int i = 0; i < count; i++) close(fds[i]);
    CHECK_RC(rc, SHMSOCK_RESOURCE_EXHAUSTED);
    shmsock_keypair_free(kp);
    unlink(path);
}

TEST(permission_denied)
{
    /* A runtime directory that others can read is refused. */
    char dir[512];
    snprintf(dir, sizeof dir, "%s/open-dir", runtime_dir());
    CHECK(mkdir(dir, 0755) == 0 && chmod(dir, 0755) == 0);
    char *saved = strdup(getenv("SHMSOCK_RUNTIME_DIR"));
    setenv("SHMSOCK_RUNTIME_DIR", dir, 1);
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = server_options(kp, 0);
    shmsock_listener *l = NULL;
    shmsock_result rc = shmsock_listener_bind("denied", o, &l);
    setenv("SHMSOCK_RUNTIME_DIR", saved, 1);
    free(saved);
    CHECK_RC(rc, SHMSOCK_PERMISSION_DENIED);
    CHECK_LAST_ERROR_HAS("0700");
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
    rmdir(dir);
}

TEST(io)
{
    shmsock_keypair *kp = new_keypair();
    CHECK_RC(shmsock_keypair_save(kp, "/nonexistent-shmsock-dir/x.key"), SHMSOCK_IO);
    shmsock_keypair_free(kp);
}

TEST(null_argument)
{
    CHECK_RC(shmsock_keypair_generate(NULL), SHMSOCK_NULL_ARGUMENT);
}

TEST(invalid_utf8)
{
    shmsock_keypair *kp = new_keypair();
    shmsock_options *o = client_options(kp);
    shmsock_stream *s = NULL;
    CHECK_RC(shmsock_stream_connect("caf\xc3", o, &s), SHMSOCK_INVALID_UTF8);
    shmsock_options_free(o);
    shmsock_keypair_free(kp);
}
