/*
 * Fuzz target: the JSON writer (dc_json) and its validator.
 *
 * Input: operations, one byte each, some followed by a NUL-terminated
 * text: open an object or array, close one, a string, an integer, a
 * boolean, null, a number given as text, raw JSON. Keys are written where
 * an object needs them. The whole document is one array.
 *
 * Invariants: whatever the strings hold (quotes, control characters, any
 * byte), the document is valid JSON for dc_json_is_valid and for json-c in
 * strict mode, it has as many elements as were written, and each string
 * reads back as the bytes that were written. dc_json_number writes the
 * text only when dc_json_is_number holds, and json-c reads it as a number.
 * Any text dc_json_is_valid accepts, json-c accepts too, and
 * dc_json_raw_compact keeps it valid.
 */
#include <json.h>

#include "dc_json.h"
#include "fuzz.h"

#define TOP_MAX 64

typedef struct {
    const uint8_t *p, *end;
} input_t;

/* The next NUL-terminated text of the input (the rest, if no NUL follows). */
static char *text(input_t *in)
{
    const uint8_t *nul = memchr(in->p, 0, (size_t)(in->end - in->p));
    size_t         n = (size_t)((nul ? nul : in->end) - in->p);
    char          *s = fuzz_cstr(in->p, n);
    in->p += n + (nul != NULL);
    return s;
}

/* Whether json-c in strict mode reads all of s as one value (into *out, NULL for null). */
static int parse_strict(const char *s, json_object **out)
{
    json_tokener *tok = json_tokener_new_ex(64);
    int           ok;
    if (tok == NULL)
        abort();
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    *out = json_tokener_parse_ex(tok, s, -1); /* -1: up to the NUL, which ends a number at the end */
    ok = json_tokener_get_error(tok) == json_tokener_success &&
         (size_t)json_tokener_get_parse_end(tok) == strlen(s);
    if (!ok) {
        json_object_put(*out);
        *out = NULL;
    }
    json_tokener_free(tok);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dc_buf_t     out = DC_BUF_INIT;
    dc_json_t    j;
    input_t      in = { data, data + size };
    char         stack[DC_JSON_DEPTH]; /* '{' or '[' per open level */
    unsigned     depth = 1;
    char        *top_str[TOP_MAX] = { 0 };
    int          top_kind[TOP_MAX]; /* json_type of each element of the root array */
    size_t       ntop = 0;
    json_object *doc;

    /* the validator against json-c, on the raw input */
    {
        char *s = fuzz_cstr(data, size);
        if (dc_json_is_valid(s)) {
            json_object *o;
            FUZZ_CHECK(parse_strict(s, &o) || strlen(s) != size,
                       "dc_json_is_valid accepts what json-c refuses: %s", s);
            json_object_put(o);
        }
        free(s);
    }

    dc_json_begin(&j, &out);
    dc_json_array(&j);
    stack[0] = '[';
    while (in.p < in.end) {
        unsigned op = *in.p++ % 9;
        char    *s = NULL;
        int      kind = -1, at_top = depth == 1;

        if (op == 2) {
            if (depth > 1) {
                depth--;
                dc_json_end(&j, stack[depth] == '{' ? '}' : ']');
            }
            continue;
        }
        if (stack[depth - 1] == '{') {
            char *k = text(&in);
            dc_json_key(&j, k);
            free(k);
        }
        switch (op) {
        case 0:
        case 1:
            if (depth + 1 >= DC_JSON_DEPTH) { /* dc_json refuses a deeper level */
                dc_json_null(&j);
                kind = json_type_null;
                break;
            }
            stack[depth++] = op == 0 ? '{' : '[';
            if (op == 0)
                dc_json_object(&j);
            else
                dc_json_array(&j);
            kind = op == 0 ? json_type_object : json_type_array;
            break;
        case 3:
            s = text(&in);
            dc_json_str(&j, s);
            kind = json_type_string;
            break;
        case 4: {
            long long v = 0;
            size_t    k = (size_t)(in.end - in.p) < sizeof(v) ? (size_t)(in.end - in.p) : sizeof(v);
            memcpy(&v, in.p, k);
            in.p += k;
            dc_json_int(&j, v);
            kind = json_type_int;
            break;
        }
        case 5:
            dc_json_bool(&j, in.p < in.end ? *in.p++ & 1 : 0);
            kind = json_type_boolean;
            break;
        case 6:
            dc_json_null(&j);
            kind = json_type_null;
            break;
        case 7: {
            char *t = text(&in);
            dc_json_number(&j, t);
            kind = dc_json_is_number(t) ? -2 : json_type_null;
            free(t);
            break;
        }
        default: {
            char *t = text(&in);
            if (dc_json_is_valid(t) && strlen(t) < 256) {
                dc_json_raw_compact(&j, t);
                kind = -3;
            } else {
                dc_json_null(&j);
                kind = json_type_null;
            }
            free(t);
            break;
        }
        }
        if (at_top && ntop < TOP_MAX) {
            top_kind[ntop] = kind;
            top_str[ntop] = s;
            s = NULL;
        }
        ntop += (size_t)at_top;
        free(s);
    }
    while (depth > 0) {
        depth--;
        dc_json_end(&j, stack[depth] == '{' ? '}' : ']');
    }
    FUZZ_CHECK(dc_json_finish(&j) == DC_OK, "finish failed");
    FUZZ_CHECK(out.data != NULL && dc_json_is_valid(out.data), "writer produced invalid JSON: %s", out.data);
    FUZZ_CHECK(parse_strict(out.data, &doc) && doc != NULL && json_object_is_type(doc, json_type_array),
               "json-c refuses: %s", out.data);
    FUZZ_CHECK(json_object_array_length(doc) == ntop, "%zu elements, %zu written: %s",
               json_object_array_length(doc), ntop, out.data);
    for (size_t i = 0; i < ntop && i < TOP_MAX; i++) {
        json_object *e = json_object_array_get_idx(doc, i);
        if (top_kind[i] == json_type_string) {
            FUZZ_CHECK(json_object_is_type(e, json_type_string) &&
                           (size_t)json_object_get_string_len(e) == strlen(top_str[i]) &&
                           memcmp(json_object_get_string(e), top_str[i], strlen(top_str[i])) == 0,
                       "string %zu does not read back: %s", i, out.data);
        } else if (top_kind[i] == -2) {
            FUZZ_CHECK(json_object_is_type(e, json_type_int) || json_object_is_type(e, json_type_double),
                       "number %zu is not a number: %s", i, out.data);
        } else if (top_kind[i] >= 0) {
            FUZZ_CHECK(json_object_is_type(e, (enum json_type)top_kind[i]),
                       "element %zu has type %d, wrote %d: %s", i, json_object_get_type(e), top_kind[i],
                       out.data);
        }
        free(top_str[i]);
    }
    json_object_put(doc);
    dc_buf_free(&out);
    return 0;
}
