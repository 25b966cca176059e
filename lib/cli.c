/* cli.c — what every tool shares: strict number parsing, the common
 * options, the binary-output check, threads, the progress line. */
#include <cblas.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dm_base.h"
#include "dm_cli.h"

#define DM_THREADS_MAX 1024
#define PROGRESS_EVERY 0.2          /* seconds between redraws */

static int threads_current;         /* 0 until dm_threads_set() */

static int
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* An optional sign (if allowed) then a digit: what strtoll/strtoull would
 * otherwise accept after skipping spaces. */
static int
int_start_ok(const char *s, int minus_ok)
{
	if (*s == '+' || (minus_ok && *s == '-'))
		s++;
	return is_digit(*s);
}

int
dm_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	char *end;
	long long v;

	if (s == NULL)
		s = "";
	if (!int_start_ok(s, 1))
		return dm_seterr("'%s' is not an integer", s);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end != '\0')
		return dm_seterr("'%s' is not an integer", s);
	if (errno == ERANGE || v < min || v > max)
		return dm_seterr("'%s' is out of range (%lld to %lld)", s,
		    (long long)min, (long long)max);
	*out = v;
	return 0;
}

int
dm_parse_int(const char *s, int min, int max, int *out)
{
	int64_t v;

	if (dm_parse_int64(s, min, max, &v) == -1)
		return -1;
	*out = (int)v;
	return 0;
}

int
dm_parse_uint64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL)
		s = "";
	if (!int_start_ok(s, 0))
		return dm_seterr(*s == '-' && is_digit(s[1]) ?
		    "'%s' is out of range (0 to 18446744073709551615)" :
		    "'%s' is not an integer", s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return dm_seterr("'%s' is not an integer", s);
	if (errno == ERANGE)
		return dm_seterr("'%s' is out of range "
		    "(0 to 18446744073709551615)", s);
	*out = v;
	return 0;
}

/* Decimal notation only: digits, one sign, '.', an exponent.  This keeps
 * out what strtod would also take: spaces, "nan", "inf", hex floats. */
static int
decimal_ok(const char *s)
{
	const char *p = s;
	int digits = 0;

	if (*p == '+' || *p == '-')
		p++;
	for (; *p != '\0'; p++) {
		if (is_digit(*p))
			digits++;
		else if (*p != '.' && *p != 'e' && *p != 'E' && *p != '+' &&
		    *p != '-')
			return 0;
	}
	return digits > 0 && (is_digit(s[0]) || s[0] == '.' ||
	    ((s[0] == '+' || s[0] == '-') && (is_digit(s[1]) || s[1] == '.')));
}

int
dm_parse_double(const char *s, double min, double max, double *out)
{
	char *end;
	double v;

	if (s == NULL)
		s = "";
	if (!decimal_ok(s))
		return dm_seterr("'%s' is not a number", s);
	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end != '\0')
		return dm_seterr("'%s' is not a number", s);
	/* overflow is refused; underflow (a tiny or zero result) is kept */
	if ((errno == ERANGE && fabs(v) == HUGE_VAL) || !isfinite(v) ||
	    v < min || v > max)
		return dm_seterr("'%s' is out of range (%g to %g)", s, min, max);
	*out = v;
	return 0;
}

int
dm_parse_doubles(const char *s, double *out, int cap, int *n)
{
	char *copy, *p, *comma;
	int count = 0, rc = 0;

	if (s == NULL)
		s = "";
	if ((copy = dm_strdup(s)) == NULL)
		return -1;
	for (p = copy;; p = comma + 1) {
		if ((comma = strchr(p, ',')) != NULL)
			*comma = '\0';
		if (count >= cap) {
			rc = dm_seterr("'%s' has more than %d values", s, cap);
			break;
		}
		if (dm_parse_double(p, -DBL_MAX, DBL_MAX, &out[count]) == -1) {
			rc = -1;
			break;
		}
		count++;
		if (comma == NULL)
			break;
	}
	free(copy);
	if (rc == 0)
		*n = count;
	return rc;
}

void
dm_common_init(struct dm_common *c)
{
	c->output = NULL;
	c->quiet = 0;
	c->seed = 0;
	c->threads = 0;
	c->log = NULL;
}

int
dm_common_option(struct dm_common *c, int opt, const char *arg)
{
	switch (opt) {
	case 'o':
		if (arg == NULL || *arg == '\0')
			return dm_seterr("-o: empty file name");
		c->output = arg;
		return 1;
	case 'q':
		c->quiet = 1;
		return 1;
	case DM_OPT_SEED:
		if (dm_parse_uint64(arg, &c->seed) == -1)
			return dm_errctx("--seed: ");
		return 1;
	case DM_OPT_THREADS:
		if (dm_parse_int(arg, 1, DM_THREADS_MAX, &c->threads) == -1)
			return dm_errctx("--threads: ");
		return 1;
	case DM_OPT_LOG:
		if (arg == NULL || *arg == '\0')
			return dm_seterr("--log: empty file name");
		c->log = arg;
		return 1;
	default:
		return 0;
	}
}

int
dm_check_binary_output(const char *path)
{
	if ((path == NULL || strcmp(path, "-") == 0) && isatty(STDOUT_FILENO))
		return dm_seterr("refusing to write binary data to a terminal "
		    "(use -o FILE or a pipe)");
	return 0;
}

static int
online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	if (n < 1)
		return 1;
	return n > DM_THREADS_MAX ? DM_THREADS_MAX : (int)n;
}

void
dm_tool_init(char **argv)
{
	if (getenv("OMP_WAIT_POLICY") != NULL ||
	    getenv("GOMP_SPINCOUNT") != NULL)
		return;
	if (setenv("OMP_WAIT_POLICY", "passive", 1) == -1)
		return;
	execv("/proc/self/exe", argv);
}

void
dm_threads_set(int n)
{
	if (n <= 0)
		n = online_cpus();
	if (n > DM_THREADS_MAX)
		n = DM_THREADS_MAX;
	threads_current = n;
	openblas_set_num_threads(n);
	omp_set_num_threads(n);
}

int
dm_threads_get(void)
{
	return threads_current > 0 ? threads_current : online_cpus();
}

double
dm_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void
dm_progress_start(struct dm_progress *p, const char *what, int64_t total,
    int quiet)
{
	p->what = what;
	p->total = total;
	p->enabled = !quiet && isatty(STDERR_FILENO);
	p->start = dm_now();
	p->last = p->start;
	p->drawn = 0;
}

/* snprintf at buf + *off that keeps counting past the end of buf. */
static void DM_PRINTF(4, 5)
append(char *buf, size_t n, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int k;

	va_start(ap, fmt);
	k = vsnprintf(*off < n ? buf + *off : NULL, *off < n ? n - *off : 0,
	    fmt, ap);
	va_end(ap);
	if (k > 0)
		*off += (size_t)k;
}

/* "M:SS" or "H:MM:SS", seconds rounded to nearest. */
static void
append_duration(char *buf, size_t n, size_t *off, double sec)
{
	long long s = (long long)(sec + 0.5);

	if (s >= 3600)
		append(buf, n, off, "%lld:%02lld:%02lld", s / 3600,
		    s / 60 % 60, s % 60);
	else
		append(buf, n, off, "%lld:%02lld", s / 60, s % 60);
}

int
dm_progress_format(char *buf, size_t n, const struct dm_progress *p,
    int64_t done, double now, const char *extra)
{
	double elapsed = now - p->start, rate = 0;
	size_t off = 0;

	if (n > 0)
		buf[0] = '\0';
	append(buf, n, &off, "\r  ");
	if (p->what != NULL && p->what[0] != '\0')
		append(buf, n, &off, "%s ", p->what);
	append(buf, n, &off, "%lld", (long long)done);
	if (p->total > 0)
		append(buf, n, &off, "/%lld  %d%%", (long long)p->total,
		    (int)fmin(fmax(100.0 * (double)done / (double)p->total,
		    0.0), 999.0));
	if (elapsed > 0) {
		rate = (double)done / elapsed;
		append(buf, n, &off, "  %.1f/s", rate);
	} else
		append(buf, n, &off, "  ?/s");
	if (p->total > 0) {
		double eta = rate > 0 ? (double)(p->total - done) / rate : -1;

		append(buf, n, &off, "  ETA ");
		if (done >= p->total)
			append(buf, n, &off, "0:00");
		else if (eta >= 0 && eta < 1e8)
			append_duration(buf, n, &off, eta);
		else
			append(buf, n, &off, "?");
	}
	if (extra != NULL && extra[0] != '\0')
		append(buf, n, &off, "  %s", extra);
	append(buf, n, &off, "\033[K");
	return off > INT32_MAX ? -1 : (int)off;
}

void
dm_progress_update(struct dm_progress *p, int64_t done, const char *extra)
{
	char line[512];
	double now;

	if (!p->enabled)
		return;
	now = dm_now();
	if (now - p->last < PROGRESS_EVERY && !(p->total > 0 &&
	    done >= p->total))
		return;
	if (dm_progress_format(line, sizeof line, p, done, now, extra) < 0)
		return;
	fputs(line, stderr);
	fflush(stderr);
	p->last = now;
	p->drawn = 1;
}

void
dm_progress_end(struct dm_progress *p)
{
	if (p->drawn) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
	p->drawn = 0;
}
