/*
 * One database query per key per host when Redis cannot coordinate the
 * readers (Redis away, its breaker open, hits stopped): the workers of a
 * host share the answer of one fill through shared memory.
 *
 * Without a generation to fence a fill, a reader takes only the answer of a
 * fill whose database read began after the reader arrived: an answer read
 * before a write's acknowledgment is never given to a reader that started
 * after it. So the readers that arrive while a fill is running wait for it
 * to end and then share the next one: at most two queries per key in a
 * burst, instead of one per reader.
 *
 * A fixed table of slots (a key's hash picks its slot), each under a robust
 * process-shared mutex held only to look and to copy, never during a query;
 * a filler that dies or overruns its time is taken over. Answers larger than
 * a slot, and keys whose slot another key's fill holds, are not coalesced.
 */
#ifndef DC_COALESCE_H
#define DC_COALESCE_H

#include <stddef.h>
#include <stdint.h>

#include "dc_buf.h"
#include "dc_config.h"
#include "dc_etag.h"

#define DC_COALESCE_SLOTS    64
#define DC_COALESCE_BODY_MAX (64 * 1024 - 256)

/* A fill this reader holds (dc_coalesce_begin answered DC_DECLINED). */
typedef struct {
    int      slot;
    uint64_t seq;
} dc_coalesce_t;

/* Maps the host's table (dc_shm_path "coalesce"); without it nothing is coalesced (logged). */
void dc_coalesce_open_host(const dc_config_t *cfg);

/* Unmaps (tests). */
void dc_coalesce_close(void);

/* Maps path (tests). DC_OK or DC_ERROR with err. */
int dc_coalesce_open(const char *path, dc_err_t *err) DC_WUR;

/*
 * For the answer of key (klen bytes) to a reader that arrived at
 * arrival_ms (dc_now_ms):
 *   DC_OK          another reader's fill that began after arrival_ms gave
 *                  it: body into out, its validator into etag;
 *   DC_DECLINED    this reader fills it: query, then dc_coalesce_done;
 *   DC_UNAVAILABLE not coalesced (no table, the slot busy with another key,
 *                  the fill failed, or deadline_ms passed): query alone.
 * A fill lasts at most fill_ms: one that overruns it is taken over.
 */
int dc_coalesce_begin(const char *key, size_t klen, int64_t arrival_ms, int64_t deadline_ms, int fill_ms,
                      dc_buf_t *out, char etag[DC_ETAG_LEN + 1], dc_coalesce_t *h) DC_WUR;

/* The fill's outcome: ok with its answer (shared when it fits), or failed. */
void dc_coalesce_done(const dc_coalesce_t *h, int ok, const char *body, size_t len, const char *etag);

#endif
