/*
 * JSON bodies of the dashboard API, written with dc_json: every append is
 * checked, so out of memory gives DC_ENOMEM and never a damaged body that
 * would then be cached. Audit details are JSON text from PostgreSQL: they
 * are embedded (compacted) once checked to be one JSON value, and written
 * as a string otherwise; numbers in them are never re-encoded.
 */
#include "dc_view.h"

#include <stdio.h>
#include <string.h>

#include "dc_json.h"

static void envelope(dc_json_t *j, const dc_view_meta_t *m)
{
    dc_json_object(j);
    dc_json_key(j, "orgId");
    dc_json_str(j, m->org_id);
    if (m->unit_id != NULL && m->unit_id[0] != '\0') {
        dc_json_key(j, "unitId");
        dc_json_str(j, m->unit_id);
    }
}

/* generatedAt last, close the envelope, report. */
static int finish(dc_json_t *j, const dc_view_meta_t *m)
{
    dc_json_key(j, "generatedAt");
    dc_json_str(j, m->generated_at);
    dc_json_end(j, '}');
    return dc_json_finish(j);
}

static void int_field(dc_json_t *j, const char *k, long long v)
{
    dc_json_key(j, k);
    dc_json_int(j, v);
}

static void add_units(dc_json_t *j, const dc_units_status_t *v)
{
    int_field(j, "normal", v->normal);
    int_field(j, "too_hot", v->too_hot);
    int_field(j, "too_cold", v->too_cold);
    int_field(j, "no_data", v->no_data);
    int_field(j, "total", v->total);
}

static void add_alerts(dc_json_t *j, const dc_alert_count_t *v)
{
    int_field(j, "unresolved", v->unresolved);
}

static void add_devices(dc_json_t *j, const dc_devices_online_t *v)
{
    int_field(j, "online", v->online);
    int_field(j, "offline", v->offline);
}

static void add_compliance(dc_json_t *j, const dc_compliance_t *v)
{
    int_field(j, "windowDays", v->window_days);
    int_field(j, "inRange", v->in_range);
    int_field(j, "total", v->total);
    dc_json_key(j, "ratio");
    dc_json_number(j, v->ratio);
}

int dc_view_units_status(const dc_view_meta_t *m, const dc_units_status_t *v, dc_buf_t *out)
{
    dc_json_t j;
    dc_json_begin(&j, out);
    envelope(&j, m);
    add_units(&j, v);
    return finish(&j, m);
}

int dc_view_alert_count(const dc_view_meta_t *m, const dc_alert_count_t *v, dc_buf_t *out)
{
    dc_json_t j;
    dc_json_begin(&j, out);
    envelope(&j, m);
    add_alerts(&j, v);
    return finish(&j, m);
}

int dc_view_devices_online(const dc_view_meta_t *m, const dc_devices_online_t *v, dc_buf_t *out)
{
    dc_json_t j;
    dc_json_begin(&j, out);
    envelope(&j, m);
    add_devices(&j, v);
    return finish(&j, m);
}

int dc_view_compliance(const dc_view_meta_t *m, const dc_compliance_t *v, dc_buf_t *out)
{
    dc_json_t j;
    dc_json_begin(&j, out);
    envelope(&j, m);
    add_compliance(&j, v);
    return finish(&j, m);
}

int dc_view_stats(const dc_view_meta_t *m, const dc_stats_t *v, dc_buf_t *out)
{
    dc_json_t j;
    dc_json_begin(&j, out);
    envelope(&j, m);
    dc_json_key(&j, "units");
    dc_json_object(&j);
    add_units(&j, &v->units);
    dc_json_end(&j, '}');
    dc_json_key(&j, "alerts");
    dc_json_object(&j);
    add_alerts(&j, &v->alerts);
    dc_json_end(&j, '}');
    dc_json_key(&j, "devices");
    dc_json_object(&j);
    add_devices(&j, &v->devices);
    dc_json_end(&j, '}');
    dc_json_key(&j, "compliance");
    dc_json_object(&j);
    add_compliance(&j, &v->compliance);
    dc_json_end(&j, '}');
    return finish(&j, m);
}

int dc_view_trends(const dc_view_meta_t *m, int hours, const dc_trend_point_t *pts, size_t n, dc_buf_t *out)
{
    dc_json_t j;
    dc_json_begin(&j, out);
    envelope(&j, m);
    int_field(&j, "hours", hours);
    dc_json_key(&j, "points");
    dc_json_array(&j);
    for (size_t i = 0; i < n; i++) {
        dc_json_object(&j);
        dc_json_key(&j, "timestamp");
        dc_json_str(&j, pts[i].timestamp);
        dc_json_key(&j, "temperature");
        dc_json_number(&j, pts[i].temperature);
        dc_json_key(&j, "alarmState");
        dc_json_str(&j, pts[i].alarm_state);
        dc_json_end(&j, '}');
    }
    dc_json_end(&j, ']');
    return finish(&j, m);
}

int dc_view_audit(const dc_view_meta_t *m, const dc_audit_entry_t *e, size_t n, dc_buf_t *out)
{
    dc_json_t j;
    dc_json_begin(&j, out);
    envelope(&j, m);
    dc_json_key(&j, "entries");
    dc_json_array(&j);
    for (size_t i = 0; i < n; i++) {
        dc_json_object(&j);
        dc_json_key(&j, "id");
        dc_json_str(&j, e[i].id);
        dc_json_key(&j, "actor");
        dc_json_str(&j, e[i].actor);
        dc_json_key(&j, "action");
        dc_json_str(&j, e[i].action);
        dc_json_key(&j, "details");
        if (dc_json_is_valid(e[i].details))
            dc_json_raw_compact(&j, e[i].details);
        else
            dc_json_str(&j, e[i].details);
        dc_json_key(&j, "createdAt");
        dc_json_str(&j, e[i].created_at);
        dc_json_end(&j, '}');
    }
    dc_json_end(&j, ']');
    return finish(&j, m);
}

int dc_view_error(const char *code, const char *message, int index, dc_buf_t *out)
{
    dc_json_t j;
    dc_json_begin(&j, out);
    dc_json_object(&j);
    dc_json_key(&j, "error");
    dc_json_object(&j);
    dc_json_key(&j, "code");
    dc_json_str(&j, code);
    dc_json_key(&j, "message");
    dc_json_str(&j, message);
    if (index >= 0)
        int_field(&j, "index", index);
    dc_json_end(&j, '}');
    dc_json_end(&j, '}');
    return dc_json_finish(&j);
}

int dc_view_health(const char *status, const dc_health_service_t *s, size_t n, dc_buf_t *out)
{
    dc_json_t j;
    dc_json_begin(&j, out);
    dc_json_object(&j);
    dc_json_key(&j, "status");
    dc_json_str(&j, status);
    dc_json_key(&j, "services");
    dc_json_object(&j);
    for (size_t i = 0; i < n; i++) {
        char ms[32];
        snprintf(ms, sizeof(ms), "%.3f", s[i].latency_ms);
        dc_json_key(&j, s[i].name);
        dc_json_object(&j);
        dc_json_key(&j, "ok");
        dc_json_bool(&j, s[i].ok);
        dc_json_key(&j, "latencyMs");
        dc_json_number(&j, ms);
        dc_json_end(&j, '}');
    }
    dc_json_end(&j, '}');
    dc_json_end(&j, '}');
    return dc_json_finish(&j);
}

int dc_view_object(const dc_view_field_t *f, size_t n, dc_buf_t *out)
{
    dc_json_t j;
    dc_json_begin(&j, out);
    dc_json_object(&j);
    for (size_t i = 0; i < n; i++) {
        dc_json_key(&j, f[i].key);
        switch (f[i].type) {
        case DC_VF_STR:
            dc_json_str(&j, f[i].str);
            break;
        case DC_VF_INT:
            dc_json_int(&j, f[i].num);
            break;
        case DC_VF_BOOL:
            dc_json_bool(&j, f[i].num != 0);
            break;
        case DC_VF_NULL:
            dc_json_null(&j);
            break;
        }
    }
    dc_json_end(&j, '}');
    return dc_json_finish(&j);
}

int dc_view_stats_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out)
{
    return dc_view_stats(m, &d->stats, out);
}

int dc_view_units_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out)
{
    return dc_view_units_status(m, &d->stats.units, out);
}

int dc_view_alerts_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out)
{
    return dc_view_alert_count(m, &d->stats.alerts, out);
}

int dc_view_trends_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out)
{
    return dc_view_trends(m, d->hours, d->points, d->n, out);
}

int dc_view_devices_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out)
{
    return dc_view_devices_online(m, &d->stats.devices, out);
}

int dc_view_compliance_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out)
{
    return dc_view_compliance(m, &d->stats.compliance, out);
}

int dc_view_audit_of(const dc_view_meta_t *m, const dc_view_data_t *d, dc_buf_t *out)
{
    return dc_view_audit(m, d->entries, d->n, out);
}

static void ratio(dc_json_t *j, const char *key, uint64_t part, uint64_t whole)
{
    char text[32];

    dc_json_key(j, key);
    if (whole == 0) {
        dc_json_null(j);
        return;
    }
    snprintf(text, sizeof(text), "%.4f", (double)part / (double)whole);
    dc_json_number(j, text);
}

static void int_or_null(dc_json_t *j, const char *key, long long v)
{
    dc_json_key(j, key);
    if (v >= 0)
        dc_json_int(j, v);
    else
        dc_json_null(j);
}

int dc_view_admin_stats(const dc_admin_stats_t *s, dc_buf_t *out)
{
    dc_json_t j;

    dc_json_begin(&j, out);
    dc_json_object(&j);
    int_field(&j, "hits", (long long)s->hits);
    int_field(&j, "misses", (long long)s->misses);
    ratio(&j, "hitRate", s->hits, s->hits + s->misses);
    dc_json_key(&j, "queryTypes");
    dc_json_object(&j);
    for (size_t i = 0; i < s->nqtypes; i++) {
        const dc_admin_qtype_t *q = &s->qtypes[i];
        dc_json_key(&j, q->name);
        dc_json_object(&j);
        int_field(&j, "hits", (long long)q->hits);
        int_field(&j, "misses", (long long)q->misses);
        ratio(&j, "hitRate", q->hits, q->hits + q->misses);
        int_or_null(&j, "keys", q->keys);
        dc_json_end(&j, '}');
    }
    dc_json_end(&j, '}');
    dc_json_key(&j, "keysComplete");
    dc_json_bool(&j, s->keys_complete);
    dc_json_key(&j, "redis");
    dc_json_object(&j);
    dc_json_key(&j, "ok");
    dc_json_bool(&j, s->redis_ok);
    int_or_null(&j, "usedMemoryBytes", s->used_memory);
    int_or_null(&j, "keys", s->keys);
    dc_json_end(&j, '}');
    dc_json_key(&j, "invalidations");
    dc_json_object(&j);
    for (size_t i = 0; i < s->nsources; i++)
        int_field(&j, s->sources[i], (long long)s->invalidations[i]);
    dc_json_end(&j, '}');
    int_field(&j, "staleSetRefusals", (long long)s->stale_set_refusals);
    int_field(&j, "cacheErrors", (long long)s->cache_errors);
    dc_json_end(&j, '}');
    return dc_json_finish(&j);
}
