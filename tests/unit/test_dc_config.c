/*
 * dc_config: defaults with an empty environment, the bounds and error
 * message of every integer variable, per-type TTLs and their inheritance,
 * the REDIS_URL forms accepted and refused, DATABASE_URL and LOG_LEVEL.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dc_config.h"

#define ERR_LEN 512

typedef struct {
    const char *name;
    size_t      offset;
    int         def;
    int         min;
    int         max;
} int_var_t;

#define VAR(name, field, def, min, max)                   \
    {                                                     \
        name, offsetof(dc_config_t, field), def, min, max \
    }

static const int_var_t int_vars[] = {
    VAR("REDIS_CONNECT_TIMEOUT_MS", redis_connect_timeout_ms, 100, 1, 60000),
    VAR("REDIS_COMMAND_TIMEOUT_MS", redis_command_timeout_ms, 100, 1, 60000),
    VAR("REDIS_RETRY_INTERVAL_MS", redis_retry_interval_ms, 1000, 0, 600000),
    VAR("DB_CONNECT_TIMEOUT_SECONDS", db_connect_timeout_s, 2, 1, 300),
    VAR("DB_STATEMENT_TIMEOUT_MS", db_statement_timeout_ms, 5000, 1, 3600000),
    VAR("DB_RETRY_INTERVAL_MS", db_retry_interval_ms, 1000, 0, 600000),
    VAR("DEVICE_ONLINE_SECONDS", device_online_s, 600, 1, 604800),
    VAR("RETRY_AFTER_SECONDS", retry_after_s, 5, 1, 3600),
    VAR("AUTH_CLOCK_SKEW_SECONDS", auth.clock_skew_s, 30, 0, 600),
    VAR("INGEST_MAX_FUTURE_SECONDS", ingest_max_future_s, 300, 0, 86400),
    VAR("READINGS_RETENTION_DAYS", readings_retention_days, 30, 1, 3650),
    VAR("IDEMPOTENCY_KEY_TTL_SECONDS", idempotency_ttl_s, 86400, 60, 604800),
    VAR("CONSISTENCY_SAMPLE_PER_S", consistency_per_s, 2, 0, 100),
    VAR("FCGI_IO_TIMEOUT_MS", fcgi_io_timeout_ms, 5000, 100, 600000),
    VAR("CACHE_TTL_SECONDS", ttl[DC_Q_STATS], 60, 1, 86400),
    VAR("CACHE_TTL_STATS_SECONDS", ttl[DC_Q_STATS], 60, 1, 86400),
    VAR("CACHE_TTL_UNITS_SECONDS", ttl[DC_Q_UNITS], 60, 1, 86400),
    VAR("CACHE_TTL_ALERTS_SECONDS", ttl[DC_Q_ALERTS], 60, 1, 86400),
    VAR("CACHE_TTL_TEMPERATURE_SECONDS", ttl[DC_Q_TEMPERATURE], 60, 1, 86400),
    VAR("CACHE_TTL_DEVICES_SECONDS", ttl[DC_Q_DEVICES], 60, 1, 86400),
    VAR("CACHE_TTL_COMPLIANCE_SECONDS", ttl[DC_Q_COMPLIANCE], 60, 1, 86400),
};

static const char *const ttl_vars[DC_Q_AUDIT] = {
    [DC_Q_STATS] = "CACHE_TTL_STATS_SECONDS",     [DC_Q_UNITS] = "CACHE_TTL_UNITS_SECONDS",
    [DC_Q_ALERTS] = "CACHE_TTL_ALERTS_SECONDS",   [DC_Q_TEMPERATURE] = "CACHE_TTL_TEMPERATURE_SECONDS",
    [DC_Q_DEVICES] = "CACHE_TTL_DEVICES_SECONDS", [DC_Q_COMPLIANCE] = "CACHE_TTL_COMPLIANCE_SECONDS",
};

static const char *const other_vars[] = { "DATABASE_URL",
                                          "REDIS_URL",
                                          "LOG_LEVEL",
                                          "FCGI_WEB_SERVER_ADDRS",
                                          "AUTH_MODE",
                                          "AUTH_KEYS_FILE",
                                          "AUTH_ISSUER",
                                          "AUTH_AUDIENCE",
                                          "CACHE",
                                          "METRICS",
                                          "REDIS_CLUSTER_NODES",
                                          "REDIS_SENTINELS",
                                          "REDIS_MASTER_NAME",
                                          "REDIS_SENTINEL_PASSWORD" };

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(int_vars); i++)
        unsetenv(int_vars[i].name);
    for (size_t i = 0; i < DC_ARRAY_LEN(other_vars); i++)
        unsetenv(other_vars[i]);
    return 0;
}

static int field(const dc_config_t *cfg, const int_var_t *v)
{
    return *(const int *)((const char *)cfg + v->offset);
}

static void set(const char *name, const char *value)
{
    assert_int_equal(setenv(name, value, 1), 0);
}

static void load_ok(dc_config_t *cfg)
{
    if (dc_config_load(cfg) != DC_OK)
        fail_msg("dc_config_load: %s", cfg->err.str);
}

static void load_fails(const char *want)
{
    dc_config_t cfg;

    assert_int_equal(dc_config_load(&cfg), DC_EINVAL);
    assert_int_equal(cfg.err.code, DC_EINVAL);
    assert_string_equal(cfg.err.str, want);
}

static void load_fails_prefix(const char *prefix)
{
    dc_config_t cfg;

    assert_int_equal(dc_config_load(&cfg), DC_EINVAL);
    if (strncmp(cfg.err.str, prefix, strlen(prefix)) != 0)
        fail_msg("error \"%s\" does not start with \"%s\"", cfg.err.str, prefix);
}

static void assert_int_rejected(const int_var_t *v, const char *value)
{
    dc_config_t cfg;
    char        want[ERR_LEN];

    set(v->name, value);
    if (dc_config_load(&cfg) != DC_EINVAL)
        fail_msg("%s=\"%s\" was accepted as %d", v->name, value, field(&cfg, v));
    snprintf(want, sizeof(want), "%s must be an integer between %d and %d (got \"%s\")", v->name, v->min,
             v->max, value);
    assert_string_equal(cfg.err.str, want);
    unsetenv(v->name);
}

static void assert_int_accepted(const int_var_t *v, const char *value, int want)
{
    dc_config_t cfg;

    set(v->name, value);
    load_ok(&cfg);
    if (field(&cfg, v) != want)
        fail_msg("%s=\"%s\" gave %d, want %d", v->name, value, field(&cfg, v), want);
    unsetenv(v->name);
}

static void test_defaults(void **state)
{
    dc_config_t cfg;

    (void)state;
    memset(&cfg, 0x5a, sizeof(cfg));
    load_ok(&cfg);
    for (size_t i = 0; i < DC_ARRAY_LEN(int_vars); i++)
        if (field(&cfg, &int_vars[i]) != int_vars[i].def)
            fail_msg("%s default %d, want %d", int_vars[i].name, field(&cfg, &int_vars[i]), int_vars[i].def);
    for (int q = 0; q < DC_Q_AUDIT; q++)
        assert_int_equal(cfg.ttl[q], 60);
    assert_string_equal(cfg.database_url, DC_DEFAULT_DATABASE_URL);
    assert_string_equal(cfg.redis.redis_host, "127.0.0.1");
    assert_int_equal(cfg.redis.redis_port, 26379);
    assert_int_equal(cfg.redis.redis_db, 0);
    assert_string_equal(cfg.redis.redis_unix, "");
    assert_string_equal(cfg.redis.redis_user, "");
    assert_string_equal(cfg.redis.redis_password, "");
    assert_int_equal(cfg.log_level, DC_LOG_INFO);
    assert_int_equal(cfg.cache_enabled, 1);
    assert_int_equal(cfg.metrics_enabled, 1);
}

static void test_empty_values_are_defaults(void **state)
{
    dc_config_t cfg;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(int_vars); i++)
        set(int_vars[i].name, "");
    for (size_t i = 0; i < DC_ARRAY_LEN(other_vars); i++)
        set(other_vars[i], "");
    load_ok(&cfg);
    for (size_t i = 0; i < DC_ARRAY_LEN(int_vars); i++)
        assert_int_equal(field(&cfg, &int_vars[i]), int_vars[i].def);
    assert_string_equal(cfg.database_url, DC_DEFAULT_DATABASE_URL);
    assert_int_equal(cfg.redis.redis_port, 26379);
    assert_int_equal(cfg.log_level, DC_LOG_INFO);
    assert_int_equal(cfg.cache_enabled, 1);
    assert_int_equal(cfg.metrics_enabled, 1);
}

static void test_int_bounds(void **state)
{
    char value[32];

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(int_vars); i++) {
        const int_var_t *v = &int_vars[i];

        snprintf(value, sizeof(value), "%d", v->min);
        assert_int_accepted(v, value, v->min);
        snprintf(value, sizeof(value), "%d", v->max);
        assert_int_accepted(v, value, v->max);
        snprintf(value, sizeof(value), "%d", v->min - 1);
        assert_int_rejected(v, value);
        snprintf(value, sizeof(value), "%d", v->max + 1);
        assert_int_rejected(v, value);
    }
}

static void test_int_not_a_number(void **state)
{
    static const char *const bad[] = {
        "abc",
        " 5",
        "5 ",
        "+5",
        "5s",
        "5.0",
        "1e3",
        "0x10",
        "-",
        "--5",
        "5,000",
        "99999999999999999999",
        "-99999999999999999999",
        "2147483648",
        "4294967301",
    };

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(int_vars); i++)
        for (size_t j = 0; j < DC_ARRAY_LEN(bad); j++)
            assert_int_rejected(&int_vars[i], bad[j]);
}

/* " 5" is refused explicitly; other white space must not slip past strtol. */
static void test_int_leading_whitespace(void **state)
{
    static const char *const bad[] = { "\t5", "\n5", "\v5", "\f5", "\r5" };

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(int_vars); i++)
        for (size_t j = 0; j < DC_ARRAY_LEN(bad); j++)
            assert_int_rejected(&int_vars[i], bad[j]);
}

static void test_int_error_message(void **state)
{
    (void)state;
    set("CACHE_TTL_SECONDS", "abc");
    load_fails("CACHE_TTL_SECONDS must be an integer between 1 and 86400 (got \"abc\")");
    unsetenv("CACHE_TTL_SECONDS");
    set("REDIS_RETRY_INTERVAL_MS", "-1");
    load_fails("REDIS_RETRY_INTERVAL_MS must be an integer between 0 and 600000 (got \"-1\")");
}

static void test_int_error_quotes_at_most_64_bytes(void **state)
{
    char value[200];
    char want[ERR_LEN];

    (void)state;
    memset(value, '9', sizeof(value) - 1);
    value[sizeof(value) - 1] = '\0';
    set("RETRY_AFTER_SECONDS", value);
    snprintf(want, sizeof(want), "RETRY_AFTER_SECONDS must be an integer between 1 and 3600 (got \"%.64s\")",
             value);
    load_fails(want);
}

/* A value longer than the message can hold is cut, the message stays terminated; success clears it. */
static void test_error_is_bounded_and_cleared(void **state)
{
    dc_config_t cfg;
    char        big[1200];

    (void)state;
    memset(big, '9', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    set("CACHE_TTL_SECONDS", big);
    assert_int_equal(dc_config_load(&cfg), DC_EINVAL);
    assert_true(strlen(cfg.err.str) < sizeof(cfg.err.str));
    assert_true(strncmp(cfg.err.str, "CACHE_TTL_SECONDS must be", 25) == 0);
    set("CACHE_TTL_SECONDS", "1");
    set("REDIS_URL", "http://x");
    assert_int_equal(dc_config_load(&cfg), DC_EINVAL);
    assert_true(strncmp(cfg.err.str, "REDIS_URL is invalid: ", 22) == 0);
    unsetenv("REDIS_URL");
    assert_int_equal(dc_config_load(&cfg), DC_OK);
    assert_int_equal(cfg.err.code, DC_OK);
    assert_string_equal(cfg.err.str, "");
}

static void test_ttl_inherits_cache_ttl(void **state)
{
    dc_config_t cfg;

    (void)state;
    set("CACHE_TTL_SECONDS", "30");
    load_ok(&cfg);
    for (int q = 0; q < DC_Q_AUDIT; q++)
        assert_int_equal(cfg.ttl[q], 30);
}

static void test_ttl_per_type_override(void **state)
{
    dc_config_t cfg;

    (void)state;
    for (int q = 0; q < DC_Q_AUDIT; q++) {
        set("CACHE_TTL_SECONDS", "30");
        set(ttl_vars[q], "7");
        load_ok(&cfg);
        for (int o = 0; o < DC_Q_AUDIT; o++)
            if (cfg.ttl[o] != (o == q ? 7 : 30))
                fail_msg("%s=7: ttl[%s] is %d", ttl_vars[q], dc_qtype_name((dc_qtype_t)o), cfg.ttl[o]);
        unsetenv("CACHE_TTL_SECONDS");
        load_ok(&cfg);
        for (int o = 0; o < DC_Q_AUDIT; o++)
            assert_int_equal(cfg.ttl[o], o == q ? 7 : 60);
        unsetenv(ttl_vars[q]);
    }
}

static void test_ttl_all_overrides_at_once(void **state)
{
    char        value[16];
    dc_config_t cfg;

    (void)state;
    set("CACHE_TTL_SECONDS", "30");
    for (int q = 0; q < DC_Q_AUDIT; q++) {
        snprintf(value, sizeof(value), "%d", 100 + q);
        set(ttl_vars[q], value);
    }
    load_ok(&cfg);
    for (int q = 0; q < DC_Q_AUDIT; q++)
        assert_int_equal(cfg.ttl[q], 100 + q);
}

static void test_ttl_bad_override_named(void **state)
{
    (void)state;
    set("CACHE_TTL_SECONDS", "30");
    set("CACHE_TTL_DEVICES_SECONDS", "0");
    load_fails("CACHE_TTL_DEVICES_SECONDS must be an integer between 1 and 86400 (got \"0\")");
    set("CACHE_TTL_DEVICES_SECONDS", "10");
    set("CACHE_TTL_SECONDS", "86401");
    load_fails("CACHE_TTL_SECONDS must be an integer between 1 and 86400 (got \"86401\")");
}

typedef struct {
    const char *url;
    const char *host;
    int         port;
    const char *unix_path;
    int         db;
    const char *user;
    const char *password;
} redis_case_t;

static void assert_redis(const redis_case_t *c)
{
    dc_redis_addr_t a;
    dc_err_t        err = { 0, "" };

    memset(&a, 0x5a, sizeof(a));
    if (dc_config_parse_redis_url(c->url, &a, &err) != DC_OK)
        fail_msg("%s: %s", c->url, err.str);
    assert_string_equal(a.redis_host, c->host);
    if (c->unix_path[0] == '\0')
        assert_int_equal(a.redis_port, c->port);
    assert_string_equal(a.redis_unix, c->unix_path);
    assert_int_equal(a.redis_db, c->db);
    assert_string_equal(a.redis_user, c->user);
    assert_string_equal(a.redis_password, c->password);
}

static void test_redis_url_forms(void **state)
{
    static const redis_case_t ok[] = {
        { "redis://host", "host", 6379, "", 0, "", "" },
        { "redis://127.0.0.1", "127.0.0.1", 6379, "", 0, "", "" },
        { "redis://redis.internal-1.example.com", "redis.internal-1.example.com", 6379, "", 0, "", "" },
        { "redis://host:6380", "host", 6380, "", 0, "", "" },
        { "redis://host:1", "host", 1, "", 0, "", "" },
        { "redis://host:65535", "host", 65535, "", 0, "", "" },
        { "redis://host/3", "host", 6379, "", 3, "", "" },
        { "redis://host/", "host", 6379, "", 0, "", "" },
        { "redis://host/1000", "host", 6379, "", 1000, "", "" },
        { "redis://host:6380/15", "host", 6380, "", 15, "", "" },
        { "redis://:secret@host", "host", 6379, "", 0, "", "secret" },
        { "redis://user:secret@host", "host", 6379, "", 0, "user", "secret" },
        { "redis://user:@host", "host", 6379, "", 0, "user", "" },
        { "redis://user:pa:ss@host", "host", 6379, "", 0, "user", "pa:ss" },
        { "redis://default:pw@10.0.0.7:7000/2", "10.0.0.7", 7000, "", 2, "default", "pw" },
        { "redis://[::1]", "::1", 6379, "", 0, "", "" },
        { "redis://[::1]:6380", "::1", 6380, "", 0, "", "" },
        { "redis://[::1]:6380/4", "::1", 6380, "", 4, "", "" },
        { "redis://:pw@[fe80::1]:6381", "fe80::1", 6381, "", 0, "", "pw" },
        { DC_DEFAULT_REDIS_URL, "127.0.0.1", 26379, "", 0, "", "" },
        { "unix:///run/redis/redis.sock", "", 0, "/run/redis/redis.sock", 0, "", "" },
        { "unix:///run/redis.sock?db=2", "", 0, "/run/redis.sock", 2, "", "" },
        { "unix:///tmp/r.sock?db=0", "", 0, "/tmp/r.sock", 0, "", "" },
    };

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(ok); i++)
        assert_redis(&ok[i]);
}

static void test_redis_url_rejects(void **state)
{
    static const char *const bad[] = {
        "",
        "host:6379",
        "http://host",
        "rediss://host",
        "REDIS://host",
        "redis:/host",
        "redis://",
        "redis:///0",
        "redis://:6379",
        "redis://host:",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:70000",
        "redis://host:abc",
        "redis://host:-1",
        "redis://host:+80",
        "redis://host: 80",
        "redis://host:99999999999999999999",
        "redis://host:6379:1",
        "redis://host/abc",
        "redis://host/1001",
        "redis://host/-1",
        "redis://host/1/2",
        "redis://host/ 1",
        "redis://host?db=1",
        "redis://ho st",
        "redis://host*",
        "redis://user@host",
        "redis://[::1",
        "redis://[::1:6379",
        "redis://[::1]x",
        "redis://[::1]6379",
        "redis://[]:6379",
        "unix://",
        "unix://relative.sock",
        "unix:///run/redis.sock?db=",
        "unix:///run/redis.sock?db=x",
        "unix:///run/redis.sock?db=1001",
        "unix:///run/redis.sock?foo=1",
        "unix:///run/redis.sock?",
        "unix://?db=1",
    };
    dc_redis_addr_t a;
    dc_err_t        err;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++) {
        err.str[0] = '\0';
        if (dc_config_parse_redis_url(bad[i], &a, &err) != DC_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        if (err.str[0] == '\0' || err.code != DC_EINVAL || strstr(err.str, "REDIS_URL") != NULL)
            fail_msg("\"%s\": error \"%s\"", bad[i], err.str);
    }
}

/* Same rule as the integer variables: only digits, no white space strtol would skip. */
static void test_redis_url_whitespace_in_numbers(void **state)
{
    static const char *const bad[] = {
        "redis://host:\t6380",
        "redis://host:\n6380",
        "redis://host/\t2",
        "unix:///run/redis.sock?db=\t2",
    };
    dc_redis_addr_t a;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++)
        if (dc_config_parse_redis_url(bad[i], &a, NULL) != DC_EINVAL)
            fail_msg("accepted \"%s\" (port %d, db %d)", bad[i], a.redis_port, a.redis_db);
}

static void test_redis_url_length_limits(void **state)
{
    char            url[600];
    dc_redis_addr_t a;
    dc_err_t        err;

    (void)state;
    snprintf(url, sizeof(url), "unix:///%0254d", 0);
    assert_int_equal(dc_config_parse_redis_url(url, &a, &err), DC_OK);
    assert_int_equal(strlen(a.redis_unix), 255);
    snprintf(url, sizeof(url), "unix:///%0255d", 0);
    assert_int_equal(dc_config_parse_redis_url(url, &a, &err), DC_EINVAL);

    snprintf(url, sizeof(url), "redis://%0255d", 0);
    assert_int_equal(dc_config_parse_redis_url(url, &a, &err), DC_OK);
    assert_int_equal(strlen(a.redis_host), 255);
    snprintf(url, sizeof(url), "redis://%0256d", 0);
    assert_int_equal(dc_config_parse_redis_url(url, &a, &err), DC_EINVAL);

    snprintf(url, sizeof(url), "redis://:%0256d@host", 0);
    assert_int_equal(dc_config_parse_redis_url(url, &a, &err), DC_EINVAL);
    snprintf(url, sizeof(url), "redis://%0128d:pw@host", 0);
    assert_int_equal(dc_config_parse_redis_url(url, &a, &err), DC_EINVAL);
}

static void test_redis_url_in_environment(void **state)
{
    dc_config_t cfg;

    (void)state;
    set("REDIS_URL", "redis://u:p@cache.local:6390/5");
    load_ok(&cfg);
    assert_string_equal(cfg.redis.redis_host, "cache.local");
    assert_int_equal(cfg.redis.redis_port, 6390);
    assert_int_equal(cfg.redis.redis_db, 5);
    assert_string_equal(cfg.redis.redis_user, "u");
    assert_string_equal(cfg.redis.redis_password, "p");

    set("REDIS_URL", "unix:///run/r.sock?db=2");
    load_ok(&cfg);
    assert_string_equal(cfg.redis.redis_unix, "/run/r.sock");
    assert_string_equal(cfg.redis.redis_host, "");
    assert_int_equal(cfg.redis.redis_db, 2);

    set("REDIS_URL", "redis://host:0");
    load_fails("REDIS_URL is invalid: port must be an integer between 1 and 65535 (got \"0\")");
    set("REDIS_URL", "http://host");
    load_fails_prefix("REDIS_URL is invalid: ");
    set("REDIS_URL", "redis://[::1");
    load_fails("REDIS_URL is invalid: unclosed [ in the host");
}

/* REDIS_CLUSTER_NODES: seeds, each host:port; unset is one Redis (REDIS_URL's). */
static void test_cluster_nodes(void **state)
{
    dc_config_t cfg;

    (void)state;
    load_ok(&cfg);
    assert_int_equal(cfg.redis_cluster_n, 0);
    set("REDIS_CLUSTER_NODES", "127.0.0.1:7001,redis-b.local:7002,[::1]:7003");
    set("REDIS_URL", "redis://:secret@127.0.0.1:7001/0");
    load_ok(&cfg);
    assert_int_equal(cfg.redis_cluster_n, 3);
    assert_string_equal(cfg.redis_cluster[0].host, "127.0.0.1");
    assert_int_equal(cfg.redis_cluster[0].port, 7001);
    assert_string_equal(cfg.redis_cluster[1].host, "redis-b.local");
    assert_string_equal(cfg.redis_cluster[2].host, "::1");
    assert_int_equal(cfg.redis_cluster[2].port, 7003);
    assert_string_equal(cfg.redis.redis_password, "secret");

    set("REDIS_URL", "redis://127.0.0.1:7001/1");
    load_fails_prefix("REDIS_URL must name database 0 ");
    unsetenv("REDIS_URL");
    set("REDIS_CLUSTER_NODES", "127.0.0.1");
    load_fails("REDIS_CLUSTER_NODES: node 1 must be host:port (got \"127.0.0.1\")");
    set("REDIS_CLUSTER_NODES", "127.0.0.1:7001,");
    load_fails("REDIS_CLUSTER_NODES: node 2 must be host:port (got \"\")");
    set("REDIS_CLUSTER_NODES", "127.0.0.1:0");
    load_fails_prefix("REDIS_CLUSTER_NODES: node 1 must be host:port with a port between 1 and 65535");
    set("REDIS_CLUSTER_NODES", "127.0.0.1:70000");
    load_fails_prefix("REDIS_CLUSTER_NODES: node 1 must be host:port with a port");
    set("REDIS_CLUSTER_NODES", "a b:1");
    load_fails_prefix("REDIS_CLUSTER_NODES: node 1 must be host:port with a port");
    set("REDIS_CLUSTER_NODES", "a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8,a:9,a:10,a:11,a:12,a:13,a:14,a:15,a:16,a:17");
    load_fails("REDIS_CLUSTER_NODES: at most 16 nodes");
    set("REDIS_CLUSTER_NODES", "127.0.0.1:7001");
    set("REDIS_SENTINELS", "127.0.0.1:26379");
    load_fails("REDIS_CLUSTER_NODES and REDIS_SENTINELS are both set: give one of them");
    unsetenv("REDIS_SENTINELS");
    unsetenv("REDIS_CLUSTER_NODES");
}

/* REDIS_SENTINELS, REDIS_MASTER_NAME, REDIS_SENTINEL_PASSWORD: each problem named, the password never shown. */
static void test_sentinels(void **state)
{
    dc_config_t    cfg;
    dc_sentinels_t s;
    dc_err_t       err;

    (void)state;
    assert_int_equal(dc_config_parse_sentinels("10.0.0.1:26379,sentinel-b:26380,[::1]:26381", &s, &err),
                     DC_OK);
    assert_int_equal(s.n, 3);
    assert_string_equal(s.host[0], "10.0.0.1");
    assert_int_equal(s.port[0], 26379);
    assert_string_equal(s.host[1], "sentinel-b");
    assert_int_equal(s.port[1], 26380);
    assert_string_equal(s.host[2], "::1");
    assert_int_equal(s.port[2], 26381);
    assert_int_equal(dc_config_parse_sentinels("a:1,", &s, &err), DC_EINVAL);
    assert_non_null(strstr(err.str, "entry 2 is empty"));
    assert_int_equal(dc_config_parse_sentinels("a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9", &s, &err), DC_EINVAL);
    assert_non_null(strstr(err.str, "at most 8"));
    assert_int_equal(dc_config_parse_sentinels("a", &s, &err), DC_EINVAL);
    assert_int_equal(dc_config_parse_sentinels("a:0", &s, &err), DC_EINVAL);
    assert_int_equal(dc_config_parse_sentinels("a:65536", &s, &err), DC_EINVAL);
    assert_int_equal(dc_config_parse_sentinels("", &s, &err), DC_EINVAL);

    set("REDIS_SENTINELS", "127.0.0.1:26379,127.0.0.1:26380");
    set("REDIS_MASTER_NAME", "mymaster");
    set("REDIS_SENTINEL_PASSWORD", "s3cret-sentinel");
    load_ok(&cfg);
    assert_int_equal(cfg.sentinel.n, 2);
    assert_string_equal(cfg.sentinel.master_name, "mymaster");
    assert_string_equal(cfg.sentinel.password, "s3cret-sentinel");

    set("REDIS_MASTER_NAME", "my master");
    load_fails_prefix("REDIS_MASTER_NAME must be 1 to 64 letters");
    unsetenv("REDIS_MASTER_NAME");
    load_fails_prefix("REDIS_MASTER_NAME must be");
    set("REDIS_MASTER_NAME", "mymaster");
    set("REDIS_SENTINELS", "127.0.0.1");
    assert_int_equal(dc_config_load(&cfg), DC_EINVAL);
    assert_non_null(strstr(cfg.err.str, "REDIS_SENTINELS"));
    assert_null(strstr(cfg.err.str, "s3cret"));
    set("REDIS_SENTINELS", "127.0.0.1:26379");
    set("REDIS_URL", "unix:///run/redis.sock");
    load_fails_prefix("REDIS_URL must be a redis:// URL with REDIS_SENTINELS");
    unsetenv("REDIS_URL");
    unsetenv("REDIS_SENTINELS");
    load_fails("REDIS_MASTER_NAME is set but REDIS_SENTINELS is not (both, or neither)");
    unsetenv("REDIS_MASTER_NAME");
    unsetenv("REDIS_SENTINEL_PASSWORD");
}

static void test_database_url(void **state)
{
    char        url[1100];
    dc_config_t cfg;

    (void)state;
    set("DATABASE_URL", "postgresql://app:pw@db.internal:5432/dash?sslmode=require");
    load_ok(&cfg);
    assert_string_equal(cfg.database_url, "postgresql://app:pw@db.internal:5432/dash?sslmode=require");

    memset(url, 'u', sizeof(url));
    url[1023] = '\0';
    set("DATABASE_URL", url);
    load_ok(&cfg);
    assert_string_equal(cfg.database_url, url);

    url[1023] = 'u';
    url[1024] = '\0';
    set("DATABASE_URL", url);
    load_fails_prefix("DATABASE_URL ");
}

static void test_log_level(void **state)
{
    static const struct {
        const char    *value;
        dc_log_level_t want;
    } ok[] = {
        { "debug", DC_LOG_DEBUG },
        { "info", DC_LOG_INFO },
        { "warn", DC_LOG_WARN },
        { "error", DC_LOG_ERROR },
    };
    static const char *const bad[] = { "verbose", "DEBUG", "Info", "warning", "err", " info", "info " };
    char                     want[ERR_LEN];
    dc_config_t              cfg;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(ok); i++) {
        set("LOG_LEVEL", ok[i].value);
        load_ok(&cfg);
        assert_int_equal(cfg.log_level, ok[i].want);
    }
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++) {
        set("LOG_LEVEL", bad[i]);
        snprintf(want, sizeof(want), "LOG_LEVEL must be one of debug, info, warn, error (got \"%s\")",
                 bad[i]);
        load_fails(want);
    }
}

/* The on/off switches: CACHE (off: reads never touch Redis) and METRICS. */
static void test_on_off_switches(void **state)
{
    static const struct {
        const char *value;
        int         want;
    } ok[] = { { "on", 1 }, { "true", 1 }, { "1", 1 }, { "off", 0 }, { "false", 0 }, { "0", 0 } };
    static const char *const bad[] = { "yes", "no", "ON", "Off", " off", "off ", "2", "disabled" };
    static const struct {
        const char *name;
        size_t      offset, other;
    } sw[] = {
        { "CACHE", offsetof(dc_config_t, cache_enabled), offsetof(dc_config_t, metrics_enabled) },
        { "METRICS", offsetof(dc_config_t, metrics_enabled), offsetof(dc_config_t, cache_enabled) },
    };
    char        want[ERR_LEN];
    dc_config_t cfg;

    (void)state;
    for (size_t n = 0; n < DC_ARRAY_LEN(sw); n++) {
        for (size_t i = 0; i < DC_ARRAY_LEN(ok); i++) {
            set(sw[n].name, ok[i].value);
            load_ok(&cfg);
            if (*(const int *)((const char *)&cfg + sw[n].offset) != ok[i].want)
                fail_msg("%s=%s was not taken as %d", sw[n].name, ok[i].value, ok[i].want);
            /* each switch is its own: the other one keeps its default, on */
            assert_int_equal(*(const int *)((const char *)&cfg + sw[n].other), 1);
        }
        for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++) {
            set(sw[n].name, bad[i]);
            snprintf(want, sizeof(want), "%s must be on or off (got \"%s\")", sw[n].name, bad[i]);
            load_fails(want);
        }
        unsetenv(sw[n].name);
    }
}

/* User and password are percent-decoded: any byte but NUL can be written. */
static void test_redis_url_percent_decoding(void **state)
{
    static const redis_case_t ok[] = {
        { "redis://:p%20w@host", "host", 6379, "", 0, "", "p w" },
        { "redis://us%40er:p%40ss%2Fw%3Ad%25@host:1/2", "host", 1, "", 2, "us@er", "p@ss/w:d%" },
        { "redis://:%e2%82%ac@host", "host", 6379, "", 0, "", "\xe2\x82\xac" },
        { "redis://:a%2bb%2B@host", "host", 6379, "", 0, "", "a+b+" },
    };
    static const char *const bad[] = { "redis://:p%2@host", "redis://:p%zz@host", "redis://:p%00w@host",
                                       "redis://u%:p@host", "redis://:%@host" };
    dc_redis_addr_t          a;
    dc_err_t                 err;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(ok); i++)
        assert_redis(&ok[i]);
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++) {
        err.str[0] = '\0';
        if (dc_config_parse_redis_url(bad[i], &a, &err) != DC_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_non_null(strstr(err.str, "escape"));
    }
}

/* A configuration error quotes REDIS_URL without its password, however long. */
static void test_redis_url_error_hides_password(void **state)
{
    static const char *const bad[] = {
        "redis://user:hunter2@bad host:6379",
        "redis://user:hunter2@",
        "http://user:hunter2@host",
        "redis://:hunter2hunter2hunter2hunter2hunter2hunter2hunter2hunter2hunter2@ho st",
    };
    dc_config_t cfg;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(bad); i++) {
        set("REDIS_URL", bad[i]);
        if (dc_config_load(&cfg) != DC_EINVAL)
            fail_msg("accepted %s", bad[i]);
        if (strstr(cfg.err.str, "hunter") != NULL || strstr(cfg.err.str, "REDIS_URL") == NULL)
            fail_msg("%s: error \"%s\"", bad[i], cfg.err.str);
    }
}

static void test_fcgi_web_server_addrs(void **state)
{
    dc_config_t cfg;

    (void)state;
    load_ok(&cfg);
    assert_int_equal(cfg.fcgi_allow.n, 0);
    set("FCGI_WEB_SERVER_ADDRS", "127.0.0.1, ::1,10.0.0.7");
    load_ok(&cfg);
    assert_int_equal(cfg.fcgi_allow.n, 3);
    set("FCGI_WEB_SERVER_ADDRS", "127.0.0.1,nginx.example");
    load_fails_prefix("FCGI_WEB_SERVER_ADDRS: \"nginx.example\" is not an IPv4 or IPv6 address");
}

static void test_auth_variables(void **state)
{
    dc_config_t cfg;

    (void)state;
    load_ok(&cfg);
    assert_int_equal(cfg.auth.mode, DC_AUTH_JWT);
    assert_string_equal(cfg.auth.keys_file, "");
    set("AUTH_MODE", "trusted");
    set("AUTH_KEYS_FILE", "/etc/dashcache/keys");
    set("AUTH_ISSUER", "https://idp.example");
    set("AUTH_AUDIENCE", "dashcache");
    load_ok(&cfg);
    assert_int_equal(cfg.auth.mode, DC_AUTH_TRUSTED);
    assert_string_equal(cfg.auth.keys_file, "/etc/dashcache/keys");
    assert_string_equal(cfg.auth.issuer, "https://idp.example");
    assert_string_equal(cfg.auth.audience, "dashcache");
    set("AUTH_MODE", "jwt");
    load_ok(&cfg);
    assert_int_equal(cfg.auth.mode, DC_AUTH_JWT);
    set("AUTH_MODE", "none");
    load_fails("AUTH_MODE must be jwt or trusted (got \"none\")");
}

typedef struct {
    int  n;
    char seen[8][ERR_LEN];
} problems_t;

static void collect(const char *problem, void *arg)
{
    problems_t *p = arg;

    if (p->n < 8)
        snprintf(p->seen[p->n], ERR_LEN, "%s", problem);
    p->n++;
}

/* dc_config_check: every problem, in order, each naming its variable; the first one is start-up's message. */
static void test_check_reports_every_problem(void **state)
{
    static dc_config_t cfg;
    problems_t         p = { 0 };

    (void)state;
    set("CACHE_TTL_SECONDS", "0");
    set("CACHE_TTL_UNITS_SECONDS", "abc");
    set("REDIS_URL", "redis://:s3cret@");
    set("AUTH_MODE", "none");
    set("LOG_LEVEL", "loud");
    assert_int_equal(dc_config_check(&cfg, collect, &p), 5);
    assert_int_equal(p.n, 5);
    assert_string_equal(p.seen[0], "CACHE_TTL_SECONDS must be an integer between 1 and 86400 (got \"0\")");
    assert_string_equal(p.seen[1],
                        "CACHE_TTL_UNITS_SECONDS must be an integer between 1 and 86400 (got \"abc\")");
    assert_non_null(strstr(p.seen[2], "REDIS_URL is invalid"));
    assert_string_equal(p.seen[3], "AUTH_MODE must be jwt or trusted (got \"none\")");
    assert_non_null(strstr(p.seen[4], "LOG_LEVEL"));
    for (int i = 0; i < p.n; i++)
        assert_null(strstr(p.seen[i], "s3cret"));
    assert_string_equal(cfg.err.str, p.seen[0]);
    /* start-up still stops with the first one */
    load_fails("CACHE_TTL_SECONDS must be an integer between 1 and 86400 (got \"0\")");

    clear_env(NULL);
    p.n = 0;
    assert_int_equal(dc_config_check(&cfg, collect, &p), 0);
    assert_int_equal(p.n, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, clear_env, clear_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults),
        T(test_empty_values_are_defaults),
        T(test_int_bounds),
        T(test_int_not_a_number),
        T(test_int_leading_whitespace),
        T(test_int_error_message),
        T(test_int_error_quotes_at_most_64_bytes),
        T(test_error_is_bounded_and_cleared),
        T(test_ttl_inherits_cache_ttl),
        T(test_ttl_per_type_override),
        T(test_ttl_all_overrides_at_once),
        T(test_ttl_bad_override_named),
        T(test_redis_url_forms),
        T(test_redis_url_rejects),
        T(test_redis_url_whitespace_in_numbers),
        T(test_redis_url_length_limits),
        T(test_redis_url_in_environment),
        T(test_cluster_nodes),
        T(test_sentinels),
        T(test_redis_url_percent_decoding),
        T(test_redis_url_error_hides_password),
        T(test_fcgi_web_server_addrs),
        T(test_database_url),
        T(test_log_level),
        T(test_on_off_switches),
        T(test_auth_variables),
        T(test_check_reports_every_problem),
    };

    return cmocka_run_group_tests_name("dc_config", tests, NULL, NULL);
}
