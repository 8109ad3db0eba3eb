/*
 * dc_fcgi: an nginx-like request fed whole, a byte at a time and cut at
 * every byte; parameters with 1- and 4-byte lengths; two request ids
 * interleaved on one connection; refusals (overloaded, unknown role);
 * ABORT_REQUEST; GET_VALUES answered and the answer read back; unknown
 * management records; the protocol errors; a body over body_max; the
 * writers byte for byte; a warm slot that allocates nothing; and each
 * allocation failing in turn (fail_alloc.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <fastcgi.h>

#include "dc_fcgi.h"
#include "fail_alloc.h"

#define BODY_MAX 1024

static void require_fail_alloc(void)
{
    if (!fail_alloc_works())
        skip();
}

/* ---- streams as a web server writes them */

static void put_rec(dc_buf_t *s, uint8_t type, uint16_t id, const void *content, size_t len, uint8_t padding)
{
    static const char zeros[256];
    const uint8_t     h[DC_FCGI_HEADER_LEN] = {
            FCGI_VERSION_1, type, (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(len >> 8), (uint8_t)len, padding, 0,
    };

    assert_true(len <= FCGI_MAX_LENGTH);
    assert_int_equal(dc_buf_append(s, (const char *)h, sizeof(h)), DC_OK);
    if (len > 0)
        assert_int_equal(dc_buf_append(s, content, len), DC_OK);
    assert_int_equal(dc_buf_append(s, zeros, padding), DC_OK);
}

static void put_len(dc_buf_t *s, size_t n)
{
    uint8_t b[4] = { (uint8_t)(n >> 24 | 0x80), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };

    if (n < 128) {
        b[0] = (uint8_t)n;
        assert_int_equal(dc_buf_append(s, (const char *)b, 1), DC_OK);
    } else {
        assert_int_equal(dc_buf_append(s, (const char *)b, 4), DC_OK);
    }
}

static void put_nv(dc_buf_t *s, const char *name, const char *value)
{
    put_len(s, strlen(name));
    put_len(s, strlen(value));
    assert_int_equal(dc_buf_append_str(s, name), DC_OK);
    assert_int_equal(dc_buf_append_str(s, value), DC_OK);
}

static void put_begin(dc_buf_t *s, uint16_t id, uint16_t role, uint8_t flags)
{
    const uint8_t b[8] = { (uint8_t)(role >> 8), (uint8_t)role, flags, 0, 0, 0, 0, 0 };

    put_rec(s, FCGI_BEGIN_REQUEST, id, b, sizeof(b), 0);
}

/* enc in PARAMS records of piece bytes, padded to 8 as nginx does, then the empty PARAMS. */
static void put_params(dc_buf_t *s, uint16_t id, const dc_buf_t *enc, size_t piece)
{
    for (size_t at = 0; at < enc->len; at += piece) {
        size_t n = enc->len - at < piece ? enc->len - at : piece;
        put_rec(s, FCGI_PARAMS, id, enc->data + at, n, (uint8_t)((8 - n % 8) % 8));
    }
    put_rec(s, FCGI_PARAMS, id, NULL, 0, 0);
}

static void put_stdin(dc_buf_t *s, uint16_t id, const char *body)
{
    put_rec(s, FCGI_STDIN, id, body, strlen(body), (uint8_t)((8 - strlen(body) % 8) % 8));
}

static char long_value[201]; /* 200 bytes: a 4-byte value length */
static char long_name[131];  /* 130 bytes: a 4-byte name length */

static void nginx_params(dc_buf_t *enc, const char *uri, const char *content_length)
{
    memset(long_value, 'v', sizeof(long_value) - 1);
    memcpy(long_name, "HTTP_X_", 7);
    memset(long_name + 7, 'N', sizeof(long_name) - 8);
    put_nv(enc, "REQUEST_METHOD", "POST");
    put_nv(enc, "REQUEST_URI", uri);
    put_nv(enc, "CONTENT_TYPE", "application/json");
    put_nv(enc, "CONTENT_LENGTH", content_length);
    put_nv(enc, "HTTP_X_LONG", long_value);
    put_nv(enc, "EMPTY", "");
    put_nv(enc, long_name, "n");
}

/* BEGIN (keep_conn), PARAMS in 40-byte records, empty PARAMS, "hello " + "world", empty STDIN. */
static void nginx_request(dc_buf_t *s, uint16_t id)
{
    dc_buf_t enc = DC_BUF_INIT;

    nginx_params(&enc, "/api/ingest/readings?x=1", "11");
    put_begin(s, id, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_params(s, id, &enc, 40);
    put_stdin(s, id, "hello ");
    put_stdin(s, id, "world");
    put_rec(s, FCGI_STDIN, id, NULL, 0, 0);
    dc_buf_free(&enc);
}

/* ---- feeding, with every event handled as a worker would */

typedef struct tally tally_t;

struct tally {
    void (*check)(const dc_fcgi_req_t *r, tally_t *t); /* called for every REQUEST */
    int             hold;                              /* keep REQUEST slots instead of releasing them */
    int             n[DC_FCGI_EV_ERROR + 1];           /* events seen, by type */
    uint16_t        ids[64];                           /* of REQUEST, ABORT and END, in order */
    uint8_t         status[64];                        /* END: protocol_status; else 0 */
    size_t          nids;
    dc_fcgi_event_t last;
    dc_fcgi_req_t  *held;
};

static void note_id(tally_t *t, uint16_t id, uint8_t status)
{
    assert_true(t->nids < DC_ARRAY_LEN(t->ids));
    t->ids[t->nids] = id;
    t->status[t->nids++] = status;
}

/* Feeds p[0..n) to the end or to an error; returns DC_FCGI_EV_NONE or DC_FCGI_EV_ERROR. */
static dc_fcgi_ev_type_t feed(dc_fcgi_conn_t *c, const uint8_t *p, size_t n, tally_t *t)
{
    for (;;) {
        dc_fcgi_event_t   ev;
        size_t            used = SIZE_MAX;
        dc_fcgi_ev_type_t type = dc_fcgi_feed(c, p, n, &used, &ev);

        assert_int_equal(type, ev.type);
        assert_true(used <= n);
        if (type == DC_FCGI_EV_NONE) {
            assert_int_equal(used, n);
            return type;
        }
        if (used > 0) {
            p += used;
            n -= used;
        }
        t->n[type]++;
        t->last = ev;
        switch (type) {
        case DC_FCGI_EV_REQUEST:
            assert_non_null(ev.req);
            assert_int_equal(ev.req->state, DC_FCGI_SLOT_READY);
            note_id(t, ev.req->id, 0);
            if (t->check != NULL)
                t->check(ev.req, t);
            if (t->hold)
                t->held = ev.req;
            else
                dc_fcgi_release(c, ev.req);
            break;
        case DC_FCGI_EV_ABORT:
            note_id(t, ev.id, 0);
            break;
        case DC_FCGI_EV_END:
            note_id(t, ev.id, ev.protocol_status);
            break;
        case DC_FCGI_EV_ERROR:
            assert_non_null(ev.why);
            return type;
        default:
            break;
        }
    }
}

/* Feeds s cut before each of cuts[0..ncuts), each piece an exact heap copy (ASan sees over-reads). */
static dc_fcgi_ev_type_t feed_cut(dc_fcgi_conn_t *c, const dc_buf_t *s, const size_t *cuts, size_t ncuts,
                                  tally_t *t)
{
    size_t from = 0;

    for (size_t k = 0; k <= ncuts; k++) {
        size_t   to = k < ncuts ? cuts[k] : s->len;
        uint8_t *piece = malloc(to - from + 1);
        int      rc;

        assert_non_null(piece);
        memcpy(piece, s->data + from, to - from);
        rc = feed(c, piece, to - from, t);
        free(piece);
        if (rc == DC_FCGI_EV_ERROR)
            return DC_FCGI_EV_ERROR;
        from = to;
    }
    return DC_FCGI_EV_NONE;
}

static dc_fcgi_ev_type_t feed_buf(dc_fcgi_conn_t *c, const dc_buf_t *s, tally_t *t)
{
    return feed(c, (const uint8_t *)s->data, s->len, t);
}

static void check_nginx(const dc_fcgi_req_t *r, tally_t *t)
{
    (void)t;
    assert_int_equal(r->role, FCGI_RESPONDER);
    assert_int_equal(r->keep_conn, 1);
    assert_int_equal(r->too_large, 0);
    assert_int_equal(r->nparams, 7);
    assert_string_equal(dc_fcgi_param(r, "REQUEST_METHOD"), "POST");
    assert_string_equal(dc_fcgi_param(r, "REQUEST_URI"), "/api/ingest/readings?x=1");
    assert_string_equal(dc_fcgi_param(r, "CONTENT_TYPE"), "application/json");
    assert_string_equal(dc_fcgi_param(r, "CONTENT_LENGTH"), "11");
    assert_string_equal(dc_fcgi_param(r, "HTTP_X_LONG"), long_value);
    assert_string_equal(dc_fcgi_param(r, "EMPTY"), "");
    assert_string_equal(dc_fcgi_param(r, long_name), "n");
    assert_int_equal(r->stdin_buf.len, 11);
    assert_int_equal(r->stdin_len, 11);
    assert_memory_equal(r->stdin_buf.data, "hello world", 12);
}

static void assert_one_request(const tally_t *t, uint16_t id)
{
    assert_int_equal(t->n[DC_FCGI_EV_REQUEST], 1);
    assert_int_equal(t->n[DC_FCGI_EV_ERROR], 0);
    assert_int_equal(t->n[DC_FCGI_EV_END] + t->n[DC_FCGI_EV_ABORT] + t->n[DC_FCGI_EV_UNKNOWN], 0);
    assert_int_equal(t->ids[0], id);
}

/* ---- the request, however it is cut */

static void test_request_whole(void **state)
{
    dc_buf_t       s = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .check = check_nginx };

    (void)state;
    nginx_request(&s, 1);
    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_cut(&c, &s, NULL, 0, &t), DC_FCGI_EV_NONE);
    assert_one_request(&t, 1);
    assert_false(dc_fcgi_busy(&c));
    dc_fcgi_free(&c);
    dc_buf_free(&s);
}

static void test_request_byte_at_a_time(void **state)
{
    dc_buf_t       s = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .check = check_nginx };
    size_t        *cuts;

    (void)state;
    nginx_request(&s, 1);
    cuts = malloc(s.len * sizeof(*cuts));
    assert_non_null(cuts);
    for (size_t i = 0; i < s.len; i++)
        cuts[i] = i + 1;
    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_cut(&c, &s, cuts, s.len - 1, &t), DC_FCGI_EV_NONE);
    assert_one_request(&t, 1);
    dc_fcgi_free(&c);
    free(cuts);
    dc_buf_free(&s);
}

static void test_request_every_split_point(void **state)
{
    dc_buf_t s = DC_BUF_INIT;

    (void)state;
    nginx_request(&s, 1);
    for (size_t k = 0; k <= s.len; k++) {
        dc_fcgi_conn_t c;
        tally_t        t = { .check = check_nginx };

        dc_fcgi_init(&c, BODY_MAX);
        assert_int_equal(feed_cut(&c, &s, &k, 1, &t), DC_FCGI_EV_NONE);
        assert_one_request(&t, 1);
        dc_fcgi_free(&c);
    }
    dc_buf_free(&s);
}

/* Three requests back to back in one feed, on a connection kept open. */
static void test_requests_back_to_back(void **state)
{
    dc_buf_t       s = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .check = check_nginx };

    (void)state;
    nginx_request(&s, 1);
    nginx_request(&s, 1);
    nginx_request(&s, 7);
    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 3);
    assert_int_equal(t.ids[2], 7);
    dc_fcgi_free(&c);
    dc_buf_free(&s);
}

/* ---- parameters */

static void check_params(const dc_fcgi_req_t *r, tally_t *t)
{
    static const char *const names[] = { "REQUEST_METHOD", "REQUEST_URI", "CONTENT_TYPE", "CONTENT_LENGTH",
                                         "HTTP_X_LONG",    "EMPTY",       long_name };

    (void)t;
    assert_int_equal(r->nparams, DC_ARRAY_LEN(names));
    for (size_t i = 0; i < r->nparams; i++) {
        const dc_fcgi_param_t *p = &r->params[i];
        assert_string_equal(p->name, names[i]);
        assert_int_equal(p->name_len, strlen(names[i]));
        assert_int_equal(p->name[p->name_len], '\0');
        assert_int_equal(p->value[p->value_len], '\0');
        assert_int_equal(strlen(p->value), p->value_len);
        assert_ptr_equal(dc_fcgi_param(r, names[i]), p->value);
    }
    assert_int_equal(strlen(long_name), 130);
    assert_int_equal(r->params[4].value_len, 200);
    assert_int_equal(strlen(dc_fcgi_param(r, "HTTP_X_LONG")), 200);
    assert_int_equal(r->params[6].name_len, 130);
    assert_non_null(dc_fcgi_param(r, "EMPTY"));
    assert_null(dc_fcgi_param(r, "REQUEST"));
    assert_null(dc_fcgi_param(r, "REQUEST_METHODS"));
    assert_null(dc_fcgi_param(r, "request_method"));
    assert_null(dc_fcgi_param(r, ""));
    assert_null(dc_fcgi_param(r, "SCRIPT_NAME"));
}

static void test_params_lookup(void **state)
{
    dc_buf_t       s = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .check = check_params };

    (void)state;
    nginx_request(&s, 1);
    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_one_request(&t, 1);
    dc_fcgi_free(&c);
    dc_buf_free(&s);
}

/* A pair cut between records, in its lengths and in its name, and a request with no parameters. */
static void test_params_cut_inside_a_pair(void **state)
{
    dc_buf_t       s = DC_BUF_INIT, enc = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .hold = 1 };

    (void)state;
    put_nv(&enc, "HTTP_X_LONG", long_value);
    put_nv(&enc, "A", "b");
    put_begin(&s, 3, FCGI_RESPONDER, 0);
    put_params(&s, 3, &enc, 2); /* the 4-byte length across two records */
    put_rec(&s, FCGI_STDIN, 3, NULL, 0, 0);
    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 1);
    assert_int_equal(t.held->keep_conn, 0);
    assert_int_equal(t.held->nparams, 2);
    assert_string_equal(dc_fcgi_param(t.held, "HTTP_X_LONG"), long_value);
    assert_string_equal(dc_fcgi_param(t.held, "A"), "b");
    assert_int_equal(t.held->stdin_buf.len, 0);
    assert_int_equal(t.held->stdin_len, 0);
    dc_fcgi_release(&c, t.held);

    dc_buf_reset(&s);
    put_begin(&s, 3, FCGI_RESPONDER, 0);
    put_rec(&s, FCGI_PARAMS, 3, NULL, 0, 0);
    put_rec(&s, FCGI_STDIN, 3, NULL, 0, 0);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 2);
    assert_int_equal(t.held->nparams, 0);
    assert_null(dc_fcgi_param(t.held, "A"));
    dc_fcgi_release(&c, t.held);
    dc_fcgi_free(&c);
    dc_buf_free(&enc);
    dc_buf_free(&s);
}

/* ---- several requests on one connection */

static void check_interleaved(const dc_fcgi_req_t *r, tally_t *t)
{
    (void)t;
    if (r->id == 1) {
        assert_string_equal(dc_fcgi_param(r, "REQUEST_URI"), "/one");
        assert_string_equal(r->stdin_buf.data, "body of one");
        assert_int_equal(r->keep_conn, 1);
    } else {
        assert_int_equal(r->id, 2);
        assert_string_equal(dc_fcgi_param(r, "REQUEST_URI"), "/two");
        assert_string_equal(r->stdin_buf.data, "2");
        assert_int_equal(r->keep_conn, 0);
    }
    assert_string_equal(dc_fcgi_param(r, "SHARED"), "x");
    assert_int_equal(r->nparams, 2);
}

static void test_two_ids_interleaved(void **state)
{
    dc_buf_t       s = DC_BUF_INIT, e1 = DC_BUF_INIT, e2 = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .check = check_interleaved };

    (void)state;
    put_nv(&e1, "REQUEST_URI", "/one");
    put_nv(&e1, "SHARED", "x");
    put_nv(&e2, "REQUEST_URI", "/two");
    put_nv(&e2, "SHARED", "x");
    put_begin(&s, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_begin(&s, 2, FCGI_RESPONDER, 0);
    put_rec(&s, FCGI_PARAMS, 1, e1.data, 5, 3);
    put_rec(&s, FCGI_PARAMS, 2, e2.data, 9, 0);
    put_rec(&s, FCGI_PARAMS, 1, e1.data + 5, e1.len - 5, 0);
    put_rec(&s, FCGI_PARAMS, 1, NULL, 0, 0);
    put_stdin(&s, 1, "body ");
    put_rec(&s, FCGI_PARAMS, 2, e2.data + 9, e2.len - 9, 1);
    put_rec(&s, FCGI_PARAMS, 2, NULL, 0, 0);
    put_stdin(&s, 2, "2");
    put_stdin(&s, 1, "of one");
    put_rec(&s, FCGI_STDIN, 2, NULL, 0, 0);
    put_rec(&s, FCGI_STDIN, 1, NULL, 0, 0);

    for (size_t k = 0; k <= s.len; k++) {
        memset(&t.n, 0, sizeof(t.n));
        t.nids = 0;
        dc_fcgi_init(&c, BODY_MAX);
        assert_int_equal(feed_cut(&c, &s, &k, 1, &t), DC_FCGI_EV_NONE);
        assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 2);
        assert_int_equal(t.nids, 2);
        assert_int_equal(t.ids[0], 2);
        assert_int_equal(t.ids[1], 1);
        assert_false(dc_fcgi_busy(&c));
        dc_fcgi_free(&c);
    }
    dc_buf_free(&e1);
    dc_buf_free(&e2);
    dc_buf_free(&s);
}

/* DC_FCGI_MAX_REQS + 1 BEGINs: the last is refused, and takes no slot. */
static void begin_too_many(dc_fcgi_conn_t *c, tally_t *t)
{
    dc_buf_t s = DC_BUF_INIT;

    for (uint16_t id = 1; id <= DC_FCGI_MAX_REQS + 1; id++)
        put_begin(&s, id, FCGI_RESPONDER, FCGI_KEEP_CONN);
    dc_fcgi_init(c, BODY_MAX);
    assert_int_equal(feed_buf(c, &s, t), DC_FCGI_EV_NONE);
    assert_int_equal(t->n[DC_FCGI_EV_END], 1);
    assert_int_equal(t->nids, 1);
    assert_int_equal(t->ids[0], DC_FCGI_MAX_REQS + 1);
    assert_int_equal(t->status[0], FCGI_OVERLOADED);
    assert_int_equal(t->last.protocol_status, FCGI_OVERLOADED);
    assert_true(dc_fcgi_busy(c));
    dc_buf_free(&s);
}

static void test_overloaded(void **state)
{
    dc_buf_t       s = DC_BUF_INIT, enc = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .check = check_nginx };

    (void)state;
    begin_too_many(&c, &t);
    /* the requests that got a slot go on; a finished one frees its slot for the refused id */
    nginx_params(&enc, "/api/ingest/readings?x=1", "11");
    put_params(&s, 2, &enc, 100);
    put_stdin(&s, 2, "hello world");
    put_rec(&s, FCGI_STDIN, 2, NULL, 0, 0);
    nginx_request(&s, DC_FCGI_MAX_REQS + 1);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 2);
    assert_int_equal(t.ids[1], 2);
    assert_int_equal(t.ids[2], DC_FCGI_MAX_REQS + 1);
    assert_int_equal(t.n[DC_FCGI_EV_END], 1);
    dc_fcgi_free(&c);

    /* parameters for the refused id are an error */
    memset(&t, 0, sizeof(t));
    begin_too_many(&c, &t);
    dc_buf_reset(&s);
    put_rec(&s, FCGI_PARAMS, DC_FCGI_MAX_REQS + 1, NULL, 0, 0);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_ERROR);
    dc_fcgi_free(&c);
    dc_buf_free(&enc);
    dc_buf_free(&s);
}

static void test_unknown_role(void **state)
{
    dc_buf_t       s = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .check = check_nginx };

    (void)state;
    put_begin(&s, 1, FCGI_AUTHORIZER, FCGI_KEEP_CONN);
    put_begin(&s, 2, FCGI_FILTER, 0);
    put_begin(&s, 3, 0x0101, 0);
    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_END], 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(t.ids[i], i + 1);
        assert_int_equal(t.status[i], FCGI_UNKNOWN_ROLE);
    }
    assert_false(dc_fcgi_busy(&c));

    /* the same id as a responder is served */
    dc_buf_reset(&s);
    nginx_request(&s, 1);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 1);
    dc_fcgi_free(&c);
    dc_buf_free(&s);
}

/* ---- ABORT_REQUEST */

/* An aborted request's slot is free, and the next request on it sees nothing of the aborted one. */
static void test_abort_before_complete(void **state)
{
    dc_buf_t       s = DC_BUF_INIT, enc = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .check = check_nginx };

    (void)state;
    put_nv(&enc, "STALE", "must not survive the abort");
    dc_fcgi_init(&c, BODY_MAX);

    /* during PARAMS */
    put_begin(&s, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_rec(&s, FCGI_PARAMS, 1, enc.data, enc.len, 0);
    put_rec(&s, FCGI_ABORT_REQUEST, 1, NULL, 0, 0);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_ABORT], 1);
    assert_int_equal(t.ids[0], 1);
    assert_int_equal(t.last.id, 1);
    assert_false(dc_fcgi_busy(&c));
    dc_buf_reset(&s);
    nginx_request(&s, 1);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 1);

    /* during STDIN */
    dc_buf_reset(&s);
    put_begin(&s, 2, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_params(&s, 2, &enc, 100);
    put_stdin(&s, 2, "stale body");
    put_rec(&s, FCGI_ABORT_REQUEST, 2, NULL, 0, 0);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_ABORT], 2);
    assert_int_equal(t.ids[2], 2);
    assert_false(dc_fcgi_busy(&c));

    /* an unknown id and id 0: ignored */
    dc_buf_reset(&s);
    put_rec(&s, FCGI_ABORT_REQUEST, 9, NULL, 0, 0);
    put_rec(&s, FCGI_ABORT_REQUEST, 0, NULL, 0, 0);
    nginx_request(&s, 2);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_ABORT], 2);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 2);
    assert_int_equal(t.n[DC_FCGI_EV_ERROR], 0);
    dc_fcgi_free(&c);
    dc_buf_free(&enc);
    dc_buf_free(&s);
}

/* A request handed out is answered anyway: ABORT_REQUEST for it changes nothing. */
static void test_abort_after_complete_is_ignored(void **state)
{
    dc_buf_t       s = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .check = check_nginx, .hold = 1 };

    (void)state;
    nginx_request(&s, 4);
    put_rec(&s, FCGI_ABORT_REQUEST, 4, NULL, 0, 0);
    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 1);
    assert_int_equal(t.n[DC_FCGI_EV_ABORT], 0);
    assert_true(dc_fcgi_busy(&c));
    assert_int_equal(t.held->state, DC_FCGI_SLOT_READY);
    check_nginx(t.held, &t);
    dc_fcgi_release(&c, t.held);
    assert_false(dc_fcgi_busy(&c));
    dc_fcgi_free(&c);
    dc_buf_free(&s);
}

/* ---- management records */

/* Reads a GET_VALUES_RESULT record: the value of each of names, or NULL; checks nothing else is there. */
static void read_values(const dc_buf_t *out, char values[3][32])
{
    static const char *const names[3] = { FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS };
    const uint8_t           *p = (const uint8_t *)out->data;
    size_t                   len, at = DC_FCGI_HEADER_LEN;

    assert_true(out->len >= DC_FCGI_HEADER_LEN);
    assert_int_equal(p[0], FCGI_VERSION_1);
    assert_int_equal(p[1], FCGI_GET_VALUES_RESULT);
    assert_int_equal(p[2], 0);
    assert_int_equal(p[3], 0);
    len = (size_t)p[4] << 8 | p[5];
    assert_int_equal(p[6], 0);
    assert_int_equal(out->len, DC_FCGI_HEADER_LEN + len);
    memset(values, 0, sizeof(values[0]) * 3);
    while (at < out->len) {
        size_t nl = p[at], vl = p[at + 1], i;
        assert_true(nl < 128 && vl < 32);
        at += 2;
        assert_true(at + nl + vl <= out->len);
        for (i = 0; i < 3; i++)
            if (strlen(names[i]) == nl && memcmp(p + at, names[i], nl) == 0)
                break;
        assert_true(i < 3);
        assert_int_equal(values[i][0], '\0'); /* each name once */
        memcpy(values[i], p + at + nl, vl);
        assert_true(vl > 0);
        at += nl + vl;
    }
}

static void test_get_values_round_trip(void **state)
{
    dc_buf_t       s = DC_BUF_INIT, enc = DC_BUF_INIT, out = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { 0 };
    char           v[3][32];

    (void)state;
    put_nv(&enc, FCGI_MAX_CONNS, "");
    put_nv(&enc, "FCGI_SOMETHING_ELSE", "");
    put_nv(&enc, FCGI_MPXS_CONNS, "");
    put_nv(&enc, FCGI_MAX_REQS, "");
    put_rec(&s, FCGI_GET_VALUES, 0, enc.data, enc.len, 5);
    dc_fcgi_init(&c, BODY_MAX);
    for (size_t k = 0; k <= s.len; k++) {
        memset(&t, 0, sizeof(t));
        assert_int_equal(feed_cut(&c, &s, &k, 1, &t), DC_FCGI_EV_NONE);
        assert_int_equal(t.n[DC_FCGI_EV_GET_VALUES], 1);
        assert_int_equal(t.last.want, DC_FCGI_WANT_MAX_CONNS | DC_FCGI_WANT_MAX_REQS | DC_FCGI_WANT_MPXS);
    }
    assert_int_equal(dc_fcgi_put_get_values_result(&out, &t.last, 10), DC_OK);
    read_values(&out, v);
    assert_string_equal(v[0], "10");
    assert_string_equal(v[1], "40");
    assert_string_equal(v[2], "1");

    /* only what was asked */
    dc_buf_reset(&s);
    dc_buf_reset(&enc);
    put_nv(&enc, FCGI_MAX_REQS, "");
    put_rec(&s, FCGI_GET_VALUES, 0, enc.data, enc.len, 0);
    memset(&t, 0, sizeof(t));
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.last.want, DC_FCGI_WANT_MAX_REQS);
    dc_buf_reset(&out);
    assert_int_equal(dc_fcgi_put_get_values_result(&out, &t.last, 4000000000u), DC_OK);
    read_values(&out, v);
    assert_string_equal(v[0], "");
    assert_string_equal(v[1], "16000000000");
    assert_string_equal(v[2], "");

    /* nothing asked: an empty answer */
    dc_buf_reset(&s);
    put_rec(&s, FCGI_GET_VALUES, 0, NULL, 0, 0);
    memset(&t, 0, sizeof(t));
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_GET_VALUES], 1);
    assert_int_equal(t.last.want, 0);
    dc_buf_reset(&out);
    assert_int_equal(dc_fcgi_put_get_values_result(&out, &t.last, 10), DC_OK);
    assert_int_equal(out.len, DC_FCGI_HEADER_LEN);
    read_values(&out, v);

    /* the largest content that fits c->small is read, a name in it with a 4-byte length */
    dc_buf_reset(&s);
    dc_buf_reset(&enc);
    {
        char name[sizeof(c.small) - 5 + 1];
        memset(name, 'k', sizeof(name) - 1);
        name[sizeof(name) - 1] = '\0';
        put_nv(&enc, name, "");
    }
    assert_int_equal(enc.len, sizeof(c.small));
    put_rec(&s, FCGI_GET_VALUES, 0, enc.data, enc.len, 0);
    memset(&t, 0, sizeof(t));
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_GET_VALUES], 1);
    assert_int_equal(t.last.want, 0);

    dc_fcgi_free(&c);
    dc_buf_free(&out);
    dc_buf_free(&enc);
    dc_buf_free(&s);
}

static void test_unknown_management_type(void **state)
{
    static const uint8_t want[] = { 1, FCGI_UNKNOWN_TYPE, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0 };
    dc_buf_t             s = DC_BUF_INIT, out = DC_BUF_INIT;
    dc_fcgi_conn_t       c;
    tally_t              t = { .check = check_nginx };

    (void)state;
    put_rec(&s, 42, 0, "12345", 5, 3);
    nginx_request(&s, 1);
    put_rec(&s, 200, 0, NULL, 0, 0);
    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_UNKNOWN], 2);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 1);
    assert_int_equal(t.last.record_type, 200);

    dc_buf_reset(&s);
    put_rec(&s, 42, 0, NULL, 0, 0);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.last.type, DC_FCGI_EV_UNKNOWN);
    assert_int_equal(t.last.record_type, 42);
    assert_int_equal(dc_fcgi_put_unknown_type(&out, t.last.record_type), DC_OK);
    assert_int_equal(out.len, sizeof(want));
    assert_memory_equal(out.data, want, sizeof(want));
    dc_fcgi_free(&c);
    dc_buf_free(&out);
    dc_buf_free(&s);
}

/* ---- protocol errors */

/*
 * Feeds s to a new connection: it must end in DC_FCGI_EV_ERROR after
 * requests complete requests, and every later feed must fail too.
 */
static void assert_error_after(const dc_buf_t *s, int requests)
{
    dc_buf_t          good = DC_BUF_INIT;
    dc_fcgi_conn_t    c;
    tally_t           t = { 0 };
    dc_fcgi_event_t   ev;
    size_t            used = 1;
    dc_fcgi_ev_type_t type;

    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_buf(&c, s, &t), DC_FCGI_EV_ERROR);
    assert_int_equal(t.n[DC_FCGI_EV_ERROR], 1);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], requests);
    assert_non_null(t.last.why);
    assert_true(c.failed);

    type = dc_fcgi_feed(&c, NULL, 0, &used, &ev);
    assert_int_equal(type, DC_FCGI_EV_ERROR);
    assert_int_equal(ev.type, DC_FCGI_EV_ERROR);
    assert_non_null(ev.why);
    nginx_request(&good, 1);
    assert_int_equal(feed_buf(&c, &good, &t), DC_FCGI_EV_ERROR);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], requests);
    dc_fcgi_free(&c);
    dc_buf_free(&good);
}

static void assert_protocol_error(const dc_buf_t *s)
{
    assert_error_after(s, 0);
}

static void test_error_bad_version(void **state)
{
    static const uint8_t v2[] = { 2, FCGI_BEGIN_REQUEST, 0, 1, 0, 8, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0 };
    dc_buf_t             s = DC_BUF_INIT;

    (void)state;
    assert_int_equal(dc_buf_append(&s, (const char *)v2, sizeof(v2)), DC_OK);
    assert_protocol_error(&s);
    s.data[0] = 0;
    assert_protocol_error(&s);
    /* a bad version after a good request */
    dc_buf_reset(&s);
    nginx_request(&s, 1);
    assert_int_equal(dc_buf_append(&s, (const char *)v2, sizeof(v2)), DC_OK);
    assert_error_after(&s, 1);
    dc_buf_free(&s);
}

static void test_error_params_for_unknown_id(void **state)
{
    dc_buf_t s = DC_BUF_INIT, enc = DC_BUF_INIT;

    (void)state;
    put_nv(&enc, "A", "b");
    put_rec(&s, FCGI_PARAMS, 1, enc.data, enc.len, 0);
    assert_protocol_error(&s);

    dc_buf_reset(&s);
    put_begin(&s, 1, FCGI_RESPONDER, 0);
    put_rec(&s, FCGI_PARAMS, 2, enc.data, enc.len, 0);
    assert_protocol_error(&s);

    dc_buf_reset(&s); /* the empty PARAMS too */
    put_begin(&s, 1, FCGI_RESPONDER, 0);
    put_rec(&s, FCGI_PARAMS, 2, NULL, 0, 0);
    assert_protocol_error(&s);

    dc_buf_reset(&s); /* id 0 */
    put_rec(&s, FCGI_PARAMS, 0, NULL, 0, 0);
    assert_protocol_error(&s);

    dc_buf_reset(&s); /* PARAMS once STDIN has begun */
    put_begin(&s, 1, FCGI_RESPONDER, 0);
    put_params(&s, 1, &enc, 100);
    put_rec(&s, FCGI_PARAMS, 1, enc.data, enc.len, 0);
    assert_protocol_error(&s);
    dc_buf_free(&enc);
    dc_buf_free(&s);
}

static void test_error_stdin_out_of_place(void **state)
{
    dc_buf_t s = DC_BUF_INIT;

    (void)state;
    put_stdin(&s, 1, "x");
    assert_protocol_error(&s);

    dc_buf_reset(&s); /* before the empty PARAMS */
    put_begin(&s, 1, FCGI_RESPONDER, 0);
    put_rec(&s, FCGI_STDIN, 1, NULL, 0, 0);
    assert_protocol_error(&s);

    dc_buf_reset(&s); /* after the request was handed out */
    nginx_request(&s, 1);
    put_stdin(&s, 1, "more");
    {
        dc_fcgi_conn_t c;
        tally_t        t = { .hold = 1 };
        dc_fcgi_init(&c, BODY_MAX);
        assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_ERROR);
        assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 1);
        dc_fcgi_free(&c);
    }
    dc_buf_free(&s);
}

static void test_error_truncated_pair(void **state)
{
    static const uint8_t short_value[] = { 4, 10, 'N', 'A', 'M', 'E', 'v', 'a', 'l' };
    static const uint8_t short_length[] = { 0x80, 0 };
    static const uint8_t no_value_length[] = { 3 };
    static const uint8_t short_name[] = { 0x80, 0, 0, 9, 0, 'N' };
    const uint8_t       *cases[] = { short_value, short_length, no_value_length, short_name };
    const size_t         lens[] = { sizeof(short_value), sizeof(short_length), sizeof(no_value_length),
                                    sizeof(short_name) };
    dc_buf_t             s = DC_BUF_INIT, enc = DC_BUF_INIT;

    (void)state;
    for (size_t i = 0; i < DC_ARRAY_LEN(cases); i++) {
        dc_buf_reset(&s);
        dc_buf_reset(&enc);
        put_nv(&enc, "GOOD", "pair");
        assert_int_equal(dc_buf_append(&enc, (const char *)cases[i], lens[i]), DC_OK);
        put_begin(&s, 1, FCGI_RESPONDER, 0);
        put_params(&s, 1, &enc, 3);
        assert_protocol_error(&s);
    }
    dc_buf_free(&enc);
    dc_buf_free(&s);
}

/* DC_FCGI_PARAMS_MAX bytes of parameters pass; one byte more is an error. */
static void test_error_params_over_max(void **state)
{
    dc_buf_t       s = DC_BUF_INIT, enc = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .hold = 1 };
    char          *big = malloc((size_t)DC_FCGI_PARAMS_MAX);

    (void)state;
    assert_non_null(big);
    memset(big, 'p', DC_FCGI_PARAMS_MAX - 8);
    big[DC_FCGI_PARAMS_MAX - 8] = '\0'; /* 1 + 4 + 3 + 65528 bytes */
    put_nv(&enc, "BIG", big);
    assert_int_equal(enc.len, DC_FCGI_PARAMS_MAX);
    put_begin(&s, 1, FCGI_RESPONDER, 0);
    put_params(&s, 1, &enc, FCGI_MAX_LENGTH);
    put_rec(&s, FCGI_STDIN, 1, NULL, 0, 0);
    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 1);
    assert_int_equal(strlen(dc_fcgi_param(t.held, "BIG")), DC_FCGI_PARAMS_MAX - 8);
    dc_fcgi_free(&c);

    dc_buf_reset(&s);
    assert_int_equal(dc_buf_append(&enc, "x", 1), DC_OK);
    put_begin(&s, 1, FCGI_RESPONDER, 0);
    put_params(&s, 1, &enc, FCGI_MAX_LENGTH);
    assert_protocol_error(&s);

    dc_buf_reset(&s); /* many small records */
    put_begin(&s, 1, FCGI_RESPONDER, 0);
    put_params(&s, 1, &enc, 1000);
    assert_protocol_error(&s);
    free(big);
    dc_buf_free(&enc);
    dc_buf_free(&s);
}

static void test_error_too_many_params(void **state)
{
    dc_buf_t       s = DC_BUF_INIT, enc = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .hold = 1 };

    (void)state;
    for (int i = 0; i < DC_FCGI_MAX_PARAMS; i++)
        put_nv(&enc, "a", "");
    put_begin(&s, 1, FCGI_RESPONDER, 0);
    put_params(&s, 1, &enc, 1000);
    put_rec(&s, FCGI_STDIN, 1, NULL, 0, 0);
    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 1);
    assert_int_equal(t.held->nparams, DC_FCGI_MAX_PARAMS);
    dc_fcgi_free(&c);

    put_nv(&enc, "a", "");
    dc_buf_reset(&s);
    put_begin(&s, 1, FCGI_RESPONDER, 0);
    put_params(&s, 1, &enc, 1000);
    assert_protocol_error(&s);
    dc_buf_free(&enc);
    dc_buf_free(&s);
}

/* Records a web server never sends, whatever the id. */
static void test_error_application_records_from_peer(void **state)
{
    static const uint8_t types[] = { FCGI_STDOUT,       FCGI_STDERR, FCGI_END_REQUEST, FCGI_GET_VALUES_RESULT,
                                     FCGI_UNKNOWN_TYPE, FCGI_DATA };
    dc_buf_t             s = DC_BUF_INIT;

    (void)state;
    for (size_t i = 0; i < sizeof(types); i++) {
        for (uint16_t id = 0; id <= 1; id++) {
            dc_buf_reset(&s);
            put_begin(&s, 1, FCGI_RESPONDER, 0);
            put_rec(&s, types[i], id, "x", 1, 0);
            assert_protocol_error(&s);
        }
    }
    dc_buf_reset(&s); /* STDOUT without content, on an idle connection */
    put_rec(&s, FCGI_STDOUT, 1, NULL, 0, 0);
    assert_protocol_error(&s);
    dc_buf_free(&s);
}

static void test_error_bad_begin_and_management(void **state)
{
    static const char body7[7] = { 0, 1 };
    dc_buf_t          s = DC_BUF_INIT;
    char              big[sizeof(((dc_fcgi_conn_t *)0)->small) + 1];

    (void)state;
    put_rec(&s, FCGI_BEGIN_REQUEST, 1, body7, sizeof(body7), 1); /* 7-byte body */
    assert_protocol_error(&s);

    dc_buf_reset(&s);
    put_begin(&s, 0, FCGI_RESPONDER, 0); /* request id 0 */
    assert_protocol_error(&s);

    dc_buf_reset(&s);
    put_begin(&s, 1, FCGI_RESPONDER, 0);
    put_begin(&s, 1, FCGI_RESPONDER, 0); /* an id already active */
    assert_protocol_error(&s);

    dc_buf_reset(&s);
    put_rec(&s, FCGI_GET_VALUES, 1, NULL, 0, 0); /* GET_VALUES with a request id */
    assert_protocol_error(&s);

    dc_buf_reset(&s);
    memset(big, 0, sizeof(big));
    put_rec(&s, FCGI_GET_VALUES, 0, big, sizeof(big), 0); /* over c->small */
    assert_protocol_error(&s);

    dc_buf_reset(&s);
    put_rec(&s, FCGI_GET_VALUES, 0, "\x0e\x05" FCGI_MAX_CONNS "1", 17, 0); /* truncated pair */
    assert_protocol_error(&s);

    dc_buf_reset(&s);
    put_rec(&s, 42, 1, NULL, 0, 0); /* unknown type for a request */
    assert_protocol_error(&s);
    dc_buf_free(&s);
}

/* ---- body limit */

static void check_body(const dc_fcgi_req_t *r, tally_t *t)
{
    (void)t;
    if (r->id == 1) {
        assert_int_equal(r->too_large, 1);
        assert_int_equal(r->stdin_len, 20);
        assert_int_equal(r->stdin_buf.len, 10);
        assert_string_equal(r->stdin_buf.data, "0123456789");
    } else {
        assert_int_equal(r->id, 2);
        assert_int_equal(r->too_large, 0);
        assert_int_equal(r->stdin_len, 10);
        assert_int_equal(r->stdin_buf.len, 10);
        assert_string_equal(r->stdin_buf.data, "exactly 10");
    }
}

/* 20 bytes of body with body_max 10: read to the end, 10 kept; the next request is read as usual. */
static void test_body_over_body_max(void **state)
{
    dc_buf_t s = DC_BUF_INIT;

    (void)state;
    put_begin(&s, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_rec(&s, FCGI_PARAMS, 1, NULL, 0, 0);
    put_stdin(&s, 1, "01234567");
    put_stdin(&s, 1, "89abcdefghij");
    put_rec(&s, FCGI_STDIN, 1, NULL, 0, 0);
    put_begin(&s, 2, FCGI_RESPONDER, FCGI_KEEP_CONN);
    put_rec(&s, FCGI_PARAMS, 2, NULL, 0, 0);
    put_stdin(&s, 2, "exactly 10");
    put_rec(&s, FCGI_STDIN, 2, NULL, 0, 0);

    for (size_t k = 0; k <= s.len; k++) {
        dc_fcgi_conn_t c;
        tally_t        t = { .check = check_body };

        dc_fcgi_init(&c, 10);
        assert_int_equal(feed_cut(&c, &s, &k, 1, &t), DC_FCGI_EV_NONE);
        assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 2);
        assert_int_equal(t.ids[0], 1);
        assert_int_equal(t.ids[1], 2);
        assert_false(dc_fcgi_busy(&c));
        dc_fcgi_free(&c);
    }
    dc_buf_free(&s);
}

/* ---- writers */

static void assert_header(const uint8_t *h, uint8_t type, uint16_t id, size_t len)
{
    const uint8_t want[DC_FCGI_HEADER_LEN] = {
        1, type, (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(len >> 8), (uint8_t)len, 0, 0,
    };
    assert_memory_equal(h, want, sizeof(want));
}

static void test_put_stdout_splits(void **state)
{
    enum { N = 70000 };
    char        *src = malloc(N);
    dc_buf_t     out = DC_BUF_INIT;
    struct iovec iov[3];

    (void)state;
    assert_non_null(src);
    for (size_t i = 0; i < N; i++)
        src[i] = (char)(i * 7 + i / 251);
    iov[0] = (struct iovec){ src, 30000 };
    iov[1] = (struct iovec){ NULL, 0 };
    iov[2] = (struct iovec){ src + 30000, N - 30000 };
    assert_int_equal(dc_buf_append(&out, "kept", 4), DC_OK);
    assert_int_equal(dc_fcgi_put_stdout(&out, 0x0102, iov, 3), DC_OK);
    assert_int_equal(out.len, 4 + N + 2 * DC_FCGI_HEADER_LEN);
    assert_memory_equal(out.data, "kept", 4);
    assert_header((const uint8_t *)out.data + 4, FCGI_STDOUT, 0x0102, FCGI_MAX_LENGTH);
    assert_memory_equal(out.data + 4 + 8, src, FCGI_MAX_LENGTH);
    assert_header((const uint8_t *)out.data + 4 + 8 + FCGI_MAX_LENGTH, FCGI_STDOUT, 0x0102,
                  N - FCGI_MAX_LENGTH);
    assert_memory_equal(out.data + 4 + 16 + FCGI_MAX_LENGTH, src + FCGI_MAX_LENGTH, N - FCGI_MAX_LENGTH);

    /* exactly FCGI_MAX_LENGTH: one record; one more byte: two */
    dc_buf_reset(&out);
    iov[0] = (struct iovec){ src, FCGI_MAX_LENGTH };
    assert_int_equal(dc_fcgi_put_stdout(&out, 1, iov, 1), DC_OK);
    assert_int_equal(out.len, FCGI_MAX_LENGTH + 8);
    dc_buf_reset(&out);
    iov[0] = (struct iovec){ src, FCGI_MAX_LENGTH + 1 };
    assert_int_equal(dc_fcgi_put_stdout(&out, 1, iov, 1), DC_OK);
    assert_int_equal(out.len, FCGI_MAX_LENGTH + 1 + 16);
    assert_header((const uint8_t *)out.data + 8 + FCGI_MAX_LENGTH, FCGI_STDOUT, 1, 1);
    assert_int_equal(out.data[16 + FCGI_MAX_LENGTH], src[FCGI_MAX_LENGTH]);

    /* small iovecs in one record */
    dc_buf_reset(&out);
    memcpy(src, "Status: 200\r\n\r\n{}", 17);
    iov[0] = (struct iovec){ src, 13 };
    iov[1] = (struct iovec){ src + 13, 2 };
    iov[2] = (struct iovec){ src + 15, 2 };
    assert_int_equal(dc_fcgi_put_stdout(&out, 1, iov, 3), DC_OK);
    assert_int_equal(out.len, 8 + 17);
    assert_header((const uint8_t *)out.data, FCGI_STDOUT, 1, 17);
    assert_memory_equal(out.data + 8, "Status: 200\r\n\r\n{}", 17);

    /* nothing for no bytes */
    dc_buf_reset(&out);
    iov[0] = (struct iovec){ NULL, 0 };
    assert_int_equal(dc_fcgi_put_stdout(&out, 1, iov, 1), DC_OK);
    assert_int_equal(dc_fcgi_put_stdout(&out, 1, iov, 0), DC_OK);
    assert_int_equal(out.len, 0);
    free(src);
    dc_buf_free(&out);
}

static void test_put_end_records(void **state)
{
    static const uint8_t end[] = {
        1, FCGI_STDOUT, 1, 2, 0, 0, 0, 0, 1, FCGI_END_REQUEST, 1, 2, 0, 8, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0,
    };
    static const uint8_t refuse[] = {
        1, FCGI_END_REQUEST, 0, 5, 0, 8, 0, 0, 0, 0, 0, 0, FCGI_OVERLOADED, 0, 0, 0,
    };
    dc_buf_t out = DC_BUF_INIT;

    (void)state;
    assert_int_equal(dc_fcgi_put_end(&out, 0x0102, 0x01020304), DC_OK);
    assert_int_equal(out.len, sizeof(end));
    assert_memory_equal(out.data, end, sizeof(end));

    dc_buf_reset(&out);
    assert_int_equal(dc_fcgi_put_end_request(&out, 5, 0, FCGI_OVERLOADED), DC_OK);
    assert_int_equal(out.len, sizeof(refuse));
    assert_memory_equal(out.data, refuse, sizeof(refuse));
    dc_buf_free(&out);
}

static void test_writers_out_of_memory(void **state)
{
    dc_buf_t        out = DC_BUF_INIT;
    dc_fcgi_event_t ev = { .want = 7 };
    char            x[1] = { 'x' };
    struct iovec    iov = { x, 1 };

    (void)state;
    require_fail_alloc();
    fail_alloc_arm(FAIL_FROM, 0);
    assert_int_equal(dc_fcgi_put_stdout(&out, 1, &iov, 1), DC_ENOMEM);
    assert_int_equal(dc_fcgi_put_end(&out, 1, 0), DC_ENOMEM);
    assert_int_equal(dc_fcgi_put_end_request(&out, 1, 0, FCGI_OVERLOADED), DC_ENOMEM);
    assert_int_equal(dc_fcgi_put_get_values_result(&out, &ev, 1), DC_ENOMEM);
    assert_int_equal(dc_fcgi_put_unknown_type(&out, 1), DC_ENOMEM);
    fail_alloc_disarm();
    assert_int_equal(out.len, 0);
    dc_buf_free(&out);
}

/* ---- memory */

/* Feeds without the copies feed_cut makes, so that only the parser allocates. */
static dc_fcgi_ev_type_t feed_raw(dc_fcgi_conn_t *c, const dc_buf_t *s, dc_fcgi_req_t **req)
{
    size_t at = 0, used;

    *req = NULL;
    for (;;) {
        dc_fcgi_event_t   ev;
        dc_fcgi_ev_type_t type = dc_fcgi_feed(c, s->data + at, s->len - at, &used, &ev);

        at += used;
        if (type == DC_FCGI_EV_REQUEST)
            *req = ev.req;
        else if (type != DC_FCGI_EV_NONE)
            return type;
        if (at == s->len && type == DC_FCGI_EV_NONE)
            return *req != NULL ? DC_FCGI_EV_REQUEST : DC_FCGI_EV_NONE;
    }
}

static void test_warm_slot_does_not_allocate(void **state)
{
    dc_buf_t          s = DC_BUF_INIT;
    dc_fcgi_conn_t    c;
    dc_fcgi_req_t    *r;
    dc_fcgi_ev_type_t type;
    const char       *names, *body;
    const void       *params;

    (void)state;
    require_fail_alloc();
    nginx_request(&s, 1);
    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_raw(&c, &s, &r), DC_FCGI_EV_REQUEST);
    check_nginx(r, NULL);
    names = r->names.data;
    body = r->stdin_buf.data;
    params = r->params;
    dc_fcgi_release(&c, r);
    assert_int_equal(r->nparams, 0);
    assert_int_equal(r->stdin_len, 0);
    assert_int_equal(r->stdin_buf.len, 0);
    assert_false(dc_fcgi_busy(&c));

    fail_alloc_arm(FAIL_FROM, 0);
    type = feed_raw(&c, &s, &r);
    fail_alloc_disarm();
    assert_int_equal(fail_state.calls, 0);
    assert_int_equal(type, DC_FCGI_EV_REQUEST);
    check_nginx(r, NULL);
    assert_ptr_equal(r->names.data, names);
    assert_ptr_equal(r->stdin_buf.data, body);
    assert_ptr_equal(r->params, params);
    dc_fcgi_release(&c, r);
    dc_fcgi_free(&c);
    dc_fcgi_free(NULL);
    dc_buf_free(&s);
}

/* Every allocation of a request fails in turn: each failure is DC_FCGI_EV_ERROR, never a request. */
static void test_allocation_failures(void **state)
{
    dc_buf_t s = DC_BUF_INIT;
    long     i;

    (void)state;
    require_fail_alloc();
    nginx_request(&s, 1);
    for (i = 0;; i++) {
        dc_fcgi_conn_t    c;
        dc_fcgi_req_t    *r;
        dc_fcgi_ev_type_t type;

        dc_fcgi_init(&c, BODY_MAX);
        fail_alloc_arm(FAIL_ONE, i);
        type = feed_raw(&c, &s, &r);
        fail_alloc_disarm();
        if (fail_state.failed == 0) {
            assert_int_equal(type, DC_FCGI_EV_REQUEST);
            check_nginx(r, NULL);
            dc_fcgi_free(&c);
            break;
        }
        assert_int_equal(type, DC_FCGI_EV_ERROR);
        assert_null(r);
        assert_true(c.failed);
        dc_fcgi_free(&c);
    }
    /* raw, its growth, the params array, the names and the body */
    assert_true(i >= 4);
    dc_buf_free(&s);
}

static void test_init_free_reuse(void **state)
{
    dc_buf_t       s = DC_BUF_INIT;
    dc_fcgi_conn_t c;
    tally_t        t = { .check = check_nginx };

    (void)state;
    nginx_request(&s, 1);
    dc_fcgi_init(&c, BODY_MAX);
    assert_false(dc_fcgi_busy(&c));
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    dc_fcgi_free(&c);
    dc_fcgi_init(&c, BODY_MAX);
    assert_int_equal(feed_buf(&c, &s, &t), DC_FCGI_EV_NONE);
    assert_int_equal(t.n[DC_FCGI_EV_REQUEST], 2);
    dc_fcgi_free(&c);
    dc_buf_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_whole),
        cmocka_unit_test(test_request_byte_at_a_time),
        cmocka_unit_test(test_request_every_split_point),
        cmocka_unit_test(test_requests_back_to_back),
        cmocka_unit_test(test_params_lookup),
        cmocka_unit_test(test_params_cut_inside_a_pair),
        cmocka_unit_test(test_two_ids_interleaved),
        cmocka_unit_test(test_overloaded),
        cmocka_unit_test(test_unknown_role),
        cmocka_unit_test(test_abort_before_complete),
        cmocka_unit_test(test_abort_after_complete_is_ignored),
        cmocka_unit_test(test_get_values_round_trip),
        cmocka_unit_test(test_unknown_management_type),
        cmocka_unit_test(test_error_bad_version),
        cmocka_unit_test(test_error_params_for_unknown_id),
        cmocka_unit_test(test_error_stdin_out_of_place),
        cmocka_unit_test(test_error_truncated_pair),
        cmocka_unit_test(test_error_params_over_max),
        cmocka_unit_test(test_error_too_many_params),
        cmocka_unit_test(test_error_application_records_from_peer),
        cmocka_unit_test(test_error_bad_begin_and_management),
        cmocka_unit_test(test_body_over_body_max),
        cmocka_unit_test(test_put_stdout_splits),
        cmocka_unit_test(test_put_end_records),
        cmocka_unit_test(test_writers_out_of_memory),
        cmocka_unit_test(test_warm_slot_does_not_allocate),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_init_free_reuse),
    };

    return cmocka_run_group_tests_name("dc_fcgi", tests, NULL, NULL);
}
