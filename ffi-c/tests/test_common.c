#define _GNU_SOURCE
#include "test_common.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { MAX_TESTS = 256 };

static struct {
    const char *name;
    test_fn fn;
} tests[MAX_TESTS];
static int test_count;
static char run_dir[256];
static const char *current_test = "?";

void test_register(const char *name, test_fn fn)
{
    if (test_count == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        abort();
    }
    tests[test_count].name = name;
    tests[test_count].fn = fn;
    test_count++;
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list args;
    fprintf(stderr, "  %s: %s:%d: ", current_test, file, line);
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fprintf(stderr, "\n  last error: %s\n", shmsock_last_error());
    fflush(stderr);
    fflush(stdout);
    /* _exit: no leak report for a case that already failed. */
    _exit(1);
}

void unique_name(char *buf, size_t len, const char *prefix)
{
    static int counter;
    snprintf(buf, len, "%s-%d-%d", prefix, (int)getpid(), counter++);
}

const char *runtime_dir(void)
{
    return run_dir;
}

uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

shmsock_keypair *new_keypair(void)
{
    shmsock_keypair *kp = NULL;
    CHECK_OK(shmsock_keypair_generate(&kp));
    return kp;
}

shmsock_options *server_options(const shmsock_keypair *kp, uint32_t ring_size)
{
    shmsock_options *o = NULL;
    CHECK_OK(shmsock_options_new(&o));
    CHECK_OK(shmsock_options_set_keypair(o, kp));
    CHECK_OK(shmsock_options_set_ring_size(o, ring_size));
    return o;
}

shmsock_options *client_options(const shmsock_keypair *kp)
{
    uint8_t key[SHMSOCK_KEY_LEN];
    shmsock_options *o = NULL;
    CHECK_OK(shmsock_keypair_public_key(kp, key, sizeof key));
    CHECK_OK(shmsock_options_new(&o));
    CHECK_OK(shmsock_options_set_server_key(o, key, sizeof key));
    CHECK_OK(shmsock_options_set_handshake_timeout(o, 10000));
    return o;
}

void fill_pattern(uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)(x >> 24);
    }
}

bool check_pattern(const uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        if (buf[i] != (uint8_t)(x >> 24)) return false;
    }
    return true;
}

/* ------------------------------------------------------------ echo server */

static void *echo_thread(void *arg)
{
    echo_server *server = arg;
    for (int i = 0; i < server->clients; i++) {
        shmsock_stream *stream = NULL;
        CHECK_OK(shmsock_listener_accept(server->listener, 20000, &stream));
        for (;;) {
            uint8_t *msg = NULL;
            size_t len = 0;
            shmsock_result rc = shmsock_stream_recv_timeout(stream, 20000, &msg, &len);
            if (rc != SHMSOCK_OK) {
                server->end[i] = rc;
                break;
            }
            shmsock_result sent = shmsock_stream_send(stream, msg, len);
            shmsock_buffer_free(msg);
            if (sent != SHMSOCK_OK) {
                server->end[i] = sent;
                break;
            }
            server->echoed++;
        }
        CHECK_OK(shmsock_stream_close(stream));
        shmsock_stream_free(stream);
    }
    return NULL;
}

void echo_server_start(echo_server *server, const char *prefix, uint32_t ring_size, int clients)
{
    memset(server, 0, sizeof *server);
    unique_name(server->name, sizeof server->name, prefix);
    server->keypair = new_keypair();
    server->clients = clients;
    shmsock_options *o = server_options(server->keypair, ring_size);
    CHECK_OK(shmsock_listener_bind(server->name, o, &server->listener));
    shmsock_options_free(o);
    pthread_t *t = malloc(sizeof *t);
    CHECK(t != NULL);
    CHECK(pthread_create(t, NULL, echo_thread, server) == 0);
    server->thread = t;
}

void echo_server_join(echo_server *server)
{
    pthread_t *t = server->thread;
    CHECK(pthread_join(*t, NULL) == 0);
    free(t);
    shmsock_listener_free(server->listener);
    shmsock_keypair_free(server->keypair);
    server->thread = NULL;
}

/* ------------------------------------------------------------------ runner */

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path);
}

static int run_case(int index, unsigned timeout_s)
{
    uint64_t start = now_ms();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        current_test = tests[index].name;
        alarm(timeout_s);
        tests[index].fn();
        fflush(stdout);
        exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    uint64_t took = now_ms() - start;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        printf("ok   %s (%llu ms)\n", tests[index].name, (unsigned long long)took);
        return 0;
    }
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
        printf("FAIL %s: timed out after %u s\n", tests[index].name, timeout_s);
    else if (WIFSIGNALED(status))
        printf("FAIL %s: killed by signal %d\n", tests[index].name, WTERMSIG(status));
    else
        printf("FAIL %s: exit status %d\n", tests[index].name, WEXITSTATUS(status));
    return 1;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 1 && strcmp(argv[1], "--list") == 0) {
        for (int i = 0; i < test_count; i++) printf("%s\n", tests[i].name);
        return 0;
    }
    unsigned timeout_s = 60;
    const char *t = getenv("SHMSOCK_TEST_TIMEOUT");
    if (t && atoi(t) > 0) timeout_s = (unsigned)atoi(t);

    const char *tmp = getenv("TMPDIR");
    snprintf(run_dir, sizeof run_dir, "%s/shmsock-ctest-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(run_dir) || chmod(run_dir, 0700) != 0) {
        perror("creating the runtime directory");
        return 1;
    }
    setenv("SHMSOCK_RUNTIME_DIR", run_dir, 1);

    int passed = 0, failed = 0;
    for (int i = 0; i < test_count; i++) {
        bool selected = argc == 1;
        for (int a = 1; a < argc; a++)
            if (strcmp(argv[a], tests[i].name) == 0) selected = true;
        if (!selected) continue;
        if (run_case(i, timeout_s) == 0)
            passed++;
        else
            failed++;
    }
    for (int a = 1; a < argc; a++) {
        bool known = false;
        for (int i = 0; i < test_count; i++)
            if (strcmp(argv[a], tests[i].name) == 0) known = true;
        if (!known) {
            printf("FAIL %s: no such test\n", argv[a]);
            failed++;
        }
    }
    nftw(run_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 && passed > 0 ? 0 : 1;
}

void *pattern_client_main(void *arg)
{
    pattern_client *a = arg;
    shmsock_options *o = client_options(a->kp);
    shmsock_stream *s = NULL;
    CHECK_OK(shmsock_stream_connect(a->name, o, &s));
    uint8_t *out = malloc(a->max_msg), *in = malloc(a->max_msg);
    CHECK(out && in);
    for (int i = 0; i < a->messages; i++) {
        size_t len = (size_t)((a->seed * 7919u + (uint32_t)i * 104729u) % a->max_msg);
        fill_pattern(out, len, a->seed * 1000u + (uint32_t)i);
        CHECK_OK(shmsock_stream_send(s, out, len));
        size_t n = 0;
        CHECK_OK(shmsock_stream_recv_into_timeout(s, in, a->max_msg, &n, 20000));
        CHECK(n == len && check_pattern(in, n, a->seed * 1000u + (uint32_t)i));
    }
    CHECK_OK(shmsock_stream_close(s));
    shmsock_stream_free(s);
    shmsock_options_free(o);
    free(out);
    free(in);
    return NULL;
}
