/*
 * The C interop agent: its command line (usage and dispatch) and the key
 * commands keygen and pubkey, on the C ABI of shmsock only (shmsock.h). The
 * other commands have a file each: serve (server.c), client (client.c),
 * publish and subscribe (topics.c); common.c holds what they share.
 *
 * The command line, the output lines and the exit codes are the contract in
 * tests/interop/README.md ("The agent command line"). Build it with
 * ./build.sh next to this file, run it with ./agent.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <shmsock.h>

#include "agent.h"

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
