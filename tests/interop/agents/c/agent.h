/*
 * What the files of the C interop agent share: output, exit codes and argument
 * parsing (common.c), and the command of each file: agent.c (usage, keygen,
 * pubkey, main), server.c (serve), client.c (client), topics.c (publish,
 * subscribe).
 */
#ifndef SHMSOCK_INTEROP_AGENT_H
#define SHMSOCK_INTEROP_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <shmsock.h>

enum { EXIT_VERIFY = 1, EXIT_USAGE = 2, EXIT_SHMSOCK = 3 };

/* One stdout line, flushed at once; whole even when threads print at once. */
void say(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* Prints a usage error on stderr; returns EXIT_USAGE. */
int usage_error(const char *format, ...) __attribute__((format(printf, 1, 2)));
/* Reports the failure `rc` of the last shmsock call on this thread; returns EXIT_SHMSOCK. */
int shmsock_error(shmsock_result rc);
/* The stable name of a result code: "SHMSOCK_TIMEOUT" -> "TIMEOUT". */
const char *code_name(uint32_t rc);
void fingerprint_of(const uint8_t key[SHMSOCK_KEY_LEN], char out[SHMSOCK_FINGERPRINT_SIZE]);
/* A decimal number that fits 32 bits. */
bool parse_u32(const char *text, uint32_t *out);
/* A positive number of seconds, at most 1e9. */
bool parse_seconds(const char *text, double *out);
/* Parses a comma-separated --sizes list into a new array (free it); 0 or an exit status. */
int parse_sizes(const char *text, uint32_t **out, size_t *count);
/* Takes the value of option argv[*i] into *slot (once); 0 or an exit status. */
int take(int argc, char **argv, int *i, const char **slot);
/* Message `i` of size `n`: byte `j` is (i + 31 * j + n) mod 256. */
void fill_message(uint8_t *message, uint64_t i, size_t n);
/* Seconds on the monotonic clock. */
double now_seconds(void);

/* The echo server (server.c) and its checking client (client.c). */
int serve(int argc, char **argv);
int client(int argc, char **argv);

/* The topic commands (topics.c). */
int publish(int argc, char **argv);
int subscribe(int argc, char **argv);

#endif
