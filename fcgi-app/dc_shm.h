/*
 * Files mapped shared by the processes of one host: the metrics slots
 * (dc_metrics) and the trust in the cache (dc_trust). A master maps them
 * before it forks, so its workers share them from the start; processes
 * started apart (spawn-fcgi, systemd, the invalidator) map the same file.
 */
#ifndef DC_SHM_H
#define DC_SHM_H

#include <stddef.h>

#include "dc_config.h"
#include "dc_core.h"

/*
 * The default file of kind suffix ("metrics", "trust") for cfg into path:
 * under /dev/shm (else /tmp), named after a hash of the database and Redis
 * addresses, so that every process serving the same data shares it. With
 * METRICS_FILE set, that file for "metrics" and METRICS_FILE.<suffix> for
 * the others.
 */
void dc_shm_path(const dc_config_t *cfg, const char *suffix, char *path, size_t cap);

/*
 * Maps size bytes of path, created (0660) and sized when needed. init runs
 * under an exclusive lock of the file on every map, before anyone else can
 * map it: it checks the layout it finds (a magic number, a version) and
 * starts the memory afresh when it is not its own. The mapping or NULL with
 * err set.
 */
void *dc_shm_map(const char *path, size_t size, void (*init)(void *mem), dc_err_t *err);

/*
 * *mapped, once: dc_shm_map of path unless *mapped is already set. DC_OK,
 * or DC_ERROR with err.
 */
int dc_shm_attach(void **mapped, const char *path, size_t size, void (*init)(void *mem),
                  dc_err_t *err) DC_WUR;

/*
 * Maps the host's file of kind suffix for cfg with open (a module's own
 * mapping function); when it cannot, logs event with the reason and what the
 * process does without it (without), and goes on.
 */
void dc_shm_open_host(const dc_config_t *cfg, const char                       *suffix,
                      int (*open)(const char *path, dc_err_t *err), const char *event, const char *without);

#endif
