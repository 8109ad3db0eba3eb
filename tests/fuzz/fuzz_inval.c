/*
 * Fuzz target: invalidation messages of cache:invalidate (dc_inval_parse).
 *
 * Input: the message, passed with its length and nothing after it.
 *
 * Invariants: DC_OK ⇒ one organization: a lower-case UUID; a pattern: it
 * starts with dashboard:, has no ? [ ] \ or white space, each ':' segment
 * is * or holds no *, it names exactly one tenant (one org segment,
 * followed by the message's lower-case organization id in braces, the
 * keys' hash tag, whether the message had them or not), and as a Redis
 * glob it matches no key of another organization nor any generation key,
 * and the query type of every key of its organization it matches is one
 * whose generation it moves (an orgId and everything: every type's);
 * everything: the pattern is exactly dashboard:* and the message said
 * "scope":"all". What was checked is the whole field: no \u0000 cut it. Messages over 4 KiB are refused. DC_EINVAL ⇒ the reason
 * is a terminated, non-empty string.
 */
#include <fnmatch.h>
#include <json.h>
#include <strings.h>

#include "dc_inval.h"
#include "fuzz.h"

#define OTHER_ORG "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define UNIT      "6ba7b810-9dad-11d1-80b4-00c04fd430c8"

/* Keys of every shape for org, as dc_key builds them, each with its query type; then its generations. */
#define NKEYS 7
#define NGENS 6
static void keys_of(const char *org, char keys[][160], dc_qtype_t qtypes[], size_t *n)
{
    static const struct {
        const char *head, *tail;
        dc_qtype_t  q;
    } shape[NKEYS + NGENS] = {
        { "dashboard:stats:org:", "", DC_Q_STATS },
        { "dashboard:units:status:org:", "", DC_Q_UNITS },
        { "dashboard:alerts:count:org:", "", DC_Q_ALERTS },
        { "dashboard:alerts:count:org:", ":unit:" UNIT, DC_Q_ALERTS },
        { "dashboard:temperature:trends:org:", ":unit:" UNIT ":hours:24", DC_Q_TEMPERATURE },
        { "dashboard:devices:online:org:", "", DC_Q_DEVICES },
        { "dashboard:compliance:org:", "", DC_Q_COMPLIANCE },
        { "dashcache:gen:stats:org:", "", DC_Q_STATS },
        { "dashcache:gen:units:org:", "", DC_Q_UNITS },
        { "dashcache:gen:alerts:org:", "", DC_Q_ALERTS },
        { "dashcache:gen:temperature:org:", "", DC_Q_TEMPERATURE },
        { "dashcache:gen:devices:org:", "", DC_Q_DEVICES },
        { "dashcache:gen:compliance:org:", "", DC_Q_COMPLIANCE },
    };
    for (size_t i = 0; i < DC_ARRAY_LEN(shape); i++) {
        snprintf(keys[i], 160, "%s{%s}%s", shape[i].head, org, shape[i].tail);
        qtypes[i] = shape[i].q;
    }
    *n = DC_ARRAY_LEN(shape);
}

static void check_pattern(const dc_inval_msg_t *m)
{
    const char *p = m->pattern;
    char        keys[NKEYS + NGENS][160], other[DC_UUID_LEN + 1];
    dc_qtype_t  qtypes[NKEYS + NGENS];
    size_t      nkeys, orgs = 0;
    int         after_org = 0;

    FUZZ_CHECK(fuzz_is_id(m->org_id), "pattern message without an org id");
    FUZZ_CHECK(strncmp(p, "dashboard:", 10) == 0, "pattern \"%s\"", p);
    for (const char *c = p; *c; c++)
        FUZZ_CHECK(*c > ' ' && *c < 0x7f && !strchr("?[]\\", *c), "byte 0x%02x in \"%s\"", (unsigned char)*c,
                   p);
    for (const char *seg = p; seg != NULL;) {
        const char *end = strchr(seg, ':');
        size_t      n = end ? (size_t)(end - seg) : strlen(seg);
        FUZZ_CHECK(n > 0, "empty segment in \"%s\"", p);
        FUZZ_CHECK((n == 1 && seg[0] == '*') || memchr(seg, '*', n) == NULL, "partial glob in \"%s\"", p);
        if (after_org)
            FUZZ_CHECK(n == DC_UUID_LEN + 2 && seg[0] == '{' &&
                           memcmp(seg + 1, m->org_id, DC_UUID_LEN) == 0 && seg[n - 1] == '}',
                       "org segment of \"%s\" is not {%s}", p, m->org_id);
        after_org = n == 3 && memcmp(seg, "org", 3) == 0;
        orgs += (size_t)after_org;
        seg = end ? end + 1 : NULL;
    }
    FUZZ_CHECK(orgs == 1 && !after_org, "pattern \"%s\" names %zu tenants", p, orgs);

    /* as a glob: nothing of another tenant, no generation key */
    memcpy(other, strcmp(m->org_id, OTHER_ORG) == 0 ? "550e8400-e29b-41d4-a716-446655440000" : OTHER_ORG,
           sizeof(other));
    keys_of(other, keys, qtypes, &nkeys);
    for (size_t i = 0; i < nkeys; i++)
        FUZZ_CHECK(fnmatch(p, keys[i], 0) != 0, "pattern \"%s\" matches %s", p, keys[i]);
    keys_of(m->org_id, keys, qtypes, &nkeys);
    for (size_t i = NKEYS; i < nkeys; i++)
        FUZZ_CHECK(fnmatch(p, keys[i], 0) != 0, "pattern \"%s\" matches %s", p, keys[i]);
    /* every answer it matches stops being a hit: its query type's generation moves */
    for (size_t i = 0; i < NKEYS; i++)
        FUZZ_CHECK(fnmatch(p, keys[i], 0) != 0 || (m->queries & DC_QBIT_OF(qtypes[i])),
                   "pattern \"%s\" matches %s but moves the generations %#x only", p, keys[i], m->queries);
}

/*
 * Whether the message's field k is the string want, every byte of it (json-c
 * reads the escapes, so "\u0061ll" is "all" and "all\u0000" is not); nocase:
 * ASCII letters in either case.
 */
static int field_is(const char *msg, size_t len, const char *k, const char *want, int nocase)
{
    json_tokener *tok = json_tokener_new();
    json_object  *o, *v;
    int           yes;
    if (tok == NULL)
        abort();
    o = json_tokener_parse_ex(tok, msg, (int)len);
    yes =
        o != NULL && json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) &&
        (size_t)json_object_get_string_len(v) == strlen(want) &&
        (nocase ? strcasecmp(json_object_get_string(v), want) : strcmp(json_object_get_string(v), want)) == 0;
    json_object_put(o);
    json_tokener_free(tok);
    return yes;
}

/* pattern with its tenant's braces taken off (org:{<uuid>} -> org:<uuid>), into out. */
static const char *untagged(const char *pattern, char out[DC_INVAL_PATTERN_MAX])
{
    const char *open = strstr(pattern, ":org:{");
    size_t      head;

    if (open == NULL)
        return pattern;
    head = (size_t)(open - pattern) + 5;
    memcpy(out, pattern, head);
    memcpy(out + head, open + 6, DC_UUID_LEN);
    snprintf(out + head + DC_UUID_LEN, DC_INVAL_PATTERN_MAX - head - DC_UUID_LEN, "%s",
             open + 6 + DC_UUID_LEN + 1);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char           bare[DC_INVAL_PATTERN_MAX];
    dc_inval_msg_t m;
    char           why[128];
    char          *msg = fuzz_exact(data, size);
    int            rc;

    memset(&m, 0x5a, sizeof(m));
    memset(why, 0x5a, sizeof(why));
    rc = dc_inval_parse(msg, size, &m, why, sizeof(why));
    if (rc == DC_OK) {
        FUZZ_CHECK(size <= DC_INVAL_MSG_MAX, "accepted %zu bytes", size);
        FUZZ_CHECK(m.queries != 0 && (m.queries & ~DC_QBITS_CACHED) == 0, "queries %#x", m.queries);
        FUZZ_CHECK(m.kind == DC_INV_PATTERN || m.queries == DC_QBITS_CACHED,
                   "an orgId or everything moves the generations %#x only", m.queries);
        FUZZ_CHECK(fuzz_terminated(m.org_id, sizeof(m.org_id)) &&
                       fuzz_terminated(m.pattern, sizeof(m.pattern)),
                   "unterminated field");
        switch (m.kind) {
        case DC_INV_ORG:
            FUZZ_CHECK(fuzz_is_id(m.org_id), "org message with id \"%s\"", m.org_id);
            FUZZ_CHECK(field_is(msg, size, "orgId", m.org_id, 1), "orgId is not all of %s", m.org_id);
            break;
        case DC_INV_PATTERN:
            check_pattern(&m);
            /* the message spelt the tenant org:{<uuid>} or org:<uuid> */
            FUZZ_CHECK(field_is(msg, size, "pattern", m.pattern, 1) ||
                           field_is(msg, size, "pattern", untagged(m.pattern, bare), 1),
                       "pattern is not all of %s", m.pattern);
            break;
        case DC_INV_ALL:
            FUZZ_CHECK(strcmp(m.pattern, "dashboard:*") == 0, "all with pattern \"%s\"", m.pattern);
            FUZZ_CHECK(field_is(msg, size, "scope", "all", 0),
                       "everything invalidated without \"scope\":\"all\"");
            break;
        default:
            FUZZ_CHECK(0, "kind %d", m.kind);
        }
    } else {
        FUZZ_CHECK(rc == DC_EINVAL, "rc %d", rc);
        FUZZ_CHECK(fuzz_terminated(why, sizeof(why)) && why[0] != '\0', "no reason");
    }
    free(msg);
    return 0;
}
