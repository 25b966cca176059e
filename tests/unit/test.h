/* test.h — the unit-test runner's interface.
 *
 *   DM_TEST(name) { CHECK(x == 1); CHECK_NEAR(a, b, 1e-6); }
 *
 * Tests register themselves; `run [PATTERN]` runs those whose name contains
 * PATTERN, prints each failure with file:line and what differed, and ends
 * with "N passed, N failed"; its exit status is non-zero on any failure. */
#ifndef DM_TEST_H
#define DM_TEST_H

#include <math.h>
#include <stdio.h>

void dm_test_register(const char *name, void (*fn)(void));
void dm_test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* A directory for scratch files, unique to this run. */
const char *dm_test_tmpdir(void);
/* Path of a scratch file: tmpdir/name (static buffer, rotated 8 deep). */
const char *dm_test_path(const char *name);

#define DM_TEST(name)                                                     \
	static void test_##name(void);                                    \
	__attribute__((constructor)) static void register_##name(void)    \
	{ dm_test_register(#name, test_##name); }                         \
	static void test_##name(void)

#define CHECK(c) do { if (!(c))                                           \
	dm_test_fail(__FILE__, __LINE__, "CHECK(%s)", #c); } while (0)
#define CHECK_MSG(c, ...) do { if (!(c))                                  \
	dm_test_fail(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define CHECK_EQ_INT(a, b) do { long long a_ = (long long)(a),            \
	b_ = (long long)(b); if (a_ != b_)                                \
	dm_test_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld",        \
	    #a, #b, a_, b_); } while (0)
#define CHECK_NEAR(a, b, tol) do { double a_ = (a), b_ = (b);             \
	if (!(fabs(a_ - b_) <= (tol)))                                    \
	dm_test_fail(__FILE__, __LINE__, "%s ~ %s: %.17g vs %.17g (tol %g)", \
	    #a, #b, a_, b_, (double)(tol)); } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b);             \
	if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)              \
	dm_test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"",    \
	    #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)
/* A libdm call that must succeed (returns -1/NULL on failure). */
#define CHECK_OK(call) do { if ((call) == -1)                             \
	dm_test_fail(__FILE__, __LINE__, "%s failed: %s", #call,          \
	    dm_errstr()); } while (0)
#define CHECK_FAILS(call, substr) do { dm_clearerr();                     \
	if ((call) != -1) dm_test_fail(__FILE__, __LINE__,                \
	    "%s should fail", #call);                                     \
	else if (strstr(dm_errstr(), (substr)) == NULL)                   \
	dm_test_fail(__FILE__, __LINE__, "%s: reason \"%s\" lacks \"%s\"",\
	    #call, dm_errstr(), (substr)); } while (0)

#endif
