/* Keypairs, key files and the text forms of public keys. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_common.h"

static void key_path(char *buf, size_t len, const char *file)
{
    snprintf(buf, len, "%s/%s-%d", runtime_dir(), file, (int)getpid());
}

TEST(generate_gives_distinct_keys)
{
    shmsock_keypair *a = new_keypair(), *b = new_keypair();
    uint8_t ka[SHMSOCK_KEY_LEN], kb[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_keypair_public_key(a, ka, sizeof ka));
    CHECK_OK(shmsock_keypair_public_key(b, kb, sizeof kb));
    CHECK(memcmp(ka, kb, sizeof ka) != 0);
    shmsock_keypair_free(a);
    shmsock_keypair_free(b);
}

TEST(text_form_round_trips)
{
    shmsock_keypair *kp = new_keypair();
    char text[SHMSOCK_PUBLIC_KEY_TEXT_SIZE];
    size_t n = 0;
    CHECK_OK(shmsock_keypair_public_key_text(kp, text, sizeof text, &n));
    CHECK(n == SHMSOCK_PUBLIC_KEY_TEXT_SIZE - 1 && strlen(text) == n);
    CHECK(strncmp(text, "shmsock-pk:", 11) == 0);

    uint8_t raw[SHMSOCK_KEY_LEN], parsed[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_keypair_public_key(kp, raw, sizeof raw));
    CHECK_OK(shmsock_public_key_from_text(text, parsed, sizeof parsed));
    CHECK(memcmp(raw, parsed, sizeof raw) == 0);

    /* White space around the text is ignored. */
    char padded[80];
    snprintf(padded, sizeof padded, "  %s\n", text);
    CHECK_OK(shmsock_public_key_from_text(padded, parsed, sizeof parsed));
    CHECK(memcmp(raw, parsed, sizeof raw) == 0);

    char again[SHMSOCK_PUBLIC_KEY_TEXT_SIZE];
    CHECK_OK(shmsock_public_key_to_text(raw, sizeof raw, again, sizeof again, NULL));
    CHECK(strcmp(text, again) == 0);
    shmsock_keypair_free(kp);
}

TEST(fingerprints_are_short_and_match)
{
    shmsock_keypair *kp = new_keypair();
    char fp[SHMSOCK_FINGERPRINT_SIZE], fp2[SHMSOCK_FINGERPRINT_SIZE];
    size_t n = 0;
    CHECK_OK(shmsock_keypair_fingerprint(kp, fp, sizeof fp, &n));
    CHECK(n == 19 && fp[4] == ':' && fp[9] == ':' && fp[14] == ':');
    uint8_t raw[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_keypair_public_key(kp, raw, sizeof raw));
    CHECK_OK(shmsock_public_key_fingerprint(raw, sizeof raw, fp2, sizeof fp2, NULL));
    CHECK(strcmp(fp, fp2) == 0);
    shmsock_keypair_free(kp);
}

TEST(text_buffers_too_small_write_nothing)
{
    shmsock_keypair *kp = new_keypair();
    char text[SHMSOCK_PUBLIC_KEY_TEXT_SIZE - 1];
    memset(text, 'x', sizeof text);
    size_t n = 0;
    CHECK_RC(shmsock_keypair_public_key_text(kp, text, sizeof text, &n), SHMSOCK_BUFFER_TOO_SMALL);
    CHECK(n == SHMSOCK_PUBLIC_KEY_TEXT_SIZE - 1); /* the length needed, without the NUL */
    CHECK(text[0] == 'x');
    CHECK_RC(shmsock_keypair_public_key_text(kp, NULL, 0, &n), SHMSOCK_BUFFER_TOO_SMALL);
    uint8_t raw[SHMSOCK_KEY_LEN - 1];
    CHECK_RC(shmsock_keypair_public_key(kp, raw, sizeof raw), SHMSOCK_BUFFER_TOO_SMALL);
    char fp[10];
    CHECK_RC(shmsock_keypair_fingerprint(kp, fp, sizeof fp, NULL), SHMSOCK_BUFFER_TOO_SMALL);
    shmsock_keypair_free(kp);
}

TEST(malformed_text_is_invalid_key)
{
    uint8_t out[SHMSOCK_KEY_LEN];
    CHECK_RC(shmsock_public_key_from_text("", out, sizeof out), SHMSOCK_INVALID_KEY);
    CHECK_RC(shmsock_public_key_from_text("shmsock-pk:!!!!", out, sizeof out), SHMSOCK_INVALID_KEY);
    CHECK_LAST_ERROR_HAS("base64url");
    CHECK_RC(shmsock_public_key_from_text("shmsock-pk:AAAA", out, sizeof out), SHMSOCK_INVALID_KEY);
    CHECK_RC(shmsock_public_key_from_text("shmsock-sk:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", out, sizeof out),
             SHMSOCK_INVALID_KEY);
    CHECK_RC(shmsock_public_key_from_text("shmsock-pk:\xff\xfe", out, sizeof out), SHMSOCK_INVALID_UTF8);
    CHECK_RC(shmsock_public_key_to_text(out, 31, (char[64]){0}, 64, NULL), SHMSOCK_INVALID_KEY);
}

TEST(from_secret_is_deterministic)
{
    uint8_t secret[SHMSOCK_KEY_LEN];
    memset(secret, 7, sizeof secret);
    shmsock_keypair *a = NULL, *b = NULL;
    CHECK_OK(shmsock_keypair_from_secret(secret, sizeof secret, &a));
    CHECK_OK(shmsock_keypair_from_secret(secret, sizeof secret, &b));
    uint8_t ka[SHMSOCK_KEY_LEN], kb[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_keypair_public_key(a, ka, sizeof ka));
    CHECK_OK(shmsock_keypair_public_key(b, kb, sizeof kb));
    CHECK(memcmp(ka, kb, sizeof ka) == 0);
    shmsock_keypair *c = (shmsock_keypair *)0x1;
    CHECK_RC(shmsock_keypair_from_secret(secret, 16, &c), SHMSOCK_INVALID_KEY);
    CHECK(c == (shmsock_keypair *)0x1); /* not written on failure */
    shmsock_keypair_free(a);
    shmsock_keypair_free(b);
}

TEST(save_and_load_round_trip)
{
    char path[512];
    key_path(path, sizeof path, "id.key");
    shmsock_keypair *kp = new_keypair();
    CHECK_OK(shmsock_keypair_save(kp, path));
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);

    shmsock_keypair *loaded = NULL;
    CHECK_OK(shmsock_keypair_load(path, &loaded));
    uint8_t a[SHMSOCK_KEY_LEN], b[SHMSOCK_KEY_LEN];
    CHECK_OK(shmsock_keypair_public_key(kp, a, sizeof a));
    CHECK_OK(shmsock_keypair_public_key(loaded, b, sizeof b));
    CHECK(memcmp(a, b, sizeof a) == 0);

    /* An identity is never overwritten by accident. */
    CHECK_RC(shmsock_keypair_save(kp, path), SHMSOCK_INVALID_ARGUMENT);
    CHECK_LAST_ERROR_HAS("already exists");
    shmsock_keypair_free(kp);
    shmsock_keypair_free(loaded);
    unlink(path);
}

TEST(key_file_readable_by_others_is_refused)
{
    char path[512];
    key_path(path, sizeof path, "open.key");
    shmsock_keypair *kp = new_keypair();
    CHECK_OK(shmsock_keypair_save(kp, path));
    CHECK(chmod(path, 0644) == 0);
    shmsock_keypair *loaded = NULL;
    CHECK_RC(shmsock_keypair_load(path, &loaded), SHMSOCK_INSECURE_KEY_FILE);
    CHECK_LAST_ERROR_HAS("chmod 600");
    CHECK(loaded == NULL);
    shmsock_keypair_free(kp);
    unlink(path);
}

TEST(missing_key_file_is_not_found)
{
    shmsock_keypair *kp = NULL;
    CHECK_RC(shmsock_keypair_load("/nonexistent/shmsock/key", &kp), SHMSOCK_NOT_FOUND);
    CHECK(kp == NULL);
}

TEST(malformed_key_file_is_invalid_key)
{
    char path[512];
    key_path(path, sizeof path, "bad.key");
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    fputs("public-key: shmsock-pk:AAAA\nsecret-key: nope\n", f);
    fclose(f);
    CHECK(chmod(path, 0600) == 0);
    shmsock_keypair *kp = NULL;
    CHECK_RC(shmsock_keypair_load(path, &kp), SHMSOCK_INVALID_KEY);
    unlink(path);
}

TEST(saving_into_a_missing_directory_is_io)
{
    shmsock_keypair *kp = new_keypair();
    CHECK_RC(shmsock_keypair_save(kp, "/nonexistent-shmsock-dir/id.key"), SHMSOCK_IO);
    shmsock_keypair_free(kp);
}
