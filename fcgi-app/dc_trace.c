#include "dc_trace.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dc_core.h"

static dc_trace_t *cur;

void dc_trace_begin(dc_trace_t *t, int64_t arrived_ns, int64_t started_ns)
{
    memset(t, 0, sizeof(*t));
    t->arrived_ns = arrived_ns > 0 && arrived_ns <= started_ns ? arrived_ns : started_ns;
    t->started_ns = started_ns;
}

dc_trace_t *dc_trace_use(dc_trace_t *t)
{
    dc_trace_t *prev = cur;

    cur = t;
    return prev;
}

void dc_trace_redis(int64_t ns)
{
    if (cur != NULL && ns > 0)
        cur->redis_ns += ns;
}

static void add_stmt(dc_trace_t *t, int slot, int64_t ns)
{
    t->db_ns += ns;
    for (int i = 0; i < t->nstmts; i++) {
        if (t->stmts[i].slot == slot) {
            t->stmts[i].ns += ns;
            return;
        }
    }
    if (t->nstmts < DC_TRACE_STMTS) {
        t->stmts[t->nstmts].slot = slot;
        t->stmts[t->nstmts++].ns = ns;
    } else {
        t->others_ns += ns;
    }
}

void dc_trace_db(int slot, int64_t ns)
{
    if (cur != NULL && ns > 0)
        add_stmt(cur, slot, ns);
}

void dc_trace_render(int64_t ns)
{
    if (cur != NULL && ns > 0)
        cur->render_ns += ns;
}

void dc_trace_write(int64_t ns)
{
    if (cur != NULL && ns > 0)
        cur->write_ns += ns;
}

void dc_trace_add(dc_trace_t *t, const dc_trace_t *from)
{
    t->redis_ns += from->redis_ns;
    t->render_ns += from->render_ns;
    t->write_ns += from->write_ns;
    for (int i = 0; i < from->nstmts; i++)
        add_stmt(t, from->stmts[i].slot, from->stmts[i].ns);
    t->db_ns += from->others_ns;
    t->others_ns += from->others_ns;
}

static double ms(int64_t ns)
{
    return (double)ns / 1e6;
}

/* Appends to buf at *off, never past cap; *off stops at cap - 1 once full. */
static void put(char *buf, size_t cap, size_t *off, const char *fmt, ...) DC_PRINTF(4, 5);

static void put(char *buf, size_t cap, size_t *off, const char *fmt, ...)
{
    va_list ap;
    int     n;

    if (*off + 1 >= cap)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf + *off, cap - *off, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    *off = *off + (size_t)n < cap ? *off + (size_t)n : cap - 1;
}

double dc_trace_format(const dc_trace_t *t, int64_t end_ns, const char *(*name_of)(int slot), char *buf,
                       size_t cap)
{
    size_t off = 0;
    double total = ms(end_ns - t->arrived_ns);

    if (cap == 0)
        return total;
    buf[0] = '\0';
    put(buf, cap, &off, "total_ms=%.1f fcgi_read_ms=%.1f redis_ms=%.1f pg_ms=%.1f pg=[", total,
        ms(t->started_ns - t->arrived_ns), ms(t->redis_ns), ms(t->db_ns));
    for (int i = 0; i < t->nstmts; i++) {
        const char *name = name_of != NULL ? name_of(t->stmts[i].slot) : NULL;
        if (name != NULL)
            put(buf, cap, &off, "%s%s:%.1f", i > 0 ? "," : "", name, ms(t->stmts[i].ns));
        else
            put(buf, cap, &off, "%sstmt%d:%.1f", i > 0 ? "," : "", t->stmts[i].slot, ms(t->stmts[i].ns));
    }
    if (t->others_ns > 0)
        put(buf, cap, &off, "%sothers:%.1f", t->nstmts > 0 ? "," : "", ms(t->others_ns));
    put(buf, cap, &off, "] render_ms=%.1f write_ms=%.1f", ms(t->render_ns), ms(t->write_ns));
    return total;
}
