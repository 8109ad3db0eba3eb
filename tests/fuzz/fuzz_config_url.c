/*
 * Fuzz target: the configuration URLs: REDIS_URL
 * (dc_config_parse_redis_url) and DATABASE_URL (dc_db_check_conninfo,
 * libpq's parser behind our wrapper). Every input is tried as both.
 *
 * Input: the URL (up to the first NUL).
 *
 * Invariants: DC_OK ⇒ exactly one of host and unix socket; every field
 * terminated within its array; a host of [A-Za-z0-9.:_-]; a TCP port in
 * 1..65535; a socket path starting with '/'; db in 0..1000; err untouched.
 * DC_EINVAL ⇒ err.code is DC_EINVAL and err.str a non-empty message.
 */
#include "dc_config.h"
#include "dc_db.h"
#include "fuzz.h"

static void check_redis(const char *url)
{
    dc_redis_addr_t a;
    dc_err_t        err = { DC_OK, "" };
    int             rc;

    memset(&a, 0x5a, sizeof(a));
    rc = dc_config_parse_redis_url(url, &a, &err);
    if (rc != DC_OK) {
        FUZZ_CHECK(rc == DC_EINVAL && err.code == DC_EINVAL, "rc %d code %d", rc, err.code);
        FUZZ_CHECK(fuzz_terminated(err.str, sizeof(err.str)) && err.str[0] != '\0', "no message");
        return;
    }
    FUZZ_CHECK(err.code == DC_OK && err.str[0] == '\0', "err set on success");
    FUZZ_CHECK(fuzz_terminated(a.redis_host, sizeof(a.redis_host)) &&
                   fuzz_terminated(a.redis_unix, sizeof(a.redis_unix)) &&
                   fuzz_terminated(a.redis_user, sizeof(a.redis_user)) &&
                   fuzz_terminated(a.redis_password, sizeof(a.redis_password)),
               "unterminated field");
    FUZZ_CHECK((a.redis_host[0] != '\0') != (a.redis_unix[0] != '\0'), "host \"%s\" and socket \"%s\"",
               a.redis_host, a.redis_unix);
    FUZZ_CHECK(a.redis_db >= 0 && a.redis_db <= 1000, "db %d", a.redis_db);
    if (a.redis_unix[0] != '\0') {
        FUZZ_CHECK(a.redis_unix[0] == '/', "socket path \"%s\"", a.redis_unix);
        FUZZ_CHECK(strncmp(url, "unix://", 7) == 0, "socket from \"%s\"", url);
    } else {
        size_t n = strlen(a.redis_host);
        FUZZ_CHECK(
            strspn(a.redis_host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:_-") == n,
            "host \"%s\"", a.redis_host);
        FUZZ_CHECK(a.redis_port >= 1 && a.redis_port <= 65535, "port %d", a.redis_port);
        FUZZ_CHECK(strncmp(url, "redis://", 8) == 0, "TCP from \"%s\"", url);
    }
}

static void check_database(const char *url)
{
    dc_err_t err = { DC_OK, "" };
    int      rc = dc_db_check_conninfo(url, &err);

    if (rc == DC_OK) {
        FUZZ_CHECK(err.code == DC_OK && err.str[0] == '\0', "err set on success");
    } else {
        FUZZ_CHECK(rc == DC_EINVAL && err.code == DC_EINVAL, "rc %d code %d", rc, err.code);
        FUZZ_CHECK(strncmp(err.str, "DATABASE_URL is invalid: ", 25) == 0 && err.str[25] != '\0',
                   "message \"%s\"", err.str);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *url = fuzz_cstr(data, size);

    check_redis(url);
    check_database(url);
    free(url);
    return 0;
}
