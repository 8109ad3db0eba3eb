/*
 * Helpers for the integration tests: the environment of the test stack,
 * direct Redis and PostgreSQL access to inspect what dashcache did, and
 * requests through dc_app without FastCGI.
 */
#ifndef DC_TEST_H
#define DC_TEST_H

#include <stddef.h>

#include "dc_app.h"
#include "dc_config.h"

#define DEMO_ORG  "550e8400-e29b-41d4-a716-446655440000"
#define DEMO_UNIT "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

/* Writes "/api/dashboard/orgs/{org}/{suffix}" into buf (cap bytes). */
void dc_test_org_path(char *buf, size_t cap, const char *org, const char *suffix);

/*
 * Cache keys as dashcache builds them, so that the key schema lives in
 * dc_key.c alone. dc_test_key routes GET {org path}/{suffix}?{query} with
 * dc_router_route and builds its key with dc_key_build into buf (cap >=
 * DC_KEY_MAX); it fails the test when the request is not routable or not
 * cacheable. dc_test_gen_key writes the generation key of query type q of
 * org (dc_key_gen).
 */
void dc_test_key(char *buf, size_t cap, const char *org, const char *suffix, const char *query);
void dc_test_gen_key(char *buf, size_t cap, const char *org, dc_qtype_t q);

/*
 * A glob derived from key (built for org, lower case): its first keep
 * `:`-segments, then `*`, then everything from the segment in front of
 * org's id on, and a trailing `*` when tail. With the keys documented in
 * dc_key.h, keep 1 gives "dashboard:*:org:{<org>}", and keep 2 on the units
 * status key "dashboard:units:*:org:{<org>}".
 */
void dc_test_key_glob(char *buf, size_t cap, const char *key, const char *org, int keep, int tail);

/* A glob matching every cached answer of org (not its generation key). */
void dc_test_org_keys(char *buf, size_t cap, const char *org);

/*
 * The integer member key of the JSON object body (json-c); fails the test
 * when body is not a JSON object or has no integer key.
 */
long long dc_test_json_int(const char *body, const char *key);

/* Loads the configuration from the environment; fails the test if it is invalid. */
void dc_test_config(dc_config_t *cfg);

/* Redis commands on a connection of the test's own (REDIS_URL). */
long long dc_test_redis_int(const char *fmt, ...);  /* integer reply, -1 on error */
char     *dc_test_redis_str(const char *fmt, ...);  /* string reply (free), NULL if nil */
size_t    dc_test_redis_count(const char *pattern); /* keys matching, via SCAN */
void      dc_test_redis_del_pattern(const char *pattern);
void      dc_test_redis_run_id(char out[DC_RUN_ID_MAX]); /* the server's run_id (INFO server) */

/*
 * Subscribes to channel on a new connection, writes one byte to ready_fd
 * once subscribed, and returns the first message (free), or NULL after
 * timeout_ms.
 */
char *dc_test_wait_message(const char *channel, int ready_fd, int timeout_ms);

/* First column of the first row of a query with text parameters (free), NULL if none. */
char *dc_test_sql(const char *sql, int n, const char *const *params);

/* The org id at position i (0-based) in name order. */
void dc_test_org(int i, char out[37]);

/* A unit id of org (any). */
void dc_test_unit_of(const char *org, char out[37]);

/* The first device of unit (by serial); fails the test if it has none. */
void dc_test_device_of(const char *unit, char out[37]);

/* A TCP port on 127.0.0.1 with nothing listening (bound then closed). */
int dc_test_closed_port(void);

/* A listening socket that never accepts: connects succeed, replies never come. */
int dc_test_silent_listener(int *port);

/* Accepts (and closes) every connection waiting on a listener: how many came since the last call. */
int dc_test_accept_all(int fd);

typedef struct {
    int       status;
    char      x_cache[8];
    int       retry_after;
    char     *body; /* NUL-terminated copy (free) */
    size_t    body_len;
    double    ms;             /* wall time of the call */
    long long age;            /* its Age header (an answer from the cache), -1 when none */
    char      challenge[128]; /* WWW-Authenticate, "" when none */
    char      etag[24];       /* the validator of a dashboard answer (no quotes), "" when none */
} dc_test_resp_t;

/*
 * "Bearer <token>" (free) signed with the test stack's key file
 * (AUTH_KEYS_FILE): orgs a comma list of ids or "*", scopes a comma list,
 * ttl_s its lifetime from now (negative: already expired).
 */
char *dc_test_bearer(const char *sub, const char *orgs, const char *scopes, long ttl_s);

/*
 * The Authorization header dc_test_get and dc_test_post send: every scope
 * on every organization (orgs ["*"], sub "integration-test").
 */
const char *dc_test_default_auth(void);

/* GET path?query through app as the default caller; copies the response out. */
void dc_test_get(dc_app_t *app, const char *path, const char *query, dc_test_resp_t *r);
/* GET path?query as the default caller with this If-None-Match header (NULL: none). */
void dc_test_get_if(dc_app_t *app, const char *path, const char *query, const char *if_none_match,
                    dc_test_resp_t *r);
/* POST path with a JSON body (application/json) as the default caller. */
void dc_test_post(dc_app_t *app, const char *path, const char *json, dc_test_resp_t *r);
/* The same with this Authorization header (NULL: none); r->challenge holds WWW-Authenticate. */
void dc_test_get_as(dc_app_t *app, const char *auth, const char *path, const char *query, dc_test_resp_t *r);
void dc_test_post_as(dc_app_t *app, const char *auth, const char *path, const char *json, dc_test_resp_t *r);
/* Any request as the web server would pass it (in->method and in->path set by the caller). */
void dc_test_call(dc_app_t *app, const dc_input_t *in, dc_test_resp_t *r);

/* Marks every pending outbox row applied, as the invalidator would (the integration stack has none). */
void dc_test_outbox_applied(void);

/* 0: requests leave the outbox alone (tests that drain it themselves); 1 (default): see dc_test.c call(). */
void dc_test_outbox_auto(int on);
void dc_test_resp_free(dc_test_resp_t *r);

#endif
