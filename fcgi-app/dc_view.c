/* JSON bodies of the dashboard API, built with json-c. */
#include "dc_view.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json.h>

/* json-c's add returns nonzero only on allocation failure; we check at the end. */
static void put(json_object *o, const char *k, json_object *v)
{
    if (json_object_object_add(o, k, v) != 0)
        json_object_put(v);
}

static json_object *num_text(const char *text)
{
    if (text == NULL || *text == '\0')
        return NULL;
    return json_object_new_double_s(strtod(text, NULL), text);
}

static json_object *envelope(const dc_view_meta_t *m)
{
    json_object *o = json_object_new_object();
    if (o == NULL)
        return NULL;
    put(o, "orgId", json_object_new_string(m->org_id));
    if (m->unit_id != NULL && m->unit_id[0] != '\0')
        put(o, "unitId", json_object_new_string(m->unit_id));
    return o;
}

/* Adds generatedAt last, serializes, appends to out, releases o. */
static int finish(json_object *o, const dc_view_meta_t *m, dc_buf_t *out)
{
    const char *s;
    size_t len;
    int rc;

    if (o == NULL)
        return DC_ENOMEM;
    if (m != NULL)
        put(o, "generatedAt", json_object_new_string(m->generated_at));
    s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    rc = s ? dc_buf_append(out, s, len) : DC_ENOMEM;
    json_object_put(o);
    return rc;
}

static void add_units(json_object *o, const dc_units_status_t *v)
{
    put(o, "normal", json_object_new_int64(v->normal));
    put(o, "too_hot", json_object_new_int64(v->too_hot));
    put(o, "too_cold", json_object_new_int64(v->too_cold));
    put(o, "no_data", json_object_new_int64(v->no_data));
    put(o, "total", json_object_new_int64(v->total));
}

static void add_alerts(json_object *o, const dc_alert_count_t *v)
{
    put(o, "unresolved", json_object_new_int64(v->unresolved));
}

static void add_devices(json_object *o, const dc_devices_online_t *v)
{
    put(o, "online", json_object_new_int64(v->online));
    put(o, "offline", json_object_new_int64(v->offline));
}

static void add_compliance(json_object *o, const dc_compliance_t *v)
{
    put(o, "windowDays", json_object_new_int(v->window_days));
    put(o, "inRange", json_object_new_int64(v->in_range));
    put(o, "total", json_object_new_int64(v->total));
    put(o, "ratio", num_text(v->ratio));
}

/* The sub-objects of stats. */
#define SUB_OBJECT(name, type, fn)                      \
    static json_object *name(const type *v)             \
    {                                                   \
        json_object *o = json_object_new_object();      \
        if (o != NULL)                                  \
            fn(o, v);                                   \
        return o;                                       \
    }

SUB_OBJECT(units_obj, dc_units_status_t, add_units)
SUB_OBJECT(alerts_obj, dc_alert_count_t, add_alerts)
SUB_OBJECT(devices_obj, dc_devices_online_t, add_devices)
SUB_OBJECT(compliance_obj, dc_compliance_t, add_compliance)

int dc_view_units_status(const dc_view_meta_t *m, const dc_units_status_t *v, dc_buf_t *out)
{
    json_object *o = envelope(m);
    if (o != NULL)
        add_units(o, v);
    return finish(o, m, out);
}

int dc_view_alert_count(const dc_view_meta_t *m, const dc_alert_count_t *v, dc_buf_t *out)
{
    json_object *o = envelope(m);
    if (o != NULL)
        add_alerts(o, v);
    return finish(o, m, out);
}

int dc_view_devices_online(const dc_view_meta_t *m, const dc_devices_online_t *v, dc_buf_t *out)
{
    json_object *o = envelope(m);
    if (o != NULL)
        add_devices(o, v);
    return finish(o, m, out);
}

int dc_view_compliance(const dc_view_meta_t *m, const dc_compliance_t *v, dc_buf_t *out)
{
    json_object *o = envelope(m);
    if (o != NULL)
        add_compliance(o, v);
    return finish(o, m, out);
}

int dc_view_stats(const dc_view_meta_t *m, const dc_stats_t *v, dc_buf_t *out)
{
    json_object *o = envelope(m);
    if (o != NULL) {
        put(o, "units", units_obj(&v->units));
        put(o, "alerts", alerts_obj(&v->alerts));
        put(o, "devices", devices_obj(&v->devices));
        put(o, "compliance", compliance_obj(&v->compliance));
    }
    return finish(o, m, out);
}

int dc_view_trends(const dc_view_meta_t *m, int hours, const dc_trend_point_t *pts, size_t n,
                   dc_buf_t *out)
{
    json_object *o = envelope(m), *arr;

    if (o == NULL)
        return DC_ENOMEM;
    put(o, "hours", json_object_new_int(hours));
    arr = json_object_new_array_ext((int)n);
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_object *p = json_object_new_object();
        if (p == NULL)
            continue;
        put(p, "timestamp", json_object_new_string(pts[i].timestamp));
        put(p, "temperature", num_text(pts[i].temperature));
        put(p, "alarmState", json_object_new_string(pts[i].alarm_state));
        if (json_object_array_add(arr, p) != 0)
            json_object_put(p);
    }
    put(o, "points", arr);
    return finish(o, m, out);
}

int dc_view_audit(const dc_view_meta_t *m, const dc_audit_entry_t *e, size_t n, dc_buf_t *out)
{
    json_object *o = envelope(m), *arr;

    if (o == NULL)
        return DC_ENOMEM;
    arr = json_object_new_array_ext((int)n);
    for (size_t i = 0; arr != NULL && i < n; i++) {
        json_object *p = json_object_new_object(), *details;
        if (p == NULL)
            continue;
        details = json_tokener_parse(e[i].details);
        if (details == NULL)
            details = json_object_new_string(e[i].details);
        put(p, "id", json_object_new_string(e[i].id));
        put(p, "actor", json_object_new_string(e[i].actor));
        put(p, "action", json_object_new_string(e[i].action));
        put(p, "details", details);
        put(p, "createdAt", json_object_new_string(e[i].created_at));
        if (json_object_array_add(arr, p) != 0)
            json_object_put(p);
    }
    put(o, "entries", arr);
    return finish(o, m, out);
}

int dc_view_error(const char *code, const char *message, int index, dc_buf_t *out)
{
    json_object *o = json_object_new_object(), *e = json_object_new_object();

    if (o == NULL || e == NULL) {
        json_object_put(o);
        json_object_put(e);
        return DC_ENOMEM;
    }
    put(e, "code", json_object_new_string(code));
    put(e, "message", json_object_new_string(message));
    if (index >= 0)
        put(e, "index", json_object_new_int(index));
    put(o, "error", e);
    return finish(o, NULL, out);
}

int dc_view_health(const char *status, const dc_health_service_t *s, size_t n, dc_buf_t *out)
{
    json_object *o = json_object_new_object(), *services = json_object_new_object();

    if (o == NULL || services == NULL) {
        json_object_put(o);
        json_object_put(services);
        return DC_ENOMEM;
    }
    put(o, "status", json_object_new_string(status));
    for (size_t i = 0; i < n; i++) {
        json_object *svc = json_object_new_object();
        if (svc == NULL)
            continue;
        put(svc, "ok", json_object_new_boolean(s[i].ok));
        char ms[32];
        snprintf(ms, sizeof(ms), "%.3f", s[i].latency_ms);
        put(svc, "latencyMs", json_object_new_double_s(s[i].latency_ms, ms));
        put(services, s[i].name, svc);
    }
    put(o, "services", services);
    return finish(o, NULL, out);
}

int dc_view_object(const dc_view_field_t *f, size_t n, dc_buf_t *out)
{
    json_object *o = json_object_new_object();

    for (size_t i = 0; o != NULL && i < n; i++) {
        json_object *v = NULL;
        switch (f[i].type) {
        case DC_VF_STR:
            v = f[i].str ? json_object_new_string(f[i].str) : NULL;
            break;
        case DC_VF_INT:
            v = json_object_new_int64(f[i].num);
            break;
        case DC_VF_BOOL:
            v = json_object_new_boolean(f[i].num != 0);
            break;
        case DC_VF_NULL:
            break;
        }
        put(o, f[i].key, v);
    }
    return finish(o, NULL, out);
}
