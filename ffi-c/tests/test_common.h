/*
 * A small test harness for the C tests of libshmsock, and helpers they share.
 *
 * Each test binary holds several TEST(name) cases. `binary` runs them all,
 * `binary NAME...` runs some, `binary --list` lists them. Every case runs in a
 * forked child process with a time limit (SHMSOCK_TEST_TIMEOUT seconds, default
 * 60), so a crash, a hang or a leak report in one case fails that case only.
 * The runner prints one line per case and ends with "N passed, N failed".
 *
 * The runner sets SHMSOCK_RUNTIME_DIR to a new private (0700) directory and
 * removes it at the end; endpoint names are unique per process.
 */
#ifndef SHMSOCK_TEST_COMMON_H
#define SHMSOCK_TEST_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "shmsock.h"

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);

#define TEST(name)                                                       \
    static void test_##name(void);                                       \
    __attribute__((constructor)) static void test_register_##name(void) \
    {                                                                    \
        test_register(#name, test_##name);                               \
    }                                                                    \
    static void test_##name(void)

/* Reports a failure (with the thread's last shmsock error) and ends the case. */
__attribute__((noreturn, format(printf, 3, 4))) void test_fail(const char *file, int line, const char *fmt, ...);

#define CHECK(cond)                                          \
    do {                                                     \
        if (!(cond)) test_fail(__FILE__, __LINE__, "CHECK(%s)", #cond); \
    } while (0)

#define CHECK_RC(expr, want)                                                                        \
    do {                                                                                            \
        shmsock_result rc_ = (expr);                                                                \
        shmsock_result want_ = (want);                                                              \
        if (rc_ != want_)                                                                           \
            test_fail(__FILE__, __LINE__, "%s gave %s, expected %s", #expr, shmsock_result_name(rc_), \
                      shmsock_result_name(want_));                                                  \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, SHMSOCK_OK)

/* Fails unless the last error message contains `needle`. */
#define CHECK_LAST_ERROR_HAS(needle)                                                                    \
    do {                                                                                                \
        if (!strstr(shmsock_last_error(), (needle)))                                                    \
            test_fail(__FILE__, __LINE__, "last error '%s' lacks '%s'", shmsock_last_error(), (needle)); \
    } while (0)

/* A new endpoint name, unique in this process: "<prefix>-<pid>-<n>". */
void unique_name(char *buf, size_t len, const char *prefix);

/* The private runtime directory of this run. */
const char *runtime_dir(void);

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t now_ms(void);

/* Sleeps `ms` milliseconds. */
void sleep_ms(unsigned ms);

shmsock_keypair *new_keypair(void);

/* Options of a server holding `kp`, with `ring_size` (0: default). */
shmsock_options *server_options(const shmsock_keypair *kp, uint32_t ring_size);

/* Options of a client pinning the key of `kp`. */
shmsock_options *client_options(const shmsock_keypair *kp);

/* Fills `buf` with a pattern that depends on `seed` and the position. */
void fill_pattern(uint8_t *buf, size_t len, uint32_t seed);

/* True when `buf` holds fill_pattern(len, seed). */
bool check_pattern(const uint8_t *buf, size_t len, uint32_t seed);

/*
 * An echo server: a listener bound in the calling thread and a thread that
 * accepts `clients` streams one after another and echoes every message of each
 * until it ends. `end[i]` is the result that ended client i (normally
 * SHMSOCK_PEER_CLOSED).
 */
typedef struct {
    char name[64];
    shmsock_keypair *keypair;
    shmsock_listener *listener;
    int clients;
    shmsock_result end[8];
    uint64_t echoed;
    void *thread; /* pthread_t, kept opaque here */
} echo_server;

/* A client thread (pthread entry point, argument a pattern_client*): connects,
 * sends `messages` messages of pattern lengths below `max_msg`, checks each
 * echo, closes. */
typedef struct {
    const char *name;
    const shmsock_keypair *kp;
    uint32_t seed;
    int messages;
    size_t max_msg;
} pattern_client;

void *pattern_client_main(void *arg);

void echo_server_start(echo_server *server, const char *prefix, uint32_t ring_size, int clients);
void echo_server_join(echo_server *server);

#endif
