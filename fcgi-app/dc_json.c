/* Checked JSON writer. */
#include "dc_json.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

void dc_json_begin(dc_json_t *j, dc_buf_t *out)
{
    memset(j, 0, sizeof(*j));
    j->out = out;
    j->start = out->len;
    j->first[0] = 1;
}

static void put(dc_json_t *j, const char *s, size_t n)
{
    if (!j->failed && dc_buf_append(j->out, s, n) != DC_OK)
        j->failed = 1;
}

/* The separator before a value (or key) at the current level. */
static void sep(dc_json_t *j)
{
    if (!j->first[j->depth])
        put(j, ",", 1);
    j->first[j->depth] = 0;
}

static void open(dc_json_t *j, const char *c)
{
    sep(j);
    put(j, c, 1);
    if (j->depth + 1 >= DC_JSON_DEPTH) {
        j->failed = 1;
        return;
    }
    j->first[++j->depth] = 1;
}

void dc_json_object(dc_json_t *j)
{
    open(j, "{");
}

void dc_json_array(dc_json_t *j)
{
    open(j, "[");
}

void dc_json_end(dc_json_t *j, char c)
{
    put(j, &c, 1);
    if (j->depth > 0)
        j->depth--;
}

static void quoted(dc_json_t *j, const char *s)
{
    const char *run = s;

    put(j, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char          esc[8];
        const char   *e = NULL;
        if (c == '"')
            e = "\\\"";
        else if (c == '\\')
            e = "\\\\";
        else if (c == '\n')
            e = "\\n";
        else if (c == '\r')
            e = "\\r";
        else if (c == '\t')
            e = "\\t";
        else if (c == '\b')
            e = "\\b";
        else if (c == '\f')
            e = "\\f";
        else if (c < 0x20) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            e = esc;
        }
        if (e != NULL) {
            put(j, run, (size_t)(s - run));
            put(j, e, strlen(e));
            run = s + 1;
        }
    }
    put(j, run, (size_t)(s - run));
    put(j, "\"", 1);
}

void dc_json_key(dc_json_t *j, const char *key)
{
    sep(j);
    quoted(j, key);
    put(j, ":", 1);
    /* the value that follows needs no comma */
    j->first[j->depth] = 1;
}

/* Marks a value written at this level (after a key it is the key's value). */
static void value(dc_json_t *j, const char *s, size_t n)
{
    sep(j);
    put(j, s, n);
}

void dc_json_str(dc_json_t *j, const char *s)
{
    if (s == NULL) {
        dc_json_null(j);
        return;
    }
    sep(j);
    quoted(j, s);
}

void dc_json_int(dc_json_t *j, long long v)
{
    char num[24];
    int  n = snprintf(num, sizeof(num), "%lld", v);
    value(j, num, (size_t)n);
}

void dc_json_bool(dc_json_t *j, int v)
{
    value(j, v ? "true" : "false", v ? 4 : 5);
}

void dc_json_null(dc_json_t *j)
{
    value(j, "null", 4);
}

/* Skips one JSON number at p; NULL if there is none. */
static const char *skip_number(const char *p)
{
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p;
}

int dc_json_is_number(const char *t)
{
    const char *end = t != NULL ? skip_number(t) : NULL;
    return end != NULL && *end == '\0';
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

static int hex4(const char *p)
{
    for (int i = 0; i < 4; i++)
        if (!isxdigit((unsigned char)p[i]))
            return 0;
    return 1;
}

/* Skips one JSON value at p (no leading white space); NULL if it is not one. */
static const char *skip_value(const char *p, int depth)
{
    if (depth > 32)
        return NULL;
    switch (*p) {
    case '"':
        for (p++; *p != '"'; p++) {
            if ((unsigned char)*p < 0x20)
                return NULL;
            if (*p == '\\') {
                p++;
                if (*p == 'u') {
                    if (!hex4(p + 1))
                        return NULL;
                    p += 4;
                } else if (strchr("\"\\/bfnrt", *p) == NULL || *p == '\0') {
                    return NULL;
                }
            }
        }
        return p + 1;
    case '{':
    case '[': {
        char close = *p == '{' ? '}' : ']';
        p = skip_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                if (*p != '"' || (p = skip_value(p, depth + 1)) == NULL)
                    return NULL;
                p = skip_ws(p);
                if (*p++ != ':')
                    return NULL;
                p = skip_ws(p);
            }
            if ((p = skip_value(p, depth + 1)) == NULL)
                return NULL;
            p = skip_ws(p);
            if (*p == close)
                return p + 1;
            if (*p++ != ',')
                return NULL;
            p = skip_ws(p);
        }
    }
    case 't':
        return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
    case 'f':
        return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
    case 'n':
        return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
    default:
        return skip_number(p);
    }
}

int dc_json_is_valid(const char *text)
{
    const char *end;

    if (text == NULL)
        return 0;
    end = skip_value(skip_ws(text), 0);
    return end != NULL && *skip_ws(end) == '\0';
}

void dc_json_number(dc_json_t *j, const char *text)
{
    if (dc_json_is_number(text))
        value(j, text, strlen(text));
    else
        dc_json_null(j);
}

void dc_json_raw(dc_json_t *j, const char *json)
{
    value(j, json, strlen(json));
}

void dc_json_raw_compact(dc_json_t *j, const char *json)
{
    const char *p = json, *run = json;
    int         in_string = 0;

    sep(j);
    for (; *p; p++) {
        if (in_string) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            else if (*p == '"')
                in_string = 0;
        } else if (*p == '"') {
            in_string = 1;
        } else if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            put(j, run, (size_t)(p - run));
            run = p + 1;
        }
    }
    put(j, run, (size_t)(p - run));
}

int dc_json_finish(dc_json_t *j)
{
    if (!j->failed)
        return DC_OK;
    j->out->len = j->start;
    if (j->out->data != NULL)
        j->out->data[j->start] = '\0';
    return DC_ENOMEM;
}
