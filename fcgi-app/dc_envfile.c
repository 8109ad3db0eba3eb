/* Environment files: parse, then apply all or nothing. */
#include "dc_envfile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VARS     256
#define LINE_MAX_LEN 4096

typedef struct {
    char *key, *value;
} var_t;

static char  *loaded[MAX_VARS]; /* keys the last successful load set */
static size_t nloaded;

static void free_vars(var_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
        free(v[i].value);
    }
}

static int key_ok(const char *k)
{
    if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || *k == '_'))
        return 0;
    for (; *k; k++)
        if (!((*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '_'))
            return 0;
    return 1;
}

/* One KEY=VALUE line into key and value (in place). 1: a variable, 0: blank or comment, -1: malformed. */
static int parse_line(char *s, char **key, char **value)
{
    char  *eq, *end;
    size_t n;

    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
    if (*s == '\0' || *s == '#' || *s == ';')
        return 0;
    if (strncmp(s, "export ", 7) == 0)
        s += 7;
    eq = strchr(s, '=');
    if (eq == NULL)
        return -1;
    end = eq;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *end = '\0';
    if (!key_ok(s))
        return -1;
    *key = s;
    s = eq + 1;
    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    if (n >= 2 && (s[0] == '"' || s[0] == '\'') && s[n - 1] == s[0]) {
        s[n - 1] = '\0';
        s++;
    }
    *value = s;
    return 1;
}

int dc_envfile_load(const char *path, int optional, dc_err_t *err)
{
    var_t  vars[MAX_VARS];
    size_t n = 0, lineno = 0;
    char   line[LINE_MAX_LEN];
    FILE  *f = fopen(path, "r");
    int    rc = DC_OK;

    if (f == NULL) {
        if (optional && errno == ENOENT)
            return DC_OK;
        return dc_err_set(err, DC_ERROR, "cannot read %s: %s", path, strerror(errno));
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *key, *value;
        int   k;
        lineno++;
        if (strchr(line, '\n') == NULL && !feof(f)) {
            rc = dc_err_set(err, DC_ERROR, "%s:%zu: line longer than %d bytes", path, lineno,
                            LINE_MAX_LEN - 2);
            break;
        }
        k = parse_line(line, &key, &value);
        if (k == 0)
            continue;
        if (k < 0) {
            rc = dc_err_set(err, DC_ERROR, "%s:%zu: not KEY=VALUE", path, lineno);
            break;
        }
        if (n == MAX_VARS) {
            rc = dc_err_set(err, DC_ERROR, "%s: more than %d variables", path, MAX_VARS);
            break;
        }
        vars[n].key = strdup(key);
        vars[n].value = strdup(value);
        if (vars[n].key == NULL || vars[n].value == NULL) {
            free(vars[n].key);
            free(vars[n].value);
            rc = dc_err_set(err, DC_ENOMEM, "%s: out of memory", path);
            break;
        }
        n++;
    }
    if (rc == DC_OK && ferror(f))
        rc = dc_err_set(err, DC_ERROR, "cannot read %s: %s", path, strerror(errno));
    fclose(f);
    if (rc != DC_OK) {
        free_vars(vars, n);
        return rc;
    }
    /* a variable taken out of the file goes back to unset, as on a fresh start */
    for (size_t i = 0; i < nloaded; i++) {
        unsetenv(loaded[i]);
        free(loaded[i]);
    }
    nloaded = 0;
    for (size_t i = 0; i < n; i++) {
        setenv(vars[i].key, vars[i].value, 1);
        loaded[nloaded++] = vars[i].key;
        free(vars[i].value);
    }
    return DC_OK;
}

int dc_envfile_check(const char *path, void (*fn)(const char *problem, void *arg), void *arg)
{
    char   line[LINE_MAX_LEN], msg[LINE_MAX_LEN + 64];
    size_t lineno = 0;
    int    problems = 0, skip = 0;
    FILE  *f = fopen(path, "r");

    if (f == NULL) {
        snprintf(msg, sizeof(msg), "cannot read %s: %s", path, strerror(errno));
        fn(msg, arg);
        return 1;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *key, *value;
        int   k, whole = strchr(line, '\n') != NULL || feof(f);

        if (skip) { /* the rest of a line that was too long */
            skip = !whole;
            continue;
        }
        lineno++;
        if (!whole) {
            snprintf(msg, sizeof(msg), "%s:%zu: line longer than %d bytes", path, lineno, LINE_MAX_LEN - 2);
            fn(msg, arg);
            problems++;
            skip = 1;
            continue;
        }
        k = parse_line(line, &key, &value);
        if (k < 0) {
            /* the line itself is not shown: it may hold a secret */
            snprintf(msg, sizeof(msg), "%s:%zu: not KEY=VALUE", path, lineno);
            fn(msg, arg);
            problems++;
        } else if (k > 0) {
            setenv(key, value, 1);
        }
    }
    if (ferror(f)) {
        snprintf(msg, sizeof(msg), "cannot read %s: %s", path, strerror(errno));
        fn(msg, arg);
        problems++;
    }
    fclose(f);
    return problems;
}

void dc_envfile_reset(void)
{
    for (size_t i = 0; i < nloaded; i++)
        free(loaded[i]);
    nloaded = 0;
}
