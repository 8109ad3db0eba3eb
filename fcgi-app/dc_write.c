/* Writes: body, transaction, invalidation, events. */
#include "dc_write.h"

#include <time.h>

#include <string.h>

#include "dc_endpoint.h"
#include "dc_log.h"
#include "dc_metrics.h"
#include "dc_outbox.h"
#include "dc_replica.h"
#include "dc_trust.h"

void dc_write_state_free(dc_write_state_t *st)
{
    dc_body_free(&st->parsed);
    dc_write_result_free(&st->result);
    dc_buf_free(&st->request);
}

/*
 * After the commit: in every organization the write touched, invalidate the
 * query types that read what it changed there (DC_API_CHANGES), then
 * announce the events. Consumers of the events re-read the dashboards, so
 * nothing is announced unless its invalidation was applied. When Redis
 * cannot take it, hits stop on this host before the write is acknowledged
 * (dc_trust_refused, by dc_cache), the outbox rows the write left make the
 * invalidator apply it once Redis is back, and the events wait in the
 * database until then (the invalidator publishes them).
 *
 * Each organization's LSN key is raised to the primary's position after
 * the commit before its generations move (dc_replica.h): a miss that sees
 * the new generation waits for a standby that has replayed the write. A
 * position that cannot be read or stored counts as an invalidation Redis
 * did not take: hits and standby reads stop on this host until the outbox
 * is applied, by the invalidator, with its own position.
 */
static void invalidate_and_announce(dc_cache_t *cache, dc_db_t *db, const dc_write_result_t *res)
{
    size_t   sent = 0;
    int      ok = 1;
    uint64_t lsn = 0;

    if (dc_orgs_count(&res->orgs) > 0 && dc_replica_primary_lsn(db, &lsn) != DC_OK) {
        dc_trust_refused("the primary's WAL position after a write could not be read");
        ok = 0;
    }
    for (size_t i = 0; i < dc_orgs_count(&res->orgs); i++) {
        const char *org = dc_orgs_at(&res->orgs, i);
        /* the generations move even without the LSN: hits of the old data stop everywhere now */
        int raised = lsn != 0 && dc_cache_lsn_raise(cache, org, lsn) == DC_OK;
        if (dc_cache_invalidate(cache, org, dc_endpoint_change_queries(dc_orgs_bits_at(&res->orgs, i))) !=
                DC_OK ||
            !raised) {
            dc_log_warn("write.invalidate", "could not invalidate organization %s now; the outbox will", org);
            ok = 0;
        } else {
            dc_metrics_invalidation(DC_IS_WRITE, 1);
        }
    }
    for (; ok && sent < dc_strs_count(&res->events); sent++) {
        size_t      n;
        const char *ev = dc_strs_at(&res->events, sent, &n);
        if (dc_cache_publish(cache, DC_EVENTS_CHANNEL, ev, n) != DC_OK)
            break;
    }
    /* what was not published now is, by the invalidator, once the outbox is applied */
    if (dc_outbox_defer_events(db, &res->events, sent) != DC_OK)
        dc_log_error("write.events", "%zu events of an acknowledged write could not be kept for later",
                     dc_strs_count(&res->events) - sent);
}

int dc_write_key_ok(const char *key)
{
    size_t n = strlen(key);

    if (n == 0 || n > DC_IDEMPOTENCY_KEY_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = key[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              strchr("-_.:~+/=", c)))
            return 0;
    }
    return 1;
}

/*
 * What makes two requests the same: the method, the endpoint and its ids
 * (all the path says) and the body, byte for byte (a parsed body: valid
 * UTF-8 without NUL). PostgreSQL keeps its SHA-256. DC_OK or DC_ENOMEM.
 */
static int request_text(const dc_request_t *req, const char *body, size_t len, dc_buf_t *out)
{
    const dc_endpoint_t *ep = dc_endpoint_of(req);

    dc_buf_reset(out);
    if (dc_buf_printf(out, "POST\n%s\n%s\n%s\n", ep != NULL ? ep->path : "", req->org_id, req->item_id) !=
            DC_OK ||
        dc_buf_append(out, body != NULL ? body : "", len) != DC_OK)
        return DC_ENOMEM;
    return DC_OK;
}

void dc_write_handle(dc_write_state_t *st, const dc_config_t *cfg, dc_cache_t *cache, dc_db_t *db,
                     const dc_request_t *req, const dc_principal_t *who, const char *content_type,
                     const char *idempotency_key, const char *body, size_t len, dc_buf_t *out,
                     dc_response_t *resp)
{
    dc_error_t err;
    int        rc;

    dc_buf_reset(out);
    st->parsed.limits = (dc_body_limits_t){ .now = (int64_t)time(NULL),
                                            .max_future_s = cfg->ingest_max_future_s,
                                            .retention_s = cfg->readings_retention_days * 86400 };
    if (dc_body_parse(req, content_type, body, len, &st->parsed, &err) != DC_OK) {
        dc_response_error(resp, &err, out);
        return;
    }
    if (idempotency_key == NULL) {
        rc = dc_query_write(db, req, who, &st->parsed, out, &st->result, &err);
    } else if (!dc_write_key_ok(idempotency_key)) {
        dc_response_fail(resp, 400, "invalid_idempotency_key",
                         "Idempotency-Key must have 1 to 128 characters of A-Z a-z 0-9 - _ . : ~ + / =", out);
        return;
    } else {
        /* keys are the caller's own: another subject's key is another key */
        dc_idem_t idem = { .key = idempotency_key, .subject = who->sub, .ttl_s = cfg->idempotency_ttl_s };
        rc = request_text(req, body, len, &st->request);
        idem.request = st->request.data;
        if (rc == DC_OK)
            rc = dc_query_write_once(db, req, who, &idem, &st->parsed, out, &st->result, &err);
    }
    if (rc == DC_DECLINED) {
        dc_response_error(resp, &err, out);
        return;
    }
    if (rc != DC_OK) {
        if (rc == DC_UNAVAILABLE) {
            dc_response_fail(resp, 503, "database_unavailable",
                             "the database did not confirm the write; it is not acknowledged, retry it", out);
            resp->retry_after = cfg->retry_after_s;
        } else {
            dc_response_db_failure(resp, rc, cfg->retry_after_s, out);
        }
        return;
    }
    /* a replay changed nothing now: its write was invalidated and announced the first time */
    if (!st->result.replayed)
        invalidate_and_announce(cache, db, &st->result);
    dc_response_buf(resp, st->result.status, NULL, out);
    resp->replayed = st->result.replayed;
}
