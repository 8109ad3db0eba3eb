/*
 * Path and method → route. The router knows the URL shapes of the API and
 * nothing else: ids and query values are validated by dc_request.
 */
#ifndef DC_ROUTER_H
#define DC_ROUTER_H

#include "dc_request.h"

/*
 * Routes one request. path is the decoded path without the query string
 * (nginx's $document_uri), query the raw query string or NULL.
 * DC_OK with req filled, or DC_EINVAL with err set: 404 unknown route,
 * 405 wrong method (err->allow set), 400 bad id or parameter.
 */
int dc_router_route(const char *method, const char *path, const char *query, dc_request_t *req,
                    dc_error_t *err) DC_WUR;

#endif
