/* Response head rendering and JSON error responses. */
#include "dc_response.h"

#include <string.h>

#include "dc_etag.h"
#include "dc_view.h"

const char *dc_response_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* "<name_colon_space><value>\r\n", when there is a value. */
static void put_header(dc_fix_t *f, const char *name_colon_space, const char *value)
{
    if (value == NULL)
        return;
    dc_fix_str(f, name_colon_space);
    dc_fix_str(f, value);
    DC_FIX_LIT(f, "\r\n");
}

int dc_response_head(const dc_response_t *r, char *buf, size_t cap)
{
    dc_fix_t f;

    dc_fix_init(&f, buf, cap);
    DC_FIX_LIT(&f, "Status: ");
    dc_fix_uint(&f, (unsigned)r->status);
    DC_FIX_LIT(&f, " ");
    dc_fix_str(&f, dc_response_reason(r->status));
    DC_FIX_LIT(&f, "\r\n");
    if (r->status != 304) {
        DC_FIX_LIT(&f, "Content-Type: ");
        dc_fix_str(&f, r->content_type ? r->content_type : "application/json");
        DC_FIX_LIT(&f, "\r\nContent-Length: ");
        dc_fix_uint(&f, r->body_len);
        DC_FIX_LIT(&f, "\r\n");
    }
    if (r->etag != NULL) {
        DC_FIX_LIT(&f, "Cache-Control: private, no-cache\r\nETag: W/\"");
        dc_fix_str(&f, r->etag);
        DC_FIX_LIT(&f, "\"\r\n");
    } else {
        DC_FIX_LIT(&f, "Cache-Control: no-store\r\n");
    }
    put_header(&f, "X-Cache: ", r->x_cache);
    if (r->with_age) {
        DC_FIX_LIT(&f, "Age: ");
        dc_fix_uint(&f, (unsigned)r->age_s);
        DC_FIX_LIT(&f, "\r\n");
    }
    put_header(&f, "Allow: ", r->allow);
    put_header(&f, "WWW-Authenticate: ", r->challenge);
    if (r->replayed)
        DC_FIX_LIT(&f, "Idempotency-Replayed: true\r\n");
    if (r->retry_after > 0) {
        DC_FIX_LIT(&f, "Retry-After: ");
        dc_fix_uint(&f, (unsigned)r->retry_after);
        DC_FIX_LIT(&f, "\r\n");
    }
    DC_FIX_LIT(&f, "\r\n");
    return dc_fix_finish(&f, buf);
}

void dc_response_error(dc_response_t *r, const dc_error_t *err, dc_buf_t *out)
{
    static const char oom[] = "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";

    dc_buf_reset(out);
    r->status = err->status;
    r->allow = err->allow;
    r->challenge = err->challenge;
    if (dc_view_error(err->code, err->message, err->index, out) == DC_OK) {
        r->body = out->data;
        r->body_len = out->len;
    } else {
        r->status = 500;
        r->body = oom;
        r->body_len = sizeof(oom) - 1;
    }
}

void dc_response_fail(dc_response_t *r, int status, const char *code, const char *message, dc_buf_t *out)
{
    dc_error_t err;

    dc_error_set(&err, status, code, "%s", message);
    dc_response_error(r, &err, out);
}

void dc_response_buf(dc_response_t *r, int status, const char *x_cache, const dc_buf_t *b)
{
    r->status = status;
    r->x_cache = x_cache;
    r->body = b->data;
    r->body_len = b->len;
}

int dc_response_not_modified(dc_response_t *r, const char *if_none_match)
{
    if (r->status != 200 || r->etag == NULL || !dc_etag_none_match(if_none_match, r->etag))
        return 0;
    r->status = 304;
    r->body = NULL;
    r->body_len = 0;
    return 1;
}

void dc_response_db_failure(dc_response_t *r, int rc, int retry_after_s, dc_buf_t *out)
{
    if (rc == DC_ENOMEM) {
        dc_response_fail(r, 500, "out_of_memory", "out of memory", out);
    } else if (rc == DC_UNAVAILABLE) {
        dc_response_fail(r, 503, "database_unavailable",
                         "the database is unavailable and the answer is not cached; retry later", out);
        r->retry_after = retry_after_s;
    } else {
        dc_response_fail(r, 500, "internal_error", "the query failed", out);
    }
}
