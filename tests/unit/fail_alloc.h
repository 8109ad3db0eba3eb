/*
 * Allocation failure injection for the unit tests, in the manner of libuv's
 * OOM test: count the allocations a call makes, then fail them one by one
 * and check that each failure ends cleanly.
 *
 * malloc, calloc and realloc defined here replace the C library's for the
 * whole process, json-c's shared library included (glibc supports replacing
 * them), and forward to the next definition found with dlsym(RTLD_NEXT): the
 * C library's, or the sanitizer's under SAN=1. -Wl,--wrap=malloc cannot do
 * this, because it rewrites references in the objects being linked only and
 * never reaches json-c's own calls. Under AddressSanitizer, strdup is
 * intercepted by the sanitizer and bypasses these functions, so a SAN build
 * sees fewer injection points than the plain one. Valgrind replaces them
 * altogether: tests that need them ask fail_alloc_works() and skip.
 *
 * Include it from exactly one file per test binary.
 */
#ifndef DC_TEST_FAIL_ALLOC_H
#define DC_TEST_FAIL_ALLOC_H

#include <dlfcn.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>

typedef enum {
    FAIL_NONE = 0,
    FAIL_ONE,       /* only allocation number `at` fails */
    FAIL_FROM,      /* allocation number `at` and every later one fail */
} fail_mode_t;

static struct {
    fail_mode_t mode;
    long        at;
    long        calls;      /* allocations seen since fail_alloc_arm */
    long        failed;
    size_t      last_size;  /* size asked for by the last allocation seen */
} fail_state;

static inline void fail_alloc_arm(fail_mode_t mode, long at)
{
    fail_state.mode = mode;
    fail_state.at = at;
    fail_state.calls = 0;
    fail_state.failed = 0;
    fail_state.last_size = 0;
}

/* Counts allocations without failing any. */
static inline void fail_alloc_count(void)
{
    fail_alloc_arm(FAIL_ONE, LONG_MAX);
}

static inline void fail_alloc_disarm(void)
{
    fail_state.mode = FAIL_NONE;
}

/* Whether allocations reach the functions below; under valgrind they do not. */
static inline int fail_alloc_works(void)
{
    void *(*volatile alloc)(size_t) = malloc;
    void *p;

    fail_alloc_arm(FAIL_FROM, 0);
    p = alloc(1);
    fail_alloc_disarm();
    free(p);
    return p == NULL;
}

static int fail_now(size_t size)
{
    long i;

    if (fail_state.mode == FAIL_NONE)
        return 0;
    i = fail_state.calls++;
    fail_state.last_size = size;
    if (fail_state.mode == FAIL_ONE ? i == fail_state.at : i >= fail_state.at) {
        fail_state.failed++;
        return 1;
    }
    return 0;
}

/* dlsym may allocate while a function is being resolved: that one call fails. */
static void *next_symbol(const char *name)
{
    static int resolving;
    void *f;

    if (resolving)
        return NULL;
    resolving = 1;
    f = dlsym(RTLD_NEXT, name);
    resolving = 0;
    return f;
}

void *malloc(size_t size)
{
    static void *(*next)(size_t);

    if (next == NULL && (next = (void *(*)(size_t))next_symbol("malloc")) == NULL)
        return NULL;
    return fail_now(size) ? NULL : next(size);
}

void *calloc(size_t n, size_t size)
{
    static void *(*next)(size_t, size_t);

    if (next == NULL && (next = (void *(*)(size_t, size_t))next_symbol("calloc")) == NULL)
        return NULL;
    return fail_now(n * size) ? NULL : next(n, size);
}

void *realloc(void *p, size_t size)
{
    static void *(*next)(void *, size_t);

    if (next == NULL && (next = (void *(*)(void *, size_t))next_symbol("realloc")) == NULL)
        return NULL;
    return fail_now(size) ? NULL : next(p, size);
}

#endif
