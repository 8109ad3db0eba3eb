/*
 * Shared by the libFuzzer targets (tests/fuzz/fuzz_*.c): an invariant
 * check that aborts with a message, so libFuzzer records the input as a
 * crash, and the small predicates several targets assert with.
 */
#ifndef DC_FUZZ_H
#define DC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_CHECK(cond, ...)                                                              \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "invariant failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* Whether s[0..n) is 8-4-4-4-12 hex digits; lower: only lower-case letters. */
static inline int fuzz_is_uuid(const char *s, size_t n, int lower)
{
    if (n != 36)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (!lower && c >= 'A' && c <= 'F'))) {
            return 0;
        }
    }
    return 1;
}

/* A NUL-terminated lower-case UUID in a char[37]. */
static inline int fuzz_is_id(const char *s)
{
    return strnlen(s, 37) == 36 && fuzz_is_uuid(s, 36, 1);
}

/* Whether the string s of at most cap bytes ends within them. */
static inline int fuzz_terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

/* Occurrences of needle in s. */
static inline size_t fuzz_count(const char *s, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    for (const char *p = strstr(s, needle); p != NULL; p = strstr(p + k, needle))
        n++;
    return n;
}

/* A heap copy of data[0..size) with nothing after it, so that ASan sees any read past the end. */
static inline char *fuzz_exact(const uint8_t *data, size_t size)
{
    char *p = malloc(size ? size : 1);
    if (p == NULL)
        abort();
    if (size)
        memcpy(p, data, size);
    return p;
}

/* A NUL-terminated heap copy of data[0..size). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *p = malloc(size + 1);
    if (p == NULL)
        abort();
    if (size)
        memcpy(p, data, size);
    p[size] = '\0';
    return p;
}

#endif
