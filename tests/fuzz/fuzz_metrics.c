/*
 * Fuzz target: the Prometheus text of /metrics (dc_metrics_render) with
 * statement names (label values) and updates chosen by the input. No
 * function of dc_metrics.h escapes on its own, so the rendering path is
 * fuzzed as a scrape sees it.
 *
 * Input: byte 0 is the number of statement names (0..33: 33 is one more
 * than the metrics hold), then that many lines (an empty line is a slot
 * no statement owns), then 9-byte updates: an operation, and two 32-bit
 * arguments (an index, which may be out of range, and a duration in
 * microseconds, which may be negative).
 *
 * Invariants: every line is "# HELP name text", "# TYPE name
 * counter|gauge|histogram" or a sample name{label="value",...} number with
 * label values escaped as the format requires (\\, \", \n, nothing else
 * raw); each statement label, unescaped, is one of the names given (or
 * the start of a long one); every
 * histogram's buckets are cumulative and its +Inf bucket equals its count.
 */
#include <unistd.h>

#include "dc_metrics.h"
#include "fuzz.h"

#define NAMES_MAX 33

static char path[64];

static void remove_file(void)
{
    dc_metrics_close();
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    dc_err_t err;
    (void)argc;
    (void)argv;
    snprintf(path, sizeof(path), "/tmp/dc-fuzz-metrics-%d", (int)getpid());
    unlink(path);
    if (dc_metrics_open(path, &err) != DC_OK || dc_metrics_claim(DC_MK_WORKER) != DC_OK) {
        fprintf(stderr, "fuzz_metrics: cannot map %s: %s\n", path, err.str);
        exit(1);
    }
    atexit(remove_file);
    return 0;
}

static int name_char(char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Parses one label value after its opening quote; unescaped into out. Returns the byte after the closing quote. */
static const char *label_value(const char *p, const char *line, char *out, size_t cap)
{
    size_t n = 0;
    for (;; p++) {
        char c = *p;
        FUZZ_CHECK(c != '\0', "unterminated label value in: %s", line);
        if (c == '"')
            break;
        if (c == '\\') {
            p++;
            FUZZ_CHECK(*p == '\\' || *p == '"' || *p == 'n', "escape \\%c in: %s", *p ? *p : '0', line);
            c = *p == 'n' ? '\n' : *p;
        }
        if (n + 1 < cap)
            out[n++] = c;
    }
    out[n] = '\0';
    return p + 1;
}

typedef struct {
    const char *const *names;
    size_t             nnames;
    char               bucket_of[512]; /* metric and labels before le= of the last bucket */
    double             last_bucket, inf;
    int                have_inf;
} scrape_t;

static void sample(scrape_t *s, const char *line)
{
    const char *p = line, *name_end, *labels_start = NULL, *labels_end = NULL, *le = NULL;
    char        name[256], val[1024], *end;
    double      v;

    FUZZ_CHECK(name_char(*p, 1), "sample name in: %s", line);
    while (name_char(*p, 0))
        p++;
    name_end = p;
    FUZZ_CHECK((size_t)(name_end - line) < sizeof(name), "name length");
    memcpy(name, line, (size_t)(name_end - line));
    name[name_end - line] = '\0';
    if (*p == '{') {
        labels_start = ++p;
        while (*p != '}') {
            const char *ln = p;
            FUZZ_CHECK(name_char(*p, 1), "label name in: %s", line);
            while (name_char(*p, 0))
                p++;
            FUZZ_CHECK(p[0] == '=' && p[1] == '"', "label syntax in: %s", line);
            if (p - ln == 2 && memcmp(ln, "le", 2) == 0)
                le = ln;
            p = label_value(p + 2, line, val, sizeof(val));
            if (p - ln > 9 && memcmp(ln, "statement", 9) == 0) {
                size_t i = 0;
                /* a long name may be cut, never an escape split: at least 55 bytes are kept */
                while (i < s->nnames &&
                       (s->names[i] == NULL ||
                        (strcmp(s->names[i], val) != 0 &&
                         !(strlen(val) >= 55 && strncmp(s->names[i], val, strlen(val)) == 0))))
                    i++;
                FUZZ_CHECK(i < s->nnames, "statement label \"%s\" is none of the names given, in: %s", val,
                           line);
            }
            FUZZ_CHECK(*p == ',' || *p == '}', "label separator in: %s", line);
            if (*p == ',')
                p++;
        }
        labels_end = p++;
    }
    FUZZ_CHECK(*p == ' ', "no value in: %s", line);
    v = strtod(p + 1, &end);
    FUZZ_CHECK(end != p + 1 && *end == '\0' && v >= 0, "value in: %s", line);

    if (le != NULL) {
        size_t k = (size_t)(le - line);
        FUZZ_CHECK(k < sizeof(s->bucket_of), "series too long");
        /* a series starts at its first bound (two slots may share a name) */
        if (strncmp(le, "le=\"0.001\"", 10) == 0 || strncmp(s->bucket_of, line, k) != 0 ||
            s->bucket_of[k] != '\0') {
            memcpy(s->bucket_of, line, k);
            s->bucket_of[k] = '\0';
            s->last_bucket = 0;
            s->have_inf = 0;
        }
        FUZZ_CHECK(v >= s->last_bucket, "bucket below the one before it: %s", line);
        s->last_bucket = v;
        if (strncmp(le, "le=\"+Inf\"", 9) == 0) {
            s->inf = v;
            s->have_inf = 1;
        }
    } else if (strlen(name) > 6 && strcmp(name + strlen(name) - 6, "_count") == 0) {
        FUZZ_CHECK(s->have_inf && s->inf == v, "count %.0f, +Inf bucket %.0f: %s", v, s->inf, line);
        s->have_inf = 0;
    }
    (void)labels_start;
    (void)labels_end;
}

static void check_scrape(const char *text, const char *const *names, size_t nnames)
{
    scrape_t s;
    char    *copy = strdup(text), *save = NULL;

    FUZZ_CHECK(copy != NULL, "oom");
    memset(&s, 0, sizeof(s));
    s.names = names;
    s.nnames = nnames;
    FUZZ_CHECK(text[0] != '\0' && text[strlen(text) - 1] == '\n', "scrape does not end with a newline");
    for (char *line = strtok_r(copy, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0) {
            FUZZ_CHECK(name_char(line[7], 1), "HELP line: %s", line);
        } else if (strncmp(line, "# TYPE ", 7) == 0) {
            const char *t = strrchr(line, ' ') + 1;
            FUZZ_CHECK(strcmp(t, "counter") == 0 || strcmp(t, "gauge") == 0 || strcmp(t, "histogram") == 0,
                       "TYPE line: %s", line);
        } else {
            sample(&s, line);
        }
    }
    free(copy);
}

static int32_t i32(const uint8_t *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *names[NAMES_MAX];
    char       *text, *p, *end;
    size_t      n;
    dc_buf_t    out = DC_BUF_INIT;

    if (size < 1)
        return 0;
    n = data[0] % (NAMES_MAX + 1);
    text = fuzz_cstr(data + 1, size - 1);
    p = text;
    end = text + size - 1;
    for (size_t i = 0; i < n; i++) {
        char *nl = p < end ? memchr(p, '\n', (size_t)(end - p)) : NULL;
        names[i] = p < end && *p != '\n' && *p != '\0' ? p : NULL;
        if (nl != NULL) {
            *nl = '\0';
            p = nl + 1;
        } else {
            p = end;
        }
    }
    for (; end - p >= 9; p += 9) {
        const uint8_t *u = (const uint8_t *)p;
        int32_t        a = i32(u + 1);
        int64_t        ns = (int64_t)i32(u + 5) * 1000;
        switch (u[0] % 8) {
        case 0:
            dc_metrics_db_query(a, u[5] & 1, ns);
            break;
        case 1:
            dc_metrics_http((dc_mroute_t)a, i32(u + 5) % 1000, ns);
            break;
        case 2:
            dc_metrics_cache_latency((dc_cop_t)a, ns);
            break;
        case 3:
            dc_metrics_cache_hit((dc_qtype_t)a);
            break;
        case 4:
            dc_metrics_cache_miss((dc_qtype_t)a);
            break;
        case 5:
            dc_metrics_cache_error((dc_cop_t)a);
            break;
        case 6:
            dc_metrics_invalidation((dc_isource_t)a, i32(u + 5));
            break;
        default:
            dc_metrics_invalidation_lag(ns);
            break;
        }
    }
    FUZZ_CHECK(dc_metrics_render(&out, names, n) == DC_OK, "render failed");
    check_scrape(out.data, names, n < DC_METRICS_MAX_STMTS ? n : DC_METRICS_MAX_STMTS);
    dc_buf_free(&out);
    free(text);
    return 0;
}
