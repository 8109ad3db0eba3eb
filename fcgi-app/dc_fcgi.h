/*
 * The FastCGI record layer (FastCGI 1.0): a parser for what a web server
 * sends on one connection, and the writers of what we answer. No I/O:
 * dc_worker reads bytes from the socket, feeds them here, and writes what
 * the writers appended to the connection's output buffer. libfcgi's API is
 * blocking and one request at a time; we keep only its protocol definitions
 * (fastcgi.h).
 *
 * What it handles: BEGIN_REQUEST (roles; FCGI_KEEP_CONN), PARAMS (name-value
 * pairs with 1- and 4-byte lengths, split anywhere across records), STDIN
 * (bounded; past the bound the rest is read and dropped and the request is
 * marked too large), ABORT_REQUEST, GET_VALUES, unknown record types, and up
 * to DC_FCGI_MAX_REQS request ids at a time on one connection (nginx uses
 * one, id 1). Records and their headers may be split across reads at any
 * byte; several may arrive in one read.
 *
 * Memory: a connection's request slots keep their buffers from request to
 * request (dc_buf_t), so a warm connection does not allocate. Everything a
 * peer can make us hold is bounded: DC_FCGI_PARAMS_MAX bytes of parameters,
 * DC_FCGI_MAX_PARAMS pairs, body_max bytes of body per request.
 */
#ifndef DC_FCGI_H
#define DC_FCGI_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "dc_buf.h"
#include "dc_core.h"

#define DC_FCGI_MAX_REQS   4           /* request ids served at once on one connection */
#define DC_FCGI_PARAMS_MAX (64 * 1024) /* encoded parameter bytes of one request */
#define DC_FCGI_MAX_PARAMS 256         /* name-value pairs of one request */
#define DC_FCGI_HEADER_LEN 8

typedef struct {
    const char *name; /* NUL-terminated; valid until the request's slot is released */
    const char *value;
    size_t      name_len, value_len;
} dc_fcgi_param_t;

typedef enum {
    DC_FCGI_SLOT_FREE = 0,
    DC_FCGI_SLOT_PARAMS, /* BEGIN_REQUEST seen, reading PARAMS */
    DC_FCGI_SLOT_STDIN,  /* empty PARAMS seen, reading STDIN */
    DC_FCGI_SLOT_READY,  /* empty STDIN seen: handed out as DC_FCGI_EV_REQUEST */
} dc_fcgi_slot_state_t;

/* One request on a connection. Fields are read-only outside dc_fcgi.c. */
typedef struct {
    uint16_t             id;
    uint16_t             role;
    int                  keep_conn; /* FCGI_KEEP_CONN was set */
    int                  too_large; /* the body was over body_max: stdin holds its first part only */
    dc_fcgi_slot_state_t state;
    dc_buf_t             raw;   /* PARAMS content until decoded */
    dc_buf_t             names; /* decoded names and values, NUL-terminated */
    dc_fcgi_param_t     *params;
    size_t               nparams, params_cap;
    dc_buf_t             stdin_buf; /* the body */
    size_t               stdin_len; /* body bytes received, counting dropped ones */
    int64_t              begun_ns;  /* dc_now_ns() when its BEGIN_REQUEST came in */
} dc_fcgi_req_t;

typedef enum {
    DC_FCGI_EV_NONE = 0, /* all input consumed, nothing to do yet */
    DC_FCGI_EV_REQUEST,  /* ev.req is complete: answer it, then dc_fcgi_release */
    DC_FCGI_EV_ABORT,    /* ev.id aborted before it was complete (slot released): answer END_REQUEST */
    DC_FCGI_EV_END,      /* answer ev.id with END_REQUEST and ev.protocol_status (unknown role, overloaded) */
    DC_FCGI_EV_GET_VALUES, /* answer with dc_fcgi_put_get_values_result(ev) */
    DC_FCGI_EV_UNKNOWN,    /* answer with dc_fcgi_put_unknown_type(ev.type) */
    DC_FCGI_EV_ERROR,      /* protocol violation or a bound exceeded: close the connection; ev.why */
} dc_fcgi_ev_type_t;

typedef struct {
    dc_fcgi_ev_type_t type;
    dc_fcgi_req_t    *req;             /* DC_FCGI_EV_REQUEST */
    uint16_t          id;              /* ABORT, END */
    uint8_t           protocol_status; /* END: FCGI_UNKNOWN_ROLE or FCGI_OVERLOADED */
    uint8_t           record_type;     /* UNKNOWN */
    unsigned          want;            /* GET_VALUES: DC_FCGI_WANT_* bits of the names asked for */
    const char       *why;             /* ERROR: static text for the log */
} dc_fcgi_event_t;

#define DC_FCGI_WANT_MAX_CONNS 1u
#define DC_FCGI_WANT_MAX_REQS  2u
#define DC_FCGI_WANT_MPXS      4u

/* Parser state of one connection. Fields are private to dc_fcgi.c. */
typedef struct {
    dc_fcgi_req_t reqs[DC_FCGI_MAX_REQS];
    size_t        body_max;
    uint8_t       hdr[DC_FCGI_HEADER_LEN];
    size_t        hdr_have;     /* header bytes collected */
    uint8_t       type;         /* of the record being read */
    uint16_t      id;           /* of the record being read */
    size_t        content_left; /* content bytes of the current record still to come */
    size_t        padding_left;
    uint8_t       small[DC_FCGI_HEADER_LEN + 256]; /* BEGIN_REQUEST/ABORT/GET_VALUES content */
    size_t        small_have;
    int           failed; /* after DC_FCGI_EV_ERROR, every feed fails */
} dc_fcgi_conn_t;

/* Sets up an empty connection whose requests may carry body_max bytes of body. */
void dc_fcgi_init(dc_fcgi_conn_t *c, size_t body_max);

/* Frees every buffer; the connection can be initialised again. */
void dc_fcgi_free(dc_fcgi_conn_t *c);

/*
 * Consumes bytes from data[0..len) until an event or the end of the input;
 * *used is how many it consumed. Call again with the rest after handling
 * the event (DC_FCGI_EV_NONE: everything was consumed). Returns the event's
 * type; DC_FCGI_EV_ERROR also on out of memory.
 */
dc_fcgi_ev_type_t dc_fcgi_feed(dc_fcgi_conn_t *c, const void *data, size_t len, size_t *used,
                               dc_fcgi_event_t *ev);

/* The value of parameter name in a complete request, or NULL. */
const char *dc_fcgi_param(const dc_fcgi_req_t *r, const char *name);

/* Frees a request's slot for the next request (its buffers are kept). */
void dc_fcgi_release(dc_fcgi_conn_t *c, dc_fcgi_req_t *r);

/* Whether any request of the connection has begun and not been released. */
int dc_fcgi_busy(const dc_fcgi_conn_t *c);

/* Whether the parser stands between records (no record partly read). */
int dc_fcgi_idle(const dc_fcgi_conn_t *c);

/*
 * Writers: each appends whole records to out. DC_OK or DC_ENOMEM (out may
 * hold part of what was appended; the connection is then closed anyway).
 */

/* STDOUT records with the concatenation of iov[0..n), split at FCGI_MAX_LENGTH. Nothing for 0 bytes. */
int dc_fcgi_put_stdout(dc_buf_t *out, uint16_t id, const struct iovec *iov, int n) DC_WUR;

/* The empty STDOUT that closes the stream, then END_REQUEST(app_status, FCGI_REQUEST_COMPLETE). */
int dc_fcgi_put_end(dc_buf_t *out, uint16_t id, uint32_t app_status) DC_WUR;

/* END_REQUEST alone, with protocol_status (refusing a request: unknown role, overloaded). */
int dc_fcgi_put_end_request(dc_buf_t *out, uint16_t id, uint32_t app_status, uint8_t protocol_status) DC_WUR;

/* GET_VALUES_RESULT answering the names of ev->want. */
int dc_fcgi_put_get_values_result(dc_buf_t *out, const dc_fcgi_event_t *ev, unsigned max_conns) DC_WUR;

/* UNKNOWN_TYPE for a record type we do not know. */
int dc_fcgi_put_unknown_type(dc_buf_t *out, uint8_t type) DC_WUR;

#endif
