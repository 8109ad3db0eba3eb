/*
 * The pool's status page, /status (php-fpm's pm.status_path, with its field
 * names, so an operator's habits and scripts carry over): the pool's
 * figures, and with ?full a row per worker. Text by default, JSON with
 * ?json. The figures come from the shared metrics file (dc_metrics), so
 * whichever worker answers shows the whole pool, under the prefork master,
 * spawn-fcgi or systemd alike. nginx restricts it like /metrics.
 */
#ifndef DC_STATUS_H
#define DC_STATUS_H

#include "dc_buf.h"
#include "dc_metrics.h"
#include "dc_request.h"

typedef struct {
    int full; /* a row per worker */
    int json;
} dc_status_opts_t;

/*
 * The options of a query string (without '?', NULL for none): "full" and
 * "json", each bare or =1/true/0/false, in any order; php-fpm's "html" and
 * "xml" are refused, other parameters ignored (as on every route). DC_OK,
 * or DC_EINVAL with err (400).
 */
int dc_status_parse(const char *query, dc_status_opts_t *o, dc_error_t *err) DC_WUR;

/* Fills each row's rss_kb from /proc/<pid>/statm (0 when it cannot be read). */
void dc_status_read_rss(dc_pool_status_t *st, long rss_kb[DC_POOL_PROCS_MAX]);

/*
 * Appends the page of st to out as o says, at wall clock now_ms; rss_kb as
 * dc_status_read_rss left it (NULL: not shown). DC_OK or DC_ENOMEM.
 */
int dc_status_render(const dc_pool_status_t *st, const long *rss_kb, const dc_status_opts_t *o,
                     int64_t now_ms, dc_buf_t *out) DC_WUR;

#endif
