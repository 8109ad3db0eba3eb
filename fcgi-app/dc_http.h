/*
 * A small HTTP/1.0 client for dashcachectl: it talks to a running pool the
 * way any client does, through nginx, so that what it does (status, warm)
 * goes through the normal path: routing, authorization, the cache-aside
 * lookups with their generations, leases and breakers. One request per
 * connection (Connection: close), plain http on an address of the
 * operator's choosing; every wait is bounded by the caller's timeout.
 */
#ifndef DC_HTTP_H
#define DC_HTTP_H

#include "dc_buf.h"
#include "dc_core.h"

typedef struct {
    char host[256];
    char port[8];
    char prefix[256]; /* path the API paths are appended to; "" for / */
} dc_http_target_t;

/* Parses http://HOST[:PORT][/PREFIX] (port 80 by default). DC_OK or DC_EINVAL with err. */
int dc_http_target(const char *url, dc_http_target_t *t, dc_err_t *err) DC_WUR;

/*
 * GET t's prefix + path with the Authorization header auth (NULL: none),
 * within timeout_ms in all. DC_OK with *status and the body in body
 * (reset first; the caller frees it), or DC_UNAVAILABLE with err (could
 * not connect, timed out, no HTTP answer).
 */
int dc_http_get(const dc_http_target_t *t, const char *path, const char *auth, int timeout_ms, dc_buf_t *body,
                int *status, dc_err_t *err) DC_WUR;

/*
 * What dc_http_get_many tells its caller of each request as it ends:
 * status is the HTTP status, or 0 when there was no answer (err says why).
 * Returning non-zero stops it: requests in flight are abandoned, no new
 * one starts.
 */
typedef int (*dc_http_done_fn)(size_t i, int status, const dc_err_t *err, void *arg);

/*
 * GETs paths[0..n) with at most k in flight (non-blocking sockets and
 * poll), each within timeout_ms; done is called once per request that
 * ended, in the order they end. tick (NULL is fine) is called at least
 * every 200 ms while it waits (a progress bar). Returns the number of
 * requests that ended.
 */
size_t dc_http_get_many(const dc_http_target_t *t, const char *const *paths, size_t n, const char *auth,
                        int k, int timeout_ms, dc_http_done_fn done, void (*tick)(void *arg), void *arg);

#endif
