/* Compiled by ctest with -Wall -Wextra -Werror -pedantic as C99 and as C++17:
 * the header must be clean in both. Uses every kind of declaration once. */
#include "shmsock.h"

static void on_data(void *user_data, const uint8_t *data, size_t len)
{
    (void)user_data;
    (void)data;
    (void)len;
}

int main(void)
{
    shmsock_client_callbacks cb = {on_data, NULL, NULL};
    shmsock_stats stats = {0, 0, 0, 0};
    shmsock_result rc = SHMSOCK_OK;
    shmsock_cipher cipher = SHMSOCK_CIPHER_AEGIS_128L;
    shmsock_backend backend = SHMSOCK_BACKEND_MEMFD;
    uint64_t forever = SHMSOCK_FOREVER;
    char key_text[SHMSOCK_PUBLIC_KEY_TEXT_SIZE];
    (void)cb;
    (void)stats;
    (void)cipher;
    (void)backend;
    (void)forever;
    (void)key_text;
    return (int)rc + SHMSOCK_VERSION_MAJOR * 0;
}
