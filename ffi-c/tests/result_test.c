/* Result codes, their strings, the thread-local last error, and the version. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "test_common.h"

#ifndef EXPECTED_VERSION
#error "the build passes EXPECTED_VERSION, the workspace version from Cargo.toml"
#endif

TEST(version_macros_equal_the_workspace_version)
{
    char header[32];
    snprintf(header, sizeof header, "%d.%d.%d", SHMSOCK_VERSION_MAJOR, SHMSOCK_VERSION_MINOR, SHMSOCK_VERSION_PATCH);
    CHECK(strcmp(header, EXPECTED_VERSION) == 0);
    CHECK(strcmp(SHMSOCK_VERSION, EXPECTED_VERSION) == 0);
    CHECK(strcmp(shmsock_version(), EXPECTED_VERSION) == 0);
}

TEST(result_codes_have_stable_values)
{
    /* The numbers are part of the ABI and equal the core's ErrorKind::code(). */
    CHECK(SHMSOCK_OK == 0);
    CHECK(SHMSOCK_TIMEOUT == 1);
    CHECK(SHMSOCK_WOULD_BLOCK == 2);
    CHECK(SHMSOCK_CLOSED == 3);
    CHECK(SHMSOCK_PEER_CLOSED == 4);
    CHECK(SHMSOCK_PEER_GONE == 5);
    CHECK(SHMSOCK_HANDSHAKE_REJECTED == 6);
    CHECK(SHMSOCK_SERVER_KEY_MISMATCH == 7);
    CHECK(SHMSOCK_AUTHENTICATION_FAILED == 8);
    CHECK(SHMSOCK_PROTOCOL_VERSION == 9);
    CHECK(SHMSOCK_NO_COMMON_CIPHER == 10);
    CHECK(SHMSOCK_PROTOCOL_VIOLATION == 11);
    CHECK(SHMSOCK_MESSAGE_TOO_LARGE == 12);
    CHECK(SHMSOCK_BUFFER_TOO_SMALL == 13);
    CHECK(SHMSOCK_INVALID_NAME == 14);
    CHECK(SHMSOCK_ADDRESS_IN_USE == 15);
    CHECK(SHMSOCK_NOT_FOUND == 16);
    CHECK(SHMSOCK_INVALID_KEY == 17);
    CHECK(SHMSOCK_INSECURE_KEY_FILE == 18);
    CHECK(SHMSOCK_INVALID_ARGUMENT == 19);
    CHECK(SHMSOCK_RESOURCE_EXHAUSTED == 20);
    CHECK(SHMSOCK_PERMISSION_DENIED == 21);
    CHECK(SHMSOCK_IO == 22);
    CHECK(SHMSOCK_NULL_ARGUMENT == 100);
    CHECK(SHMSOCK_INVALID_UTF8 == 101);
    CHECK(SHMSOCK_PANIC == 102);
    CHECK(sizeof(shmsock_result) == 4);
}

TEST(every_code_has_a_static_string)
{
    static const uint32_t codes[] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                                     14, 15, 16, 17, 18, 19, 20, 21, 22, 100, 101, 102};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = shmsock_result_str(codes[i]);
        const char *n = shmsock_result_name(codes[i]);
        CHECK(s != NULL && *s != '\0' && strcmp(s, "unknown result code") != 0);
        CHECK(n != NULL && strncmp(n, "SHMSOCK_", 8) == 0 && strcmp(n, "SHMSOCK_UNKNOWN") != 0);
        CHECK(shmsock_result_str(codes[i]) == s); /* static: the same pointer */
    }
    CHECK(strcmp(shmsock_result_name(SHMSOCK_TIMEOUT), "SHMSOCK_TIMEOUT") == 0);
    CHECK(strcmp(shmsock_result_str(SHMSOCK_TIMEOUT), "timed out") == 0);
    CHECK(strcmp(shmsock_result_str(23), "unknown result code") == 0);
    CHECK(strcmp(shmsock_result_name(99), "SHMSOCK_UNKNOWN") == 0);
    CHECK(strcmp(shmsock_result_str(UINT32_MAX), "unknown result code") == 0);
}

TEST(last_error_is_empty_at_first_and_kept_after_success)
{
    CHECK(strcmp(shmsock_last_error(), "") == 0);
    size_t n = 99;
    CHECK_OK(shmsock_last_error_message(NULL, 0, &n));
    CHECK(n == 0);
    CHECK_RC(shmsock_public_key_from_text("nonsense", (uint8_t[32]){0}, 32), SHMSOCK_INVALID_KEY);
    CHECK_LAST_ERROR_HAS("shmsock-pk:");
    shmsock_keypair *kp = new_keypair(); /* a success leaves the message */
    CHECK_LAST_ERROR_HAS("shmsock-pk:");
    shmsock_keypair_free(kp);
}

TEST(last_error_message_copies_and_shortens)
{
    CHECK_RC(shmsock_public_key_from_text("nonsense", (uint8_t[32]){0}, 32), SHMSOCK_INVALID_KEY);
    const char *full = shmsock_last_error();
    size_t full_len = strlen(full);
    CHECK(full_len > 20);

    char big[1024];
    size_t n = 0;
    CHECK_OK(shmsock_last_error_message(big, sizeof big, &n));
    CHECK(n == full_len);
    CHECK(strcmp(big, full) == 0);

    char small[8];
    memset(small, 'x', sizeof small);
    CHECK_RC(shmsock_last_error_message(small, sizeof small, &n), SHMSOCK_BUFFER_TOO_SMALL);
    CHECK(n == full_len);
    CHECK(strlen(small) == 7 && strncmp(small, full, 7) == 0);

    CHECK_RC(shmsock_last_error_message(NULL, 0, &n), SHMSOCK_BUFFER_TOO_SMALL);
    CHECK(n == full_len);
    CHECK_RC(shmsock_last_error_message(NULL, 5, &n), SHMSOCK_NULL_ARGUMENT);
    CHECK_OK(shmsock_last_error_message(big, sizeof big, NULL));
    /* Reading the message never changes it. */
    CHECK(strcmp(shmsock_last_error(), big) == 0);
}

static void *fail_in_thread(void *arg)
{
    (void)arg;
    CHECK(strcmp(shmsock_last_error(), "") == 0);
    CHECK_RC(shmsock_keypair_generate(NULL), SHMSOCK_NULL_ARGUMENT);
    CHECK_LAST_ERROR_HAS("'out'");
    return NULL;
}

TEST(last_error_is_per_thread)
{
    CHECK_RC(shmsock_public_key_from_text("nonsense", (uint8_t[32]){0}, 32), SHMSOCK_INVALID_KEY);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, fail_in_thread, NULL) == 0);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK_LAST_ERROR_HAS("shmsock-pk:");
}

TEST(cipher_names)
{
    CHECK(strcmp(shmsock_cipher_name(SHMSOCK_CIPHER_CHACHA20_POLY1305), "chacha20-poly1305") == 0);
    CHECK(strcmp(shmsock_cipher_name(SHMSOCK_CIPHER_AEGIS_128L), "aegis-128l") == 0);
    CHECK(strcmp(shmsock_cipher_name(0), "unknown") == 0);
}

TEST(forever_is_uint64_max)
{
    CHECK(SHMSOCK_FOREVER == UINT64_MAX);
}
