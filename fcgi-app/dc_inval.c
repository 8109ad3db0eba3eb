/* Invalidation message validation and application. */
#include "dc_inval.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <json.h>

#include "dc_endpoint.h"
#include "dc_metrics.h"
#include "dc_replica.h"
#include "dc_request.h"

#define PREFIX "dashboard:"

static int fail(char *why, size_t cap, const char *text)
{
    snprintf(why, cap, "%s", text);
    return DC_EINVAL;
}

static int is_word(const char *s, size_t n)
{
    if (n == 0 || n > 40)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/*
 * Rewrites the organization's segment seg (n bytes, inside p, a buffer of
 * DC_INVAL_PATTERN_MAX) as the keys spell it, {<org>}: patterns are matched
 * by SCAN MATCH, where braces are literal, so the untagged patterns of
 * earlier messages (dashboard:*:org:<uuid>) match the tagged keys.
 */
static int tag_org(char *p, char *seg, size_t n, const char *org, char *why, size_t cap)
{
    size_t tail = strlen(seg + n);

    if ((size_t)(seg - p) + DC_UUID_LEN + 2 + tail >= DC_INVAL_PATTERN_MAX)
        return fail(why, cap, "pattern must be a string of at most 253 bytes");
    memmove(seg + DC_UUID_LEN + 2, seg + n, tail + 1);
    seg[0] = '{';
    memcpy(seg + 1, org, DC_UUID_LEN);
    seg[DC_UUID_LEN + 1] = '}';
    return DC_OK;
}

/*
 * Validates a tenant pattern in place (hex digits folded to lower case) and
 * extracts its organization, and the query types it can match: the one
 * whose label is its first segment, or all.
 */
static int check_pattern(char *p, char org[DC_UUID_LEN + 1], unsigned *queries, char *why, size_t cap)
{
    char       *seg = p + sizeof(PREFIX) - 1;
    int         orgs = 0;
    const char *prev = "";
    size_t      prev_len = 0, org_len = 0;
    char       *org_seg = NULL;

    if (strncmp(p, PREFIX, sizeof(PREFIX) - 1) != 0)
        return fail(why, cap, "pattern must start with dashboard:");
    if (strpbrk(p, "?[]\\\\ ") != NULL)
        return fail(why, cap, "pattern may not contain ? [ ] \\ or spaces");
    for (char *q = p; *q; q++)
        *q = (char)tolower((unsigned char)*q);

    for (;;) {
        char  *end = strchr(seg, ':');
        size_t n = end ? (size_t)(end - seg) : strlen(seg);

        if (prev_len == 3 && memcmp(prev, "org", 3) == 0) {
            /* <uuid>, or {<uuid>} as the keys have it (their hash tag) */
            int tagged = n == DC_UUID_LEN + 2 && seg[0] == '{' && seg[n - 1] == '}';
            if (dc_request_parse_uuid(seg + tagged, n - 2 * (size_t)tagged, org) != DC_OK)
                return fail(why, cap, "the segment after org: must be an organization id");
            org_seg = seg;
            org_len = n;
            orgs++;
        } else if (prev_len == 4 && memcmp(prev, "unit", 4) == 0) {
            char unit[DC_UUID_LEN + 1];
            if (!(n == 1 && seg[0] == '*') && dc_request_parse_uuid(seg, n, unit) != DC_OK)
                return fail(why, cap, "the segment after unit: must be a unit id or *");
        } else if (!(n == 1 && seg[0] == '*') && !is_word(seg, n)) {
            return fail(why, cap, "pattern segments must be *, ids or lower-case words");
        } else if (seg == p + sizeof(PREFIX) - 1) {
            /* keys are dashboard:<label>:...: a literal first segment matches only that type's */
            dc_qtype_t q = dc_endpoint_cached_query(seg, n);
            *queries = q < DC_Q_COUNT ? DC_QBIT_OF(q) : DC_QBITS_CACHED;
        }
        prev = seg;
        prev_len = n;
        if (end == NULL)
            break;
        seg = end + 1;
    }
    /* a last "org" has no id after it, yet it is a second tenant segment (found by fuzz_inval) */
    if (prev_len == 3 && memcmp(prev, "org", 3) == 0)
        return fail(why, cap, "the segment after org: must be an organization id");
    if (orgs != 1)
        return fail(why, cap, "pattern must name exactly one tenant as org:<uuid>");
    return tag_org(p, org_seg, org_len, org, why, cap);
}

/* The string value of k, or NULL when it is absent, not a string, or holds a NUL (\u0000). */
static const char *string_field(json_object *o, const char *k, int *present)
{
    json_object *v;
    const char  *s;
    *present = json_object_object_get_ex(o, k, &v);
    if (!*present || !json_object_is_type(v, json_type_string))
        return NULL;
    s = json_object_get_string(v);
    /* "all\u0000" is not "all" (found by fuzz_inval) */
    return strlen(s) == (size_t)json_object_get_string_len(v) ? s : NULL;
}

int dc_inval_parse(const char *msg, size_t len, dc_inval_msg_t *out, char *why, size_t cap)
{
    json_tokener *tok;
    json_object  *o;
    const char   *org, *pattern, *scope;
    int           has_org, has_pattern, has_scope, rc = DC_OK;

    memset(out, 0, sizeof(*out));
    out->queries = DC_QBITS_CACHED;
    if (len > DC_INVAL_MSG_MAX)
        return fail(why, cap, "message larger than 4 KiB");
    if (len == 0 || memchr(msg, '\0', len) != NULL)
        return fail(why, cap, "empty message or NUL byte");
    tok = json_tokener_new_ex(4);
    if (tok == NULL)
        return fail(why, cap, "out of memory");
    o = json_tokener_parse_ex(tok, msg, (int)len);
    if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object)) {
        json_tokener_free(tok);
        json_object_put(o);
        return fail(why, cap, "not a JSON object");
    }
    json_tokener_free(tok);

    org = string_field(o, "orgId", &has_org);
    pattern = string_field(o, "pattern", &has_pattern);
    scope = string_field(o, "scope", &has_scope);

    if (has_org == has_pattern) {
        rc = fail(why, cap, "give either orgId or pattern");
    } else if (has_org) {
        if (org == NULL || dc_request_parse_uuid(org, strlen(org), out->org_id) != DC_OK)
            rc = fail(why, cap, "orgId must be a UUID");
        out->kind = DC_INV_ORG;
    } else if (pattern == NULL || strlen(pattern) >= sizeof(out->pattern)) {
        rc = fail(why, cap, "pattern must be a string of at most 255 bytes");
    } else if (strcmp(pattern, "dashboard:*") == 0) {
        if (!has_scope || scope == NULL || strcmp(scope, "all") != 0)
            rc = fail(why, cap, "clearing every tenant needs \"scope\":\"all\"");
        out->kind = DC_INV_ALL;
        memcpy(out->pattern, pattern, strlen(pattern) + 1);
    } else if (has_scope) {
        rc = fail(why, cap, "scope applies only to the pattern dashboard:*");
    } else {
        memcpy(out->pattern, pattern, strlen(pattern) + 1);
        out->kind = DC_INV_PATTERN;
        rc = check_pattern(out->pattern, out->org_id, &out->queries, why, cap);
    }
    json_object_put(o);
    return rc;
}

int dc_inval_apply(dc_cache_t *c, const dc_inval_msg_t *m, size_t *deleted)
{
    *deleted = 0;
    if (dc_cache_invalidate(c, m->org_id, m->queries) != DC_OK)
        return DC_UNAVAILABLE;
    if (m->kind == DC_INV_PATTERN)
        return dc_cache_unlink_pattern(c, m->pattern, deleted);
    return DC_OK;
}

int dc_inval_orgs(dc_cache_t *c, const dc_orgs_t *orgs)
{
    for (size_t i = 0; i < dc_orgs_count(orgs); i++)
        if (dc_cache_invalidate(c, dc_orgs_at(orgs, i),
                                dc_endpoint_change_queries(dc_orgs_bits_at(orgs, i))) != DC_OK)
            return DC_UNAVAILABLE;
    return DC_OK;
}

int dc_inval_all(dc_cache_t *c)
{
    if (dc_cache_invalidate_all(c) != DC_OK)
        return DC_UNAVAILABLE;
    dc_metrics_invalidation(DC_IS_RESYNC, 1);
    return DC_OK;
}

int dc_inval_raise_lsn(dc_cache_t *c, dc_db_t *db, const dc_orgs_t *orgs, const char *org, int all)
{
    uint64_t lsn;

    if (dc_replica_primary_lsn(db, &lsn) != DC_OK)
        return DC_UNAVAILABLE;
    if (all && dc_cache_lsn_raise(c, NULL, lsn) != DC_OK)
        return DC_UNAVAILABLE;
    if (org != NULL && dc_cache_lsn_raise(c, org, lsn) != DC_OK)
        return DC_UNAVAILABLE;
    for (size_t i = 0; orgs != NULL && i < dc_orgs_count(orgs); i++)
        if (dc_cache_lsn_raise(c, dc_orgs_at(orgs, i), lsn) != DC_OK)
            return DC_UNAVAILABLE;
    return DC_OK;
}

int dc_inval_drain(dc_cache_t *c, dc_db_t *db, dc_outbox_t *ob, size_t batch, dc_lag_fn fn, void *arg,
                   dc_drain_stats_t *stats)
{
    memset(stats, 0, sizeof(*stats));
    for (;;) {
        int rc = dc_outbox_pending(db, ob, batch);

        if (rc != DC_OK)
            return rc;
        if (ob->n == 0)
            return DC_OK;
        if (dc_inval_raise_lsn(c, db, &ob->orgs, NULL, ob->all) != DC_OK)
            return DC_UNAVAILABLE;
        if (ob->all && dc_inval_all(c) != DC_OK)
            return DC_UNAVAILABLE;
        if (dc_inval_orgs(c, &ob->orgs) != DC_OK)
            return DC_UNAVAILABLE;
        rc = dc_outbox_done(db, ob, fn, arg);
        if (rc != DC_OK)
            return rc;
        stats->rows += ob->n;
        stats->orgs += dc_orgs_count(&ob->orgs);
        stats->batches++;
        stats->alls += ob->all != 0;
        dc_metrics_outbox_rows((long)ob->n);
        dc_metrics_invalidation(DC_IS_OUTBOX, (long)dc_orgs_count(&ob->orgs));
        if (ob->n < batch)
            return DC_OK;
    }
}
