/*
 * Request bodies of the write endpoints: JSON parsed with a depth limit and
 * validated field by field, so that what reaches SQL is a checked UUID, a
 * bounded number, an RFC 3339 timestamp or a bounded string. A bad element
 * of a batch is reported by its index in err->index.
 */
#ifndef DC_BODY_H
#define DC_BODY_H

#include "dc_buf.h"
#include "dc_request.h"

#define DC_INGEST_MAX     1000
#define DC_BODY_MAX       (1024L * 1024) /* ingest; what a worker reads at most */
#define DC_BODY_MAX_SMALL (16L * 1024)   /* every other write */
#define DC_TEMP_MIN       (-100)
#define DC_TEMP_MAX       100
#define DC_KIND_MAX       64
#define DC_MESSAGE_MAX    500

/* Whether a Content-Type names JSON (application/json, with any parameters). */
int dc_body_is_json(const char *content_type);

/* Whether s is an RFC 3339 date-time (2026-11-21T15:04:05.123Z, offsets allowed). */
int dc_body_is_timestamp(const char *s);

/*
 * The UTC time of an RFC 3339 date-time in seconds since the epoch (its
 * offset applied, fractions dropped). DC_OK or DC_EINVAL.
 */
int dc_body_timestamp_epoch(const char *s, int64_t *out) DC_WUR;

/*
 * Checks that body is strict JSON (RFC 8259): no comments, single quotes,
 * trailing commas, raw control characters, invalid UTF-8, \u0000 or lone
 * surrogates in strings, duplicate keys in an object (compared decoded),
 * more than 64 members in an object, nesting deeper than 8, numbers of more
 * than 40 characters or beyond a double. DC_OK, or DC_EINVAL with err (400
 * invalid_json, the message naming the place, e.g. "readings[2].temperature",
 * where root names a top-level array; root may be NULL). Allocates nothing.
 */
int dc_body_check_json(const char *body, size_t len, const char *root, dc_error_t *err) DC_WUR;

/* An empty body, or {} (the resolve endpoint). DC_OK or DC_EINVAL with err. */
int dc_body_empty(const char *body, size_t len, dc_error_t *err) DC_WUR;

/*
 * Bounds of recordedAt that dc_body_parse applies to ingest (dc_body_ingest
 * does not); now 0: none.
 */
typedef struct {
    int64_t now;          /* wall clock, seconds since the epoch */
    int     max_future_s; /* INGEST_MAX_FUTURE_SECONDS */
    int     retention_s;  /* READINGS_RETENTION_DAYS, in seconds */
} dc_body_limits_t;

/*
 * One reading or an array of 1..1000. Appends PostgreSQL array literals of
 * the device ids, temperatures and times (NULL for "now") to the three
 * buffers and sets *n. DC_OK or DC_EINVAL with err (400, index when an
 * element is at fault).
 */
int dc_body_ingest(const char *body, size_t len, dc_buf_t *devices, dc_buf_t *temps, dc_buf_t *times,
                   size_t *n, dc_error_t *err) DC_WUR;

typedef struct {
    char unit_id[DC_UUID_LEN + 1];
    char kind[DC_KIND_MAX + 1];
    char message[DC_MESSAGE_MAX + 1];
} dc_alert_body_t;

/* {"unitId","kind","message"}. DC_OK or DC_EINVAL with err. */
int dc_body_alert(const char *body, size_t len, dc_alert_body_t *out, dc_error_t *err) DC_WUR;

/* {"online":true|false}. DC_OK or DC_EINVAL with err. */
int dc_body_device_status(const char *body, size_t len, int *online, dc_error_t *err) DC_WUR;

/* A parsed write request, whichever endpoint it is for. */
typedef struct {
    dc_buf_t         devices, temps, times; /* ingest: array literals */
    size_t           n;                     /* ingest: readings */
    dc_alert_body_t  alert;                 /* alert create */
    int              online;                /* device status */
    dc_body_limits_t limits;                /* set by the caller; kept by dc_body_reset */
} dc_write_t;

/* Empties w for the next request (keeps buffer memory). */
void dc_body_reset(dc_write_t *w);

/* Releases w's memory. */
void dc_body_free(dc_write_t *w);

/*
 * Checks the Content-Type (415 unless JSON, for every write: a cross-site
 * form cannot send one) and parses body for req->wtype into w strictly
 * (dc_body_check_json), ingest's recordedAt within w->limits. DC_OK or
 * DC_EINVAL with err.
 */
int dc_body_parse(const dc_request_t *req, const char *content_type, const char *body, size_t len,
                  dc_write_t *w, dc_error_t *err) DC_WUR;

#endif
