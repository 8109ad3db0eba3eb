/*
 * A response before it goes on the wire: status, the few headers dashcache
 * sets, and a body that is either the worker's buffer or a cached value.
 * dc_response_head renders the CGI header block in one pass into a caller
 * buffer, without allocating.
 */
#ifndef DC_RESPONSE_H
#define DC_RESPONSE_H

#include "dc_buf.h"
#include "dc_request.h"

#define DC_RESPONSE_HEAD_MAX 512

typedef struct {
    int         status;
    const char *x_cache;      /* "HIT", "MISS", "BYPASS", "STALE" or NULL */
    const char *etag;         /* a dashboard answer's validator (DC_ETAG_LEN hex digits), or NULL */
    const char *allow;        /* Allow header, or NULL */
    const char *challenge;    /* WWW-Authenticate header, or NULL */
    int         retry_after;  /* seconds; 0 = no header */
    int         replayed;     /* Idempotency-Replayed: true (a stored answer) */
    int         with_age;     /* an answer from the cache: an Age header */
    long long   age_s;        /* its age, seconds */
    int         head_only;    /* HEAD: no body on the wire */
    int         mroute;       /* dc_mroute_t: the route label of the metrics */
    const char *content_type; /* NULL: application/json */
    const char *body;
    size_t      body_len;
} dc_response_t;

/* "OK", "Not Found", ...; a static string. */
const char *dc_response_reason(int status);

/*
 * Writes "Status: ...\r\nContent-Type: application/json\r\n...\r\n\r\n" into
 * buf (DC_RESPONSE_HEAD_MAX bytes). Returns its length, or DC_ERROR if it
 * does not fit. With an etag (a dashboard answer, 200 or 304): the weak
 * ETag: W/"<etag>" (dc_etag.h says why weak) and Cache-Control: private,
 * no-cache (a client may keep the body, and must revalidate it before each
 * use); without: Cache-Control: no-store (errors, writes, service routes).
 * A 304 has neither Content-Type nor Content-Length.
 */
int dc_response_head(const dc_response_t *r, char *buf, size_t cap);

/*
 * Turns err into a JSON error response whose body lives in out (reset
 * first). On out of memory the body is a static JSON string.
 */
void dc_response_error(dc_response_t *r, const dc_error_t *err, dc_buf_t *out);

/* The same from its parts: {"error":{"code":code,"message":message}}. */
void dc_response_fail(dc_response_t *r, int status, const char *code, const char *message, dc_buf_t *out);

/* Answers status with the body in b (borrowed until the response is sent); x_cache may be NULL. */
void dc_response_buf(dc_response_t *r, int status, const char *x_cache, const dc_buf_t *b);

/*
 * Turns a dashboard 200 with r->etag into 304 Not Modified when the request's
 * If-None-Match (NULL: none) matches it (dc_etag_none_match): no body, the
 * same ETag and X-Cache. Anything else is left as it is. Returns whether it did.
 */
int dc_response_not_modified(dc_response_t *r, const char *if_none_match);

/*
 * The database could not answer (rc from dc_query_run or a write):
 * DC_UNAVAILABLE is a 503 with Retry-After retry_after_s, DC_ENOMEM and
 * anything else a 500.
 */
void dc_response_db_failure(dc_response_t *r, int rc, int retry_after_s, dc_buf_t *out);

#endif
