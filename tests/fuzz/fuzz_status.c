/*
 * Fuzz target: the options of /status (dc_status_parse) and the page built
 * with them (dc_status_render).
 *
 * Input: a query string, then after the first newline the request URI of a
 * worker's row (any bytes but NUL).
 *
 * Invariants: parsing ends in DC_OK with each option 0 or 1, or DC_EINVAL
 * with a 400 invalid_parameter; the JSON page is valid JSON (RFC 8259)
 * whatever the row's bytes; the text page names the pool.
 */
#include "dc_json.h"
#include "dc_status.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static dc_pool_status_t st;
    char                    query[512];
    const uint8_t          *nl = memchr(data, '\n', size);
    size_t                  qn = nl != NULL ? (size_t)(nl - data) : size, rn;
    dc_status_opts_t        o;
    dc_error_t              err;
    dc_buf_t                out = { 0 };
    int                     rc;

    if (qn >= sizeof(query) || memchr(data, '\0', qn) != NULL)
        return 0;
    memcpy(query, data, qn);
    query[qn] = '\0';
    rc = dc_status_parse(query, &o, &err);
    if (rc != DC_OK) {
        FUZZ_CHECK(rc == DC_EINVAL && err.status == 400 && strcmp(err.code, "invalid_parameter") == 0,
                   "rc %d status %d", rc, err.status);
        return 0;
    }
    FUZZ_CHECK((o.full == 0 || o.full == 1) && (o.json == 0 || o.json == 1), "full %d json %d", o.full,
               o.json);

    memset(&st, 0, sizeof(st));
    st.nprocs = 1;
    st.total = st.active = 1;
    st.procs[0].pid = 42;
    st.procs[0].busy = 1;
    rn = nl != NULL ? size - qn - 1 : 0;
    if (rn >= sizeof(st.procs[0].route))
        rn = sizeof(st.procs[0].route) - 1;
    if (nl != NULL)
        memcpy(st.procs[0].route, nl + 1, rn);
    st.procs[0].route[rn] = '\0';
    rc = dc_status_render(&st, NULL, &o, 1764493300000, &out);
    FUZZ_CHECK(rc == DC_OK, "render: %d", rc);
    FUZZ_CHECK(out.data != NULL && out.len > 0, "an empty page");
    if (o.json)
        FUZZ_CHECK(dc_json_is_valid(out.data), "not JSON: %.300s", out.data);
    else
        FUZZ_CHECK(strncmp(out.data, "pool:", 5) == 0, "text page: %.100s", out.data);
    dc_buf_free(&out);
    return 0;
}
