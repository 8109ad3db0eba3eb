/*
 * Fuzz target: the FastCGI record layer (dc_fcgi_feed and the writers) on
 * what a web server, or anyone who reaches the socket, could send.
 *
 * Input: byte 0 picks body_max (0..126 bytes, or 4..8 KiB in steps of 64)
 * and whether requests are held (slots fill up) or released at once;
 * byte 1 picks how the rest is cut: whole, a byte at a time, or pieces of
 * pseudo-random length (1..16 or 1..1024) from a generator seeded with the
 * input. Each piece is an exact heap copy (ASan sees any read past it).
 * Every event is answered with the writers, as dc_worker would, and each
 * answer is read back as records; requests get up to 70000 bytes more of
 * STDOUT than they carry, so that answers span several records.
 *
 * Invariants: used <= len; DC_FCGI_EV_NONE only once everything is used
 * (each call makes progress or returns an event); no event but ERROR after
 * an ERROR, which has a reason. REQUEST: a READY slot of this connection
 * with a request id, the responder role, nparams <= DC_FCGI_MAX_PARAMS,
 * every name and value NUL-terminated inside the names buffer, lookups
 * that find the first pair of a name; a body of min(stdin_len, body_max)
 * bytes, too_large exactly when stdin_len is over body_max. END: unknown
 * role or overloaded, the latter only with every slot taken. ABORT: the id
 * holds no slot any more. Answers: whole version-1 records of the types an
 * application sends, STDOUT content equal to what was written.
 */
#include <fastcgi.h>
#include <sys/uio.h>

#include "dc_fcgi.h"
#include "fuzz.h"

static dc_buf_t out, got;

static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Reads out back: whole records; the STDOUT content of id goes to got. */
static void check_answer(uint16_t id)
{
    const uint8_t *p = (const uint8_t *)out.data;
    size_t         at = 0;

    dc_buf_reset(&got);
    while (at < out.len) {
        size_t   len;
        uint16_t rid;

        FUZZ_CHECK(out.len - at >= DC_FCGI_HEADER_LEN, "a cut header at %zu of %zu", at, out.len);
        FUZZ_CHECK(p[at] == FCGI_VERSION_1, "version %u", p[at]);
        rid = (uint16_t)(p[at + 2] << 8 | p[at + 3]);
        len = (size_t)p[at + 4] << 8 | p[at + 5];
        FUZZ_CHECK(p[at + 6] == 0 && p[at + 7] == 0, "padding or reserved set");
        FUZZ_CHECK(out.len - at - DC_FCGI_HEADER_LEN >= len, "record of %zu bytes cut", len);
        switch (p[at + 1]) {
        case FCGI_STDOUT:
            FUZZ_CHECK(rid == id, "STDOUT for %u, not %u", rid, id);
            if (dc_buf_append(&got, (const char *)p + at + DC_FCGI_HEADER_LEN, len) != DC_OK)
                abort();
            break;
        case FCGI_END_REQUEST:
            FUZZ_CHECK(rid == id && len == sizeof(FCGI_EndRequestBody), "END_REQUEST %u of %zu bytes", rid,
                       len);
            break;
        case FCGI_GET_VALUES_RESULT:
        case FCGI_UNKNOWN_TYPE:
            FUZZ_CHECK(rid == 0, "management record for id %u", rid);
            break;
        default:
            FUZZ_CHECK(0, "record type %u written", p[at + 1]);
        }
        at += DC_FCGI_HEADER_LEN + len;
    }
    FUZZ_CHECK(at == out.len, "records end at %zu of %zu", at, out.len);
}

static void check_request(const dc_fcgi_conn_t *c, const dc_fcgi_req_t *r)
{
    size_t names = 0;

    FUZZ_CHECK(r >= c->reqs && r < c->reqs + DC_FCGI_MAX_REQS, "request outside the connection");
    FUZZ_CHECK(r->state == DC_FCGI_SLOT_READY, "state %d", (int)r->state);
    FUZZ_CHECK(r->id != 0 && r->role == FCGI_RESPONDER, "id %u role %u", r->id, r->role);
    FUZZ_CHECK(r->nparams <= DC_FCGI_MAX_PARAMS, "%zu params", r->nparams);
    for (size_t i = 0; i < r->nparams; i++) {
        const dc_fcgi_param_t *p = &r->params[i];
        const char            *end = r->names.data + r->names.len;

        FUZZ_CHECK(p->name >= r->names.data && p->name + p->name_len < end, "name %zu outside names", i);
        FUZZ_CHECK(p->value >= r->names.data && p->value + p->value_len < end, "value %zu outside names", i);
        FUZZ_CHECK(p->name[p->name_len] == '\0' && p->value[p->value_len] == '\0', "param %zu unterminated",
                   i);
        names += p->name_len + p->value_len + 2;
        if (strlen(p->name) == p->name_len) {
            const char *v = dc_fcgi_param(r, p->name);
            size_t      j = 0;

            while (!(r->params[j].name_len == p->name_len &&
                     memcmp(r->params[j].name, p->name, p->name_len) == 0))
                j++;
            FUZZ_CHECK(v == r->params[j].value, "lookup of param %zu found another value", i);
        }
    }
    FUZZ_CHECK(names == r->names.len, "names buffer %zu bytes for %zu", r->names.len, names);
    FUZZ_CHECK(r->stdin_buf.len <= c->body_max, "body %zu over %zu", r->stdin_buf.len, c->body_max);
    FUZZ_CHECK(r->stdin_buf.len == (r->stdin_len < c->body_max ? r->stdin_len : c->body_max),
               "body %zu of %zu sent", r->stdin_buf.len, r->stdin_len);
    FUZZ_CHECK(r->too_large == (r->stdin_len > c->body_max), "too_large %d for %zu of %zu", r->too_large,
               r->stdin_len, c->body_max);
}

/*
 * Answers a request as the worker does: a head, the names, the body and a
 * filler of up to 70000 bytes (inputs are short; the filler takes the
 * answer over FCGI_MAX_LENGTH) as STDOUT, then the end.
 */
static void answer_request(const dc_fcgi_req_t *r, uint32_t *seed)
{
    static char  head[] = "Status: 200 OK\r\nContent-Type: text/plain\r\n\r\n";
    static char  filler[70000];
    struct iovec iov[4] = {
        { head, sizeof(head) - 1 },
        { r->names.data, r->names.len },
        { r->stdin_buf.data, r->stdin_buf.len },
        { filler, next_rand(seed) % (sizeof(filler) + 1) },
    };
    size_t total = 0, at = 0;

    if (filler[0] == 0)
        for (size_t i = 0; i < sizeof(filler); i++)
            filler[i] = (char)('a' + i % 23);
    for (size_t i = 0; i < DC_ARRAY_LEN(iov); i++)
        total += iov[i].iov_len;
    dc_buf_reset(&out);
    if (dc_fcgi_put_stdout(&out, r->id, iov, (int)DC_ARRAY_LEN(iov)) != DC_OK ||
        dc_fcgi_put_end(&out, r->id, 0) != DC_OK)
        abort();
    FUZZ_CHECK(out.len == total + DC_FCGI_HEADER_LEN * ((total + FCGI_MAX_LENGTH - 1) / FCGI_MAX_LENGTH + 2) +
                              sizeof(FCGI_EndRequestBody),
               "%zu bytes written for %zu", out.len, total);
    check_answer(r->id);
    FUZZ_CHECK(got.len == total, "STDOUT of %zu bytes for %zu", got.len, total);
    for (size_t i = 0; i < DC_ARRAY_LEN(iov); i++) {
        FUZZ_CHECK(iov[i].iov_len == 0 || memcmp(got.data + at, iov[i].iov_base, iov[i].iov_len) == 0,
                   "STDOUT differs in part %zu", i);
        at += iov[i].iov_len;
    }
}

static int all_taken(const dc_fcgi_conn_t *c)
{
    for (size_t i = 0; i < DC_FCGI_MAX_REQS; i++)
        if (c->reqs[i].state == DC_FCGI_SLOT_FREE)
            return 0;
    return 1;
}

/* Handles one event; returns whether the connection failed. */
static int handle(dc_fcgi_conn_t *c, const dc_fcgi_event_t *ev, int hold, uint32_t *seed)
{
    dc_buf_reset(&out);
    switch (ev->type) {
    case DC_FCGI_EV_REQUEST:
        check_request(c, ev->req);
        answer_request(ev->req, seed);
        if (!hold)
            dc_fcgi_release(c, ev->req);
        return 0;
    case DC_FCGI_EV_ABORT:
        FUZZ_CHECK(ev->id != 0, "ABORT for id 0");
        for (size_t i = 0; i < DC_FCGI_MAX_REQS; i++)
            FUZZ_CHECK(c->reqs[i].state == DC_FCGI_SLOT_FREE || c->reqs[i].id != ev->id, "aborted %u kept",
                       ev->id);
        if (dc_fcgi_put_end_request(&out, ev->id, 0, FCGI_REQUEST_COMPLETE) != DC_OK)
            abort();
        check_answer(ev->id);
        return 0;
    case DC_FCGI_EV_END:
        FUZZ_CHECK(ev->id != 0, "END for id 0");
        FUZZ_CHECK(ev->protocol_status == FCGI_UNKNOWN_ROLE ||
                       (ev->protocol_status == FCGI_OVERLOADED && all_taken(c)),
                   "END with status %u", ev->protocol_status);
        if (dc_fcgi_put_end_request(&out, ev->id, 0, ev->protocol_status) != DC_OK)
            abort();
        check_answer(ev->id);
        return 0;
    case DC_FCGI_EV_GET_VALUES:
        FUZZ_CHECK(ev->want <= (DC_FCGI_WANT_MAX_CONNS | DC_FCGI_WANT_MAX_REQS | DC_FCGI_WANT_MPXS),
                   "want %u", ev->want);
        if (dc_fcgi_put_get_values_result(&out, ev, 4096) != DC_OK)
            abort();
        check_answer(0);
        return 0;
    case DC_FCGI_EV_UNKNOWN:
        FUZZ_CHECK(ev->record_type == 0 || ev->record_type > FCGI_MAXTYPE, "known type %u as unknown",
                   ev->record_type);
        if (dc_fcgi_put_unknown_type(&out, ev->record_type) != DC_OK)
            abort();
        check_answer(0);
        return 0;
    case DC_FCGI_EV_ERROR:
        FUZZ_CHECK(ev->why != NULL && ev->why[0] != '\0', "ERROR without a reason");
        FUZZ_CHECK(c->failed, "ERROR but the connection is not failed");
        return 1;
    default:
        FUZZ_CHECK(0, "event %d", (int)ev->type);
        return 1;
    }
}

/* Feeds p[0..n); returns whether the connection failed. */
static int feed(dc_fcgi_conn_t *c, const uint8_t *p, size_t n, int hold, int failed, uint32_t *seed)
{
    for (;;) {
        dc_fcgi_event_t   ev;
        size_t            used = SIZE_MAX;
        dc_fcgi_ev_type_t t = dc_fcgi_feed(c, p, n, &used, &ev);

        FUZZ_CHECK(t == ev.type, "returned %d, event %d", (int)t, (int)ev.type);
        FUZZ_CHECK(used <= n, "used %zu of %zu", used, n);
        FUZZ_CHECK(!failed || t == DC_FCGI_EV_ERROR, "event %d after ERROR", (int)t);
        if (t == DC_FCGI_EV_NONE) {
            FUZZ_CHECK(used == n, "NONE with %zu of %zu used", used, n);
            return 0;
        }
        if (handle(c, &ev, hold, seed))
            return 1;
        p += used;
        n -= used;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dc_fcgi_conn_t c;
    size_t         body_max, at = 0;
    uint32_t       seed = 2166136261u;
    int            hold, mode, failed = 0;

    if (size < 2)
        return 0;
    body_max = (data[0] & 0x7f) < 64 ? (size_t)(data[0] & 0x3f) * 2 : (size_t)(data[0] & 0x7f) * 64;
    hold = data[0] >> 7;
    mode = data[1] & 3;
    for (size_t i = 0; i < size; i++)
        seed = (seed ^ data[i]) * 16777619u;
    seed |= 1;
    data += 2;
    size -= 2;

    dc_fcgi_init(&c, body_max);
    while (at < size) {
        size_t   n = size - at;
        uint8_t *piece;

        if (mode == 1)
            n = 1;
        else if (mode == 2 && n > 1)
            n = 1 + next_rand(&seed) % (n < 16 ? n : 16);
        else if (mode == 3 && n > 1)
            n = 1 + next_rand(&seed) % (n < 1024 ? n : 1024);
        piece = (uint8_t *)fuzz_exact(data + at, n);
        if (feed(&c, piece, n, hold, failed, &seed))
            failed = 1;
        free(piece);
        at += n;
    }
    /* after an error, every feed fails, an empty one too */
    if (failed)
        FUZZ_CHECK(feed(&c, NULL, 0, hold, 1, &seed), "an empty feed after ERROR did not fail");
    else
        FUZZ_CHECK(!c.failed, "failed without an ERROR event");
    dc_fcgi_free(&c);
    return 0;
}
