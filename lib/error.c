/* error.c — the per-thread error reason, checked arithmetic, allocation. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"

#define DM_ERRLEN 512

static _Thread_local char errbuf[DM_ERRLEN];

const char *
dm_errstr(void)
{
	return errbuf;
}

int
dm_seterr(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof errbuf, fmt, ap);
	va_end(ap);
	return -1;
}

int
dm_errctx(const char *fmt, ...)
{
	char old[DM_ERRLEN], pre[DM_ERRLEN];
	va_list ap;

	memcpy(old, errbuf, sizeof old);
	va_start(ap, fmt);
	vsnprintf(pre, sizeof pre, fmt, ap);
	va_end(ap);
	/* pre + old, truncated to the buffer: the reason stays one bounded line */
	size_t lp = strlen(pre), lo = strlen(old);
	if (lo > sizeof errbuf - 1 - lp)
		lo = sizeof errbuf - 1 - lp;
	memcpy(errbuf, pre, lp);
	memcpy(errbuf + lp, old, lo);
	errbuf[lp + lo] = '\0';
	return -1;
}

void
dm_clearerr(void)
{
	errbuf[0] = '\0';
}

const char *
dm_version(void)
{
	return DM_VERSION;
}

int
dm_mul_size(size_t a, size_t b, size_t *out)
{
	if (a != 0 && b > SIZE_MAX / a)
		return dm_seterr("size overflow (%zu x %zu)", a, b);
	*out = a * b;
	return 0;
}

int
dm_add_size(size_t a, size_t b, size_t *out)
{
	if (b > SIZE_MAX - a)
		return dm_seterr("size overflow (%zu + %zu)", a, b);
	*out = a + b;
	return 0;
}

void *
dm_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		dm_seterr("out of memory (%zu bytes)", n);
	return p;
}

void *
dm_calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		dm_seterr("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

void *
dm_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (q == NULL)
		dm_seterr("out of memory (%zu bytes)", n);
	return q;
}

char *
dm_strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = dm_malloc(n);

	if (p != NULL)
		memcpy(p, s, n);
	return p;
}
