/* Shared files of one host: create, size, lock, map. */
#include "dc_shm.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dc_log.h"

void dc_shm_path(const dc_config_t *cfg, const char *suffix, char *path, size_t cap)
{
    const char *env = getenv("METRICS_FILE");
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    uint64_t    h = 1469598103934665603ULL;
    char        redis[1600];

    if (env != NULL && *env != '\0') {
        if (strcmp(suffix, "metrics") == 0)
            snprintf(path, cap, "%s", env);
        else
            snprintf(path, cap, "%s.%s", env, suffix);
        return;
    }
    snprintf(redis, sizeof(redis), "%s|%s:%d|%s|%d", cfg->database_url, cfg->redis.redis_host,
             cfg->redis.redis_port, cfg->redis.redis_unix, cfg->redis.redis_db);
    for (const char *p = redis; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    snprintf(path, cap, "%s/dashcache-%016llx.%s", dir, (unsigned long long)h, suffix);
}

int dc_shm_attach(void **mapped, const char *path, size_t size, void (*init)(void *mem), dc_err_t *err)
{
    if (*mapped == NULL)
        *mapped = dc_shm_map(path, size, init, err);
    return *mapped != NULL ? DC_OK : DC_ERROR;
}

void dc_shm_open_host(const dc_config_t *cfg, const char                       *suffix,
                      int (*open)(const char *path, dc_err_t *err), const char *event, const char *without)
{
    dc_err_t err;
    char     path[512];

    dc_shm_path(cfg, suffix, path, sizeof(path));
    if (open(path, &err) != DC_OK)
        dc_log_warn(event, "%s; %s", err.str, without);
}

void *dc_shm_map(const char *path, size_t size, void (*init)(void *mem), dc_err_t *err)
{
    struct stat st;
    int         fd;
    void       *p;

    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0660);
    if (fd < 0) {
        dc_err_set(err, DC_ERROR, "open(%s) failed: %s", path, strerror(errno));
        return NULL;
    }
    /* one initializer at a time; a file of another size is started afresh */
    if (flock(fd, LOCK_EX) != 0 || fstat(fd, &st) != 0) {
        dc_err_set(err, DC_ERROR, "flock/fstat(%s) failed: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if ((size_t)st.st_size != size && (ftruncate(fd, 0) != 0 || ftruncate(fd, (off_t)size) != 0)) {
        dc_err_set(err, DC_ERROR, "ftruncate(%s) failed: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        dc_err_set(err, DC_ERROR, "mmap(%s) failed: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    init(p);
    flock(fd, LOCK_UN);
    close(fd);
    return p;
}
