/* Response head rendering and JSON error responses. */
#include "dc_response.h"

#include <stdio.h>
#include <string.h>

#include "dc_view.h"

const char *dc_response_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 400:
        return "Bad Request";
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

int dc_response_head(const dc_response_t *r, char *buf, size_t cap)
{
    int n = snprintf(buf, cap,
                     "Status: %d %s\r\n"
                     "Content-Type: %s\r\n"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-store\r\n",
                     r->status, dc_response_reason(r->status),
                     r->content_type ? r->content_type : "application/json", r->body_len);
    if (n < 0 || (size_t)n >= cap)
        return DC_ERROR;
    if (r->x_cache != NULL)
        n += snprintf(buf + n, cap - (size_t)n, "X-Cache: %s\r\n", r->x_cache);
    if (r->allow != NULL && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, "Allow: %s\r\n", r->allow);
    if (r->retry_after > 0 && (size_t)n < cap)
        n += snprintf(buf + n, cap - (size_t)n, "Retry-After: %d\r\n", r->retry_after);
    if ((size_t)n + 2 >= cap)
        return DC_ERROR;
    buf[n++] = '\r';
    buf[n++] = '\n';
    buf[n] = '\0';
    return n;
}

void dc_response_error(dc_response_t *r, const dc_error_t *err, dc_buf_t *out)
{
    static const char oom[] = "{\"error\":{\"code\":\"out_of_memory\",\"message\":\"out of memory\"}}";

    dc_buf_reset(out);
    r->status = err->status;
    r->allow = err->allow;
    if (dc_view_error(err->code, err->message, err->index, out) == DC_OK) {
        r->body = out->data;
        r->body_len = out->len;
    } else {
        r->status = 500;
        r->body = oom;
        r->body_len = sizeof(oom) - 1;
    }
}
