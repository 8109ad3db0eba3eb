/*
 * The FastCGI record layer: a byte-at-a-time-safe parser of what a web
 * server sends on one connection, and the writers of our answers. The
 * parser keeps its place in c->hdr / content_left / padding_left, so a
 * record may be cut anywhere between two feeds; an event is returned only
 * once its whole record, padding included, has been read, so that between
 * events the parser always stands at a record boundary.
 *
 * Choices the specification leaves to the application:
 * - Records only an application sends (STDOUT, STDERR, END_REQUEST,
 *   GET_VALUES_RESULT, UNKNOWN_TYPE), DATA (filter role), BEGIN_REQUEST,
 *   PARAMS or STDIN with request id 0, GET_VALUES with a request id, and an
 *   unknown type with a request id are protocol errors.
 * - GET_VALUES content is kept in c->small: content longer than that is an
 *   error, not truncated (three names take 50 bytes; a peer sending 264+
 *   is not asking us anything useful). Names we do not know are ignored.
 * - ABORT_REQUEST for id 0, an unknown id or a request already handed out
 *   is ignored: the worker answers that request anyway.
 * - Violations are checked when the header is complete, before any content
 *   is buffered, so a bad record costs no memory.
 */
#include "dc_fcgi.h"

#include <fastcgi.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(FCGI_Header) == DC_FCGI_HEADER_LEN, "FastCGI header size");
_Static_assert(sizeof(FCGI_BeginRequestBody) == 8, "BEGIN_REQUEST body size");
_Static_assert(sizeof(FCGI_EndRequestBody) == 8, "END_REQUEST body size");
_Static_assert(sizeof(FCGI_UnknownTypeBody) == 8, "UNKNOWN_TYPE body size");

#define FIRST_PARAMS_CAP 16

void dc_fcgi_init(dc_fcgi_conn_t *c, size_t body_max)
{
    memset(c, 0, sizeof(*c));
    c->body_max = body_max;
}

void dc_fcgi_free(dc_fcgi_conn_t *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < DC_FCGI_MAX_REQS; i++) {
        dc_fcgi_req_t *r = &c->reqs[i];
        dc_buf_free(&r->raw);
        dc_buf_free(&r->names);
        dc_buf_free(&r->stdin_buf);
        free(r->params);
    }
    memset(c, 0, sizeof(*c));
}

void dc_fcgi_release(dc_fcgi_conn_t *c, dc_fcgi_req_t *r)
{
    (void)c;
    if (r == NULL)
        return;
    r->state = DC_FCGI_SLOT_FREE;
    r->id = 0;
    r->role = 0;
    r->keep_conn = 0;
    r->too_large = 0;
    r->stdin_len = 0;
    r->nparams = 0;
    dc_buf_reset(&r->raw);
    dc_buf_reset(&r->names);
    dc_buf_reset(&r->stdin_buf);
}

int dc_fcgi_busy(const dc_fcgi_conn_t *c)
{
    for (size_t i = 0; i < DC_FCGI_MAX_REQS; i++)
        if (c->reqs[i].state != DC_FCGI_SLOT_FREE)
            return 1;
    return 0;
}

const char *dc_fcgi_param(const dc_fcgi_req_t *r, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < r->nparams; i++)
        if (r->params[i].name_len == n && memcmp(r->params[i].name, name, n) == 0)
            return r->params[i].value;
    return NULL;
}

/* The request that began with id and is not released; id 0 is never one. */
static dc_fcgi_req_t *find(dc_fcgi_conn_t *c, uint16_t id)
{
    for (size_t i = 0; i < DC_FCGI_MAX_REQS; i++)
        if (c->reqs[i].state != DC_FCGI_SLOT_FREE && c->reqs[i].id == id)
            return &c->reqs[i];
    return NULL;
}

static size_t record_content_len(const dc_fcgi_conn_t *c)
{
    FCGI_Header h;

    memcpy(&h, c->hdr, sizeof(h));
    return (size_t)h.contentLengthB1 << 8 | h.contentLengthB0;
}

/*
 * The next name-value pair of p[*off..n): 1 with its lengths and *off past
 * the lengths (the name starts there), 0 at the end, -1 if the lengths or
 * the bytes they announce run past n.
 */
static int nv_next(const uint8_t *p, size_t n, size_t *off, size_t *name_len, size_t *value_len)
{
    size_t o = *off, len[2];

    if (o == n)
        return 0;
    for (int k = 0; k < 2; k++) {
        if (o >= n)
            return -1;
        if (p[o] & 0x80) {
            if (n - o < 4)
                return -1;
            len[k] = (size_t)(p[o] & 0x7f) << 24 | (size_t)p[o + 1] << 16 | (size_t)p[o + 2] << 8 | p[o + 3];
            o += 4;
        } else {
            len[k] = p[o++];
        }
    }
    if (len[0] > n - o || len[1] > n - o - len[0])
        return -1;
    *off = o;
    *name_len = len[0];
    *value_len = len[1];
    return 1;
}

/*
 * Decodes r->raw into r->names and r->params. Everything is checked and
 * sized in a first pass, so that the second can neither fail nor move the
 * names buffer; the pointers are set last all the same.
 */
static const char *decode_params(dc_fcgi_req_t *r)
{
    const uint8_t *p = (const uint8_t *)r->raw.data;
    size_t         n = r->raw.len, off = 0, count = 0, bytes = 0, nl, vl, at;
    int            rc;

    while ((rc = nv_next(p, n, &off, &nl, &vl)) == 1) {
        if (++count > DC_FCGI_MAX_PARAMS)
            return "more than DC_FCGI_MAX_PARAMS parameters";
        bytes += nl + vl + 2;
        off += nl + vl;
    }
    if (rc < 0)
        return "PARAMS: truncated name-value pair";

    if (count > r->params_cap) {
        size_t cap = r->params_cap ? r->params_cap : FIRST_PARAMS_CAP;
        void  *np;
        while (cap < count)
            cap *= 2;
        np = realloc(r->params, cap * sizeof(*r->params));
        if (np == NULL)
            return "out of memory for parameters";
        r->params = np;
        r->params_cap = cap;
    }
    dc_buf_reset(&r->names);
    if (count > 0 && dc_buf_reserve(&r->names, bytes) != DC_OK)
        return "out of memory for parameters";

    off = 0;
    for (size_t i = 0; i < count; i++) {
        (void)nv_next(p, n, &off, &nl, &vl);
        r->params[i].name_len = nl;
        r->params[i].value_len = vl;
        memcpy(r->names.data + r->names.len, p + off, nl);
        r->names.data[r->names.len + nl] = '\0';
        memcpy(r->names.data + r->names.len + nl + 1, p + off + nl, vl);
        r->names.data[r->names.len + nl + 1 + vl] = '\0';
        r->names.len += nl + vl + 2;
        off += nl + vl;
    }
    if (count > 0)
        r->names.data[r->names.len] = '\0';

    at = 0;
    for (size_t i = 0; i < count; i++) {
        r->params[i].name = r->names.data + at;
        r->params[i].value = r->names.data + at + r->params[i].name_len + 1;
        at += r->params[i].name_len + r->params[i].value_len + 2;
    }
    r->nparams = count;
    dc_buf_reset(&r->raw);
    return NULL;
}

/* Takes the header just completed; NULL, or why the record is refused. */
static const char *start_record(dc_fcgi_conn_t *c)
{
    FCGI_Header    h;
    dc_fcgi_req_t *r;

    memcpy(&h, c->hdr, sizeof(h));
    if (h.version != FCGI_VERSION_1)
        return "FastCGI version is not 1";
    c->type = h.type;
    c->id = (uint16_t)(h.requestIdB1 << 8 | h.requestIdB0);
    c->content_left = (size_t)h.contentLengthB1 << 8 | h.contentLengthB0;
    c->padding_left = h.paddingLength;
    c->small_have = 0;

    switch (c->type) {
    case FCGI_BEGIN_REQUEST:
        if (c->id == FCGI_NULL_REQUEST_ID)
            return "BEGIN_REQUEST with request id 0";
        if (c->content_left != sizeof(FCGI_BeginRequestBody))
            return "BEGIN_REQUEST body is not 8 bytes";
        return NULL;
    case FCGI_ABORT_REQUEST:
        return NULL;
    case FCGI_PARAMS:
        r = find(c, c->id);
        if (r == NULL || r->state != DC_FCGI_SLOT_PARAMS)
            return "PARAMS for a request that is not reading parameters";
        if (c->content_left > (size_t)DC_FCGI_PARAMS_MAX - r->raw.len)
            return "parameters over DC_FCGI_PARAMS_MAX bytes";
        return NULL;
    case FCGI_STDIN:
        r = find(c, c->id);
        if (r == NULL || r->state != DC_FCGI_SLOT_STDIN)
            return "STDIN for a request that is not reading its body";
        return NULL;
    case FCGI_GET_VALUES:
        if (c->id != FCGI_NULL_REQUEST_ID)
            return "GET_VALUES with a request id";
        if (c->content_left > sizeof(c->small))
            return "GET_VALUES content too long";
        return NULL;
    case FCGI_STDOUT:
    case FCGI_STDERR:
    case FCGI_END_REQUEST:
    case FCGI_GET_VALUES_RESULT:
    case FCGI_UNKNOWN_TYPE:
        return "a record type only an application sends";
    case FCGI_DATA:
        return "DATA record (filter role, not served)";
    default:
        if (c->id != FCGI_NULL_REQUEST_ID)
            return "unknown record type for a request";
        return NULL;
    }
}

/*
 * Takes n content bytes of the current record; NULL, or why it failed. The
 * request is looked up again for every piece, not kept from the header: the
 * worker may have released a slot between two feeds.
 */
static const char *take_content(dc_fcgi_conn_t *c, const uint8_t *p, size_t n)
{
    dc_fcgi_req_t *r;
    size_t         room;

    switch (c->type) {
    case FCGI_PARAMS:
        r = find(c, c->id);
        if (r == NULL || r->state != DC_FCGI_SLOT_PARAMS)
            return "PARAMS for a request that is not reading parameters";
        if (dc_buf_append(&r->raw, (const char *)p, n) != DC_OK)
            return "out of memory for parameters";
        return NULL;
    case FCGI_STDIN:
        r = find(c, c->id);
        if (r == NULL || r->state != DC_FCGI_SLOT_STDIN)
            return "STDIN for a request that is not reading its body";
        r->stdin_len += n;
        room = c->body_max - r->stdin_buf.len;
        if (n > room) {
            r->too_large = 1;
            n = room;
        }
        if (n > 0 && dc_buf_append(&r->stdin_buf, (const char *)p, n) != DC_OK)
            return "out of memory for the body";
        return NULL;
    case FCGI_BEGIN_REQUEST:
    case FCGI_GET_VALUES:
        /* start_record bounded the content by sizeof(c->small) */
        memcpy(c->small + c->small_have, p, n);
        c->small_have += n;
        return NULL;
    default:
        return NULL;
    }
}

static dc_fcgi_ev_type_t begin_request(dc_fcgi_conn_t *c, dc_fcgi_event_t *ev)
{
    FCGI_BeginRequestBody b;
    dc_fcgi_req_t        *r = NULL;

    if (find(c, c->id) != NULL) {
        ev->why = "BEGIN_REQUEST for a request id already active";
        return DC_FCGI_EV_ERROR;
    }
    memcpy(&b, c->small, sizeof(b));
    ev->id = c->id;
    if ((b.roleB1 << 8 | b.roleB0) != FCGI_RESPONDER) {
        ev->protocol_status = FCGI_UNKNOWN_ROLE;
        return DC_FCGI_EV_END;
    }
    for (size_t i = 0; i < DC_FCGI_MAX_REQS && r == NULL; i++)
        if (c->reqs[i].state == DC_FCGI_SLOT_FREE)
            r = &c->reqs[i];
    if (r == NULL) {
        ev->protocol_status = FCGI_OVERLOADED;
        return DC_FCGI_EV_END;
    }
    dc_fcgi_release(c, r);
    r->id = c->id;
    r->role = FCGI_RESPONDER;
    r->keep_conn = (b.flags & FCGI_KEEP_CONN) != 0;
    r->state = DC_FCGI_SLOT_PARAMS;
    r->begun_ns = dc_now_ns();
    return DC_FCGI_EV_NONE;
}

static dc_fcgi_ev_type_t get_values(dc_fcgi_conn_t *c, dc_fcgi_event_t *ev)
{
    static const struct {
        const char *name;
        unsigned    bit;
    } known[] = {
        { FCGI_MAX_CONNS, DC_FCGI_WANT_MAX_CONNS },
        { FCGI_MAX_REQS, DC_FCGI_WANT_MAX_REQS },
        { FCGI_MPXS_CONNS, DC_FCGI_WANT_MPXS },
    };
    size_t off = 0, nl, vl;
    int    rc;

    while ((rc = nv_next(c->small, c->small_have, &off, &nl, &vl)) == 1) {
        for (size_t i = 0; i < DC_ARRAY_LEN(known); i++)
            if (nl == strlen(known[i].name) && memcmp(c->small + off, known[i].name, nl) == 0)
                ev->want |= known[i].bit;
        off += nl + vl;
    }
    if (rc < 0) {
        ev->want = 0;
        ev->why = "GET_VALUES: truncated name-value pair";
        return DC_FCGI_EV_ERROR;
    }
    return DC_FCGI_EV_GET_VALUES;
}

/* The current record has been read whole, padding included: act on it. */
static dc_fcgi_ev_type_t end_record(dc_fcgi_conn_t *c, dc_fcgi_event_t *ev)
{
    dc_fcgi_req_t *r;

    switch (c->type) {
    case FCGI_BEGIN_REQUEST:
        return begin_request(c, ev);
    case FCGI_ABORT_REQUEST:
        r = find(c, c->id);
        if (r == NULL || r->state == DC_FCGI_SLOT_READY)
            return DC_FCGI_EV_NONE;
        dc_fcgi_release(c, r);
        ev->id = c->id;
        return DC_FCGI_EV_ABORT;
    case FCGI_PARAMS:
        if (record_content_len(c) > 0)
            return DC_FCGI_EV_NONE;
        r = find(c, c->id);
        if (r == NULL || r->state != DC_FCGI_SLOT_PARAMS)
            ev->why = "PARAMS for a request that is not reading parameters";
        else
            ev->why = decode_params(r);
        if (ev->why != NULL)
            return DC_FCGI_EV_ERROR;
        r->state = DC_FCGI_SLOT_STDIN;
        return DC_FCGI_EV_NONE;
    case FCGI_STDIN:
        if (record_content_len(c) > 0)
            return DC_FCGI_EV_NONE;
        r = find(c, c->id);
        if (r == NULL || r->state != DC_FCGI_SLOT_STDIN) {
            ev->why = "STDIN for a request that is not reading its body";
            return DC_FCGI_EV_ERROR;
        }
        r->state = DC_FCGI_SLOT_READY;
        ev->req = r;
        return DC_FCGI_EV_REQUEST;
    case FCGI_GET_VALUES:
        return get_values(c, ev);
    default:
        ev->record_type = c->type;
        return DC_FCGI_EV_UNKNOWN;
    }
}

static dc_fcgi_ev_type_t fail(dc_fcgi_conn_t *c, dc_fcgi_event_t *ev, const char *why)
{
    c->failed = 1;
    ev->type = DC_FCGI_EV_ERROR;
    ev->why = why;
    return DC_FCGI_EV_ERROR;
}

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

dc_fcgi_ev_type_t dc_fcgi_feed(dc_fcgi_conn_t *c, const void *data, size_t len, size_t *used,
                               dc_fcgi_event_t *ev)
{
    const uint8_t    *p = data;
    size_t            pos = 0, n;
    const char       *why;
    dc_fcgi_ev_type_t t;

    memset(ev, 0, sizeof(*ev));
    *used = 0;
    if (c->failed)
        return fail(c, ev, "the connection failed before");

    for (;;) {
        if (c->hdr_have < DC_FCGI_HEADER_LEN) {
            if (pos == len)
                break;
            n = min_size(DC_FCGI_HEADER_LEN - c->hdr_have, len - pos);
            memcpy(c->hdr + c->hdr_have, p + pos, n);
            c->hdr_have += n;
            pos += n;
            if (c->hdr_have < DC_FCGI_HEADER_LEN)
                break;
            if ((why = start_record(c)) != NULL) {
                *used = pos;
                return fail(c, ev, why);
            }
        }
        if (c->content_left > 0) {
            if (pos == len)
                break;
            n = min_size(c->content_left, len - pos);
            why = take_content(c, p + pos, n);
            c->content_left -= n;
            pos += n;
            if (why != NULL) {
                *used = pos;
                return fail(c, ev, why);
            }
            continue;
        }
        if (c->padding_left > 0) {
            if (pos == len)
                break;
            n = min_size(c->padding_left, len - pos);
            c->padding_left -= n;
            pos += n;
            continue;
        }
        c->hdr_have = 0;
        t = end_record(c, ev);
        if (t == DC_FCGI_EV_ERROR) {
            *used = pos;
            return fail(c, ev, ev->why);
        }
        if (t != DC_FCGI_EV_NONE) {
            ev->type = t;
            *used = pos;
            return t;
        }
    }
    *used = pos;
    return DC_FCGI_EV_NONE;
}

/* Appends a record header for content_len bytes of content and no padding. */
static int put_header(dc_buf_t *out, uint8_t type, uint16_t id, size_t content_len)
{
    FCGI_Header h;

    h.version = FCGI_VERSION_1;
    h.type = type;
    h.requestIdB1 = (unsigned char)(id >> 8);
    h.requestIdB0 = (unsigned char)id;
    h.contentLengthB1 = (unsigned char)(content_len >> 8);
    h.contentLengthB0 = (unsigned char)content_len;
    h.paddingLength = 0;
    h.reserved = 0;
    return dc_buf_append(out, (const char *)&h, sizeof(h));
}

int dc_fcgi_put_stdout(dc_buf_t *out, uint16_t id, const struct iovec *iov, int n)
{
    size_t total = 0, records, left;
    int    i = 0;
    size_t at = 0; /* bytes of iov[i] already written */

    for (int k = 0; k < n; k++) {
        if (iov[k].iov_len > SIZE_MAX - total)
            return DC_ENOMEM;
        total += iov[k].iov_len;
    }
    if (total == 0)
        return DC_OK;
    records = total / FCGI_MAX_LENGTH + (total % FCGI_MAX_LENGTH != 0);
    if (records > (SIZE_MAX - total) / DC_FCGI_HEADER_LEN)
        return DC_ENOMEM;
    /* one reservation: the records below are appended without failing */
    if (dc_buf_reserve(out, total + records * DC_FCGI_HEADER_LEN) != DC_OK)
        return DC_ENOMEM;

    for (left = total; left > 0;) {
        size_t chunk = min_size(left, FCGI_MAX_LENGTH);

        if (put_header(out, FCGI_STDOUT, id, chunk) != DC_OK)
            return DC_ENOMEM;
        left -= chunk;
        while (chunk > 0) {
            size_t k = min_size(chunk, iov[i].iov_len - at);

            if (k > 0 && dc_buf_append(out, (const char *)iov[i].iov_base + at, k) != DC_OK)
                return DC_ENOMEM;
            at += k;
            chunk -= k;
            if (at == iov[i].iov_len) {
                i++;
                at = 0;
            }
        }
    }
    return DC_OK;
}

int dc_fcgi_put_end_request(dc_buf_t *out, uint16_t id, uint32_t app_status, uint8_t protocol_status)
{
    FCGI_EndRequestBody b;

    memset(&b, 0, sizeof(b));
    b.appStatusB3 = (unsigned char)(app_status >> 24);
    b.appStatusB2 = (unsigned char)(app_status >> 16);
    b.appStatusB1 = (unsigned char)(app_status >> 8);
    b.appStatusB0 = (unsigned char)app_status;
    b.protocolStatus = protocol_status;
    if (dc_buf_reserve(out, DC_FCGI_HEADER_LEN + sizeof(b)) != DC_OK ||
        put_header(out, FCGI_END_REQUEST, id, sizeof(b)) != DC_OK ||
        dc_buf_append(out, (const char *)&b, sizeof(b)) != DC_OK)
        return DC_ENOMEM;
    return DC_OK;
}

int dc_fcgi_put_end(dc_buf_t *out, uint16_t id, uint32_t app_status)
{
    /* both records at once, so that a failure appends neither */
    if (dc_buf_reserve(out, 2 * (size_t)DC_FCGI_HEADER_LEN + sizeof(FCGI_EndRequestBody)) != DC_OK ||
        put_header(out, FCGI_STDOUT, id, 0) != DC_OK)
        return DC_ENOMEM;
    return dc_fcgi_put_end_request(out, id, app_status, FCGI_REQUEST_COMPLETE);
}

/* Appends a pair with 1-byte lengths (names and values here are short) to f. */
static void put_pair(dc_fix_t *f, const char *name, unsigned long long value)
{
    char     digits[24];
    dc_fix_t d;
    int      vl;
    uint8_t  lens[2];

    dc_fix_init(&d, digits, sizeof(digits));
    dc_fix_uint(&d, value);
    vl = dc_fix_finish(&d, digits);
    lens[0] = (uint8_t)strlen(name);
    lens[1] = (uint8_t)vl;
    dc_fix_put(f, (const char *)lens, 2);
    dc_fix_str(f, name);
    dc_fix_put(f, digits, (size_t)vl);
}

int dc_fcgi_put_get_values_result(dc_buf_t *out, const dc_fcgi_event_t *ev, unsigned max_conns)
{
    char     content[128];
    dc_fix_t f;
    size_t   len;

    dc_fix_init(&f, content, sizeof(content));
    if (ev->want & DC_FCGI_WANT_MAX_CONNS)
        put_pair(&f, FCGI_MAX_CONNS, max_conns);
    if (ev->want & DC_FCGI_WANT_MAX_REQS)
        put_pair(&f, FCGI_MAX_REQS, (unsigned long long)max_conns * DC_FCGI_MAX_REQS);
    if (ev->want & DC_FCGI_WANT_MPXS)
        put_pair(&f, FCGI_MPXS_CONNS, 1);
    /* at most 3 * (2 + 15 + 20) bytes: always fits; dc_fix_finish only adds the NUL */
    len = (size_t)(f.p - content);
    if (dc_buf_reserve(out, DC_FCGI_HEADER_LEN + len) != DC_OK ||
        put_header(out, FCGI_GET_VALUES_RESULT, FCGI_NULL_REQUEST_ID, len) != DC_OK ||
        dc_buf_append(out, content, len) != DC_OK)
        return DC_ENOMEM;
    return DC_OK;
}

int dc_fcgi_put_unknown_type(dc_buf_t *out, uint8_t type)
{
    FCGI_UnknownTypeBody b;

    memset(&b, 0, sizeof(b));
    b.type = type;
    if (dc_buf_reserve(out, DC_FCGI_HEADER_LEN + sizeof(b)) != DC_OK ||
        put_header(out, FCGI_UNKNOWN_TYPE, FCGI_NULL_REQUEST_ID, sizeof(b)) != DC_OK ||
        dc_buf_append(out, (const char *)&b, sizeof(b)) != DC_OK)
        return DC_ENOMEM;
    return DC_OK;
}

int dc_fcgi_idle(const dc_fcgi_conn_t *c)
{
    return c->hdr_have == 0 && c->content_left == 0 && c->padding_left == 0;
}
