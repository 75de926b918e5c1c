/*
 * What every command of the C interop agent shares: output lines, exit codes,
 * error reports, and the parsing of numbers and options (declared in agent.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <shmsock.h>

#include "agent.h"

#define MAX_SECONDS 1e9 /* longer --seconds / --timeout values are refused */

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
const char *code_name(uint32_t rc)
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

double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Message `i` of size `n`: byte `j` is (i + 31 * j + n) mod 256. */
void fill_message(uint8_t *message, uint64_t i, size_t n)
{
    uint8_t byte = (uint8_t)(i + n);
    for (size_t j = 0; j < n; j++, byte += 31) message[j] = byte;
}
