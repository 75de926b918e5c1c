/* Small helpers shared by the C examples: errors, key files, pinned keys.
 * They mirror examples/rust/src/lib.rs, so every language's examples take the
 * same arguments. */
#ifndef SHMSOCK_EXAMPLE_KEYS_H
#define SHMSOCK_EXAMPLE_KEYS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <shmsock.h>

/* Exits with a one-line error: the failed step and the library's explanation. */
static inline void die(const char *context, shmsock_result rc)
{
    fprintf(stderr, "error: %s: %s (%s)\n", context, shmsock_last_error(), shmsock_result_name(rc));
    exit(1);
}

/* Loads the keypair in `path`, or makes one and saves it there (mode 0600). */
static inline shmsock_keypair *load_or_create(const char *path)
{
    shmsock_keypair *kp = NULL;
    shmsock_result rc = shmsock_keypair_load(path, &kp);
    if (rc == SHMSOCK_NOT_FOUND) {
        if ((rc = shmsock_keypair_generate(&kp)) != SHMSOCK_OK) die("key", rc);
        if ((rc = shmsock_keypair_save(kp, path)) != SHMSOCK_OK) die("key", rc);
    } else if (rc != SHMSOCK_OK) {
        die("key", rc);
    }
    return kp;
}

/* The text form of a keypair's public key, in a static buffer. */
static inline const char *public_key_text(const shmsock_keypair *kp)
{
    static char text[SHMSOCK_PUBLIC_KEY_TEXT_SIZE];
    shmsock_result rc = shmsock_keypair_public_key_text(kp, text, sizeof text, NULL);
    if (rc != SHMSOCK_OK) die("key", rc);
    return text;
}

/* A key to pin, given as text (shmsock-pk:...) or as the path of the peer's
 * key file, whose public half is taken. */
static inline void public_key_arg(const char *arg, uint8_t key[SHMSOCK_KEY_LEN])
{
    shmsock_result rc;
    if (strncmp(arg, "shmsock-pk:", 11) == 0) {
        rc = shmsock_public_key_from_text(arg, key, SHMSOCK_KEY_LEN);
    } else {
        shmsock_keypair *kp = NULL;
        rc = shmsock_keypair_load(arg, &kp);
        if (rc == SHMSOCK_OK) rc = shmsock_keypair_public_key(kp, key, SHMSOCK_KEY_LEN);
        shmsock_keypair_free(kp);
    }
    if (rc != SHMSOCK_OK) die("server key", rc);
}

#endif
