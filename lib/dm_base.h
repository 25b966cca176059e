/* dm_base.h — version and error reporting. */
#ifndef DM_BASE_H
#define DM_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifndef DM_VERSION
#define DM_VERSION "0.1.0"
#endif

#if defined(__GNUC__)
#define DM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DM_PRINTF(a, b)
#endif

/* The reason for the last failure in this thread ("" if none). */
const char *dm_errstr(void);
/* Set the reason; always returns -1 so that `return dm_seterr(...)` works. */
int dm_seterr(const char *fmt, ...) DM_PRINTF(1, 2);
/* Prepend context to the current reason ("tensor 'x': " + reason); returns -1. */
int dm_errctx(const char *fmt, ...) DM_PRINTF(1, 2);
void dm_clearerr(void);

/* Library version string, e.g. "0.1.0". */
const char *dm_version(void);

/* Overflow-checked size arithmetic: 0 on success, -1 (with reason) on overflow. */
int dm_mul_size(size_t a, size_t b, size_t *out);
int dm_add_size(size_t a, size_t b, size_t *out);

/* malloc/calloc/realloc that set the error reason on failure. */
void *dm_malloc(size_t n);
void *dm_calloc(size_t n, size_t size);
void *dm_realloc(void *p, size_t n);
char *dm_strdup(const char *s);

#endif
