/* test_cli.c — strict number parsing, common options, progress lines. */
#include <float.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "dm.h"
#include "test.h"

DM_TEST(cli_parse_int64_table)
{
	static const struct {
		const char *s;
		int64_t min, max, want;
		const char *reason;        /* NULL: accepted */
	} t[] = {
		{"0", 0, 255, 0, NULL},
		{"255", 0, 255, 255, NULL},
		{"+7", 0, 255, 7, NULL},
		{"-12", -100, 100, -12, NULL},
		{"007", 0, 255, 7, NULL},
		{"9223372036854775807", INT64_MIN, INT64_MAX, INT64_MAX, NULL},
		{"-9223372036854775808", INT64_MIN, INT64_MAX, INT64_MIN, NULL},
		{"300", 0, 255, 0, "'300' is out of range (0 to 255)"},
		{"-1", 0, 255, 0, "'-1' is out of range (0 to 255)"},
		{"9223372036854775808", INT64_MIN, INT64_MAX, 0,
		    "'9223372036854775808' is out of range"},
		{"-9223372036854775809", INT64_MIN, INT64_MAX, 0, "out of range"},
		{"99999999999999999999999", 0, 10, 0, "out of range (0 to 10)"},
		{"1x", 0, 255, 0, "'1x' is not an integer"},
		{"", 0, 255, 0, "'' is not an integer"},
		{" 1", 0, 255, 0, "' 1' is not an integer"},
		{"1 ", 0, 255, 0, "'1 ' is not an integer"},
		{"0x10", 0, 255, 0, "'0x10' is not an integer"},
		{"1.0", 0, 255, 0, "not an integer"},
		{"1e3", 0, 10000, 0, "not an integer"},
		{"+", 0, 255, 0, "not an integer"},
		{"-", 0, 255, 0, "not an integer"},
		{"+-1", -5, 5, 0, "not an integer"},
		{"- 1", -5, 5, 0, "not an integer"},
		{"\t1", 0, 255, 0, "not an integer"},
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		int64_t v = -42;
		int rc;

		dm_clearerr();
		rc = dm_parse_int64(t[i].s, t[i].min, t[i].max, &v);
		if (t[i].reason == NULL) {
			CHECK_MSG(rc == 0 && v == t[i].want,
			    "'%s': rc %d value %lld (%s)", t[i].s, rc,
			    (long long)v, dm_errstr());
		} else {
			CHECK_MSG(rc == -1 && v == -42, "'%s' accepted", t[i].s);
			CHECK_MSG(strstr(dm_errstr(), t[i].reason) != NULL,
			    "'%s': reason \"%s\" lacks \"%s\"", t[i].s,
			    dm_errstr(), t[i].reason);
		}
	}
	CHECK_FAILS(dm_parse_int64(NULL, 0, 1, &(int64_t){0}), "not an integer");
}

DM_TEST(cli_parse_int_and_uint64)
{
	int i = 0;
	uint64_t u = 0;

	CHECK_OK(dm_parse_int("-2147483648", INT32_MIN, INT32_MAX, &i));
	CHECK_EQ_INT(i, INT32_MIN);
	CHECK_OK(dm_parse_int("1024", 1, 1024, &i));
	CHECK_EQ_INT(i, 1024);
	CHECK_FAILS(dm_parse_int("2147483648", INT32_MIN, INT32_MAX, &i),
	    "out of range (-2147483648 to 2147483647)");
	CHECK_FAILS(dm_parse_int("0", 1, 1024, &i), "'0' is out of range (1 to 1024)");
	CHECK_FAILS(dm_parse_int("3 ", 1, 1024, &i), "not an integer");
	CHECK_EQ_INT(i, 1024);

	CHECK_OK(dm_parse_uint64("18446744073709551615", &u));
	CHECK(u == UINT64_MAX);
	CHECK_OK(dm_parse_uint64("+5", &u));
	CHECK(u == 5);
	CHECK_OK(dm_parse_uint64("0", &u));
	CHECK(u == 0);
	CHECK_FAILS(dm_parse_uint64("18446744073709551616", &u), "out of range");
	CHECK_FAILS(dm_parse_uint64("-1", &u), "'-1' is out of range");
	CHECK_FAILS(dm_parse_uint64("-", &u), "not an integer");
	CHECK_FAILS(dm_parse_uint64(" 1", &u), "not an integer");
	CHECK_FAILS(dm_parse_uint64("", &u), "not an integer");
	CHECK_FAILS(dm_parse_uint64("12abc", &u), "'12abc' is not an integer");
	CHECK_FAILS(dm_parse_uint64("0x10", &u), "not an integer");
	CHECK(u == 0);
}

DM_TEST(cli_parse_double_table)
{
	static const struct {
		const char *s;
		double want;
	} ok[] = {
		{"1e-3", 1e-3}, {"0.5", 0.5}, {".5", 0.5}, {"-2", -2.0},
		{"+3.25", 3.25}, {"1E2", 100.0}, {"5.", 5.0}, {"-.25", -0.25},
		{"1e+2", 100.0}, {"0", 0.0}, {"1e-400", 0.0},
		{"1.7976931348623157e308", DBL_MAX},
	};
	static const struct {
		const char *s, *reason;
	} bad[] = {
		{"", "'' is not a number"}, {"nan", "'nan' is not a number"},
		{"NaN", "not a number"}, {"inf", "not a number"},
		{"-inf", "not a number"}, {"infinity", "not a number"},
		{"1x", "'1x' is not a number"}, {" 1", "not a number"},
		{"1 ", "not a number"}, {"0x1p3", "not a number"},
		{".", "not a number"}, {"-", "not a number"}, {"e5", "not a number"},
		{"1e", "not a number"}, {"1.2.3", "not a number"},
		{"--1", "not a number"}, {"1,5", "not a number"},
		{"1e999", "'1e999' is out of range"},
		{"-1e999", "out of range"},
	};
	double v;

	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		v = -42;
		CHECK_MSG(dm_parse_double(ok[i].s, -DBL_MAX, DBL_MAX, &v) == 0 &&
		    v == ok[i].want, "'%s': got %g (%s)", ok[i].s, v,
		    dm_errstr());
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		v = -42;
		dm_clearerr();
		CHECK_MSG(dm_parse_double(bad[i].s, -DBL_MAX, DBL_MAX, &v) == -1
		    && v == -42, "'%s' accepted", bad[i].s);
		CHECK_MSG(strstr(dm_errstr(), bad[i].reason) != NULL,
		    "'%s': reason \"%s\" lacks \"%s\"", bad[i].s, dm_errstr(),
		    bad[i].reason);
	}
	CHECK_FAILS(dm_parse_double("1.5", 0, 1, &v),
	    "'1.5' is out of range (0 to 1)");
	CHECK_FAILS(dm_parse_double("-1e-9", 0, 1e6, &v),
	    "out of range (0 to 1e+06)");
	CHECK_OK(dm_parse_double("1", 0, 1, &v));
	CHECK(v == 1.0);
}

DM_TEST(cli_parse_doubles_lists)
{
	double v[4];
	int n = -1;

	CHECK_OK(dm_parse_doubles("1,-2.5,.5,1e3", v, 4, &n));
	CHECK_EQ_INT(n, 4);
	CHECK(v[0] == 1.0 && v[1] == -2.5 && v[2] == 0.5 && v[3] == 1000.0);
	CHECK_OK(dm_parse_doubles("7", v, 4, &n));
	CHECK_EQ_INT(n, 1);
	CHECK(v[0] == 7.0);
	n = -1;
	CHECK_FAILS(dm_parse_doubles("1,2,3,4,5", v, 4, &n),
	    "'1,2,3,4,5' has more than 4 values");
	CHECK_FAILS(dm_parse_doubles("1,,2", v, 4, &n), "'' is not a number");
	CHECK_FAILS(dm_parse_doubles("1,2,", v, 4, &n), "'' is not a number");
	CHECK_FAILS(dm_parse_doubles("", v, 4, &n), "not a number");
	CHECK_FAILS(dm_parse_doubles("1, 2", v, 4, &n), "' 2' is not a number");
	CHECK_FAILS(dm_parse_doubles("1,nan", v, 4, &n), "'nan' is not a number");
	CHECK_FAILS(dm_parse_doubles("1;2", v, 4, &n), "not a number");
	CHECK_EQ_INT(n, -1);
}

DM_TEST(cli_common_options)
{
	struct dm_common c;

	memset(&c, 0x5a, sizeof c);
	dm_common_init(&c);
	CHECK(c.output == NULL && c.log == NULL);
	CHECK(c.quiet == 0 && c.seed == 0 && c.threads == 0);

	CHECK_EQ_INT(dm_common_option(&c, 'o', "out.st"), 1);
	CHECK_STR(c.output, "out.st");
	CHECK_EQ_INT(dm_common_option(&c, 'q', NULL), 1);
	CHECK_EQ_INT(c.quiet, 1);
	CHECK_EQ_INT(dm_common_option(&c, DM_OPT_SEED, "18446744073709551615"), 1);
	CHECK(c.seed == UINT64_MAX);
	CHECK_EQ_INT(dm_common_option(&c, DM_OPT_THREADS, "4"), 1);
	CHECK_EQ_INT(c.threads, 4);
	CHECK_EQ_INT(dm_common_option(&c, DM_OPT_LOG, "train.tsv"), 1);
	CHECK_STR(c.log, "train.tsv");

	CHECK_EQ_INT(dm_common_option(&c, 'n', "5"), 0);
	CHECK_EQ_INT(dm_common_option(&c, DM_OPT_HELP, NULL), 0);
	CHECK_EQ_INT(dm_common_option(&c, DM_OPT_FIRST_TOOL, "x"), 0);

	CHECK_FAILS(dm_common_option(&c, DM_OPT_SEED, "x"),
	    "--seed: 'x' is not an integer");
	CHECK_FAILS(dm_common_option(&c, DM_OPT_SEED, "-1"), "--seed: ");
	CHECK_FAILS(dm_common_option(&c, DM_OPT_SEED, NULL), "--seed: ");
	CHECK(c.seed == UINT64_MAX);
	CHECK_FAILS(dm_common_option(&c, DM_OPT_THREADS, "0"),
	    "--threads: '0' is out of range (1 to 1024)");
	CHECK_FAILS(dm_common_option(&c, DM_OPT_THREADS, "1025"),
	    "out of range");
	CHECK_FAILS(dm_common_option(&c, DM_OPT_THREADS, "2x"),
	    "--threads: '2x' is not an integer");
	CHECK_EQ_INT(c.threads, 4);
	CHECK_FAILS(dm_common_option(&c, 'o', ""), "-o: empty file name");
	CHECK_FAILS(dm_common_option(&c, DM_OPT_LOG, ""), "--log: empty");
	CHECK_STR(c.output, "out.st");
}

DM_TEST(cli_binary_output_check)
{
	CHECK_OK(dm_check_binary_output("out.st"));
	CHECK_OK(dm_check_binary_output("./-"));
	if (isatty(STDOUT_FILENO)) {
		CHECK_FAILS(dm_check_binary_output(NULL),
		    "refusing to write binary data to a terminal "
		    "(use -o FILE or a pipe)");
		CHECK_FAILS(dm_check_binary_output("-"), "terminal");
	} else {
		CHECK_OK(dm_check_binary_output(NULL));
		CHECK_OK(dm_check_binary_output("-"));
	}
}

DM_TEST(cli_threads)
{
	long online = sysconf(_SC_NPROCESSORS_ONLN);
	int before = dm_threads_get();

	dm_threads_set(2);
	CHECK_EQ_INT(dm_threads_get(), 2);
	dm_threads_set(1);
	CHECK_EQ_INT(dm_threads_get(), 1);
	dm_threads_set(0);
	CHECK_EQ_INT(dm_threads_get(), online > 1024 ? 1024 : online);
	dm_threads_set(-3);
	CHECK_EQ_INT(dm_threads_get(), online > 1024 ? 1024 : online);
	dm_threads_set(before);
}

DM_TEST(cli_now_monotonic)
{
	double a = dm_now(), b = dm_now();

	CHECK(a > 0 && b >= a);
}

DM_TEST(cli_progress_format)
{
	struct dm_progress p = {.what = "step", .total = 5000, .start = 100.0};
	char buf[256];
	int n;

	/* 1200 in 4 s: 300/s, 3800 left = 12.67 s */
	n = dm_progress_format(buf, sizeof buf, &p, 1200, 104.0, "loss 0.0312");
	CHECK_STR(buf,
	    "\r  step 1200/5000  24%  300.0/s  ETA 0:13  loss 0.0312\033[K");
	CHECK_EQ_INT(n, strlen(buf));
	dm_progress_format(buf, sizeof buf, &p, 1200, 104.0, NULL);
	CHECK_STR(buf, "\r  step 1200/5000  24%  300.0/s  ETA 0:13\033[K");
	/* 2500 in 1 s of 10^7: 9997500 / 2500 = 3999 s = 1:06:39 */
	p.total = 10000000;
	dm_progress_format(buf, sizeof buf, &p, 2500, 101.0, "");
	CHECK_STR(buf, "\r  step 2500/10000000  0%  2500.0/s  ETA 1:06:39\033[K");
	/* 10 minutes left: 600 s = 10:00 */
	p.total = 700;
	dm_progress_format(buf, sizeof buf, &p, 100, 200.0, NULL);
	CHECK_STR(buf, "\r  step 100/700  14%  1.0/s  ETA 10:00\033[K");
	/* finished */
	dm_progress_format(buf, sizeof buf, &p, 700, 107.0, NULL);
	CHECK_STR(buf, "\r  step 700/700  100%  100.0/s  ETA 0:00\033[K");
	/* nothing done yet, no time elapsed */
	dm_progress_format(buf, sizeof buf, &p, 0, 100.0, NULL);
	CHECK_STR(buf, "\r  step 0/700  0%  ?/s  ETA ?\033[K");
	dm_progress_format(buf, sizeof buf, &p, 0, 105.0, NULL);
	CHECK_STR(buf, "\r  step 0/700  0%  0.0/s  ETA ?\033[K");
	/* unknown total: the count and the rate only */
	p.total = 0;
	dm_progress_format(buf, sizeof buf, &p, 1200, 104.0, "loss 1");
	CHECK_STR(buf, "\r  step 1200  300.0/s  loss 1\033[K");
	p.total = -1;
	p.what = NULL;
	dm_progress_format(buf, sizeof buf, &p, 42, 102.0, NULL);
	CHECK_STR(buf, "\r  42  21.0/s\033[K");
	/* a short buffer is cut and terminated; the length is the full one */
	char small[8];
	n = dm_progress_format(small, sizeof small, &p, 42, 102.0, NULL);
	CHECK_EQ_INT(n, strlen("\r  42  21.0/s\033[K"));
	CHECK_STR(small, "\r  42  ");
	CHECK_EQ_INT(dm_progress_format(NULL, 0, &p, 42, 102.0, NULL), n);
}

DM_TEST(cli_progress_quiet_draws_nothing)
{
	struct dm_progress p;

	dm_progress_start(&p, "step", 10, 1);
	CHECK_EQ_INT(p.enabled, 0);
	dm_progress_update(&p, 10, NULL);
	CHECK_EQ_INT(p.drawn, 0);
	dm_progress_end(&p);
	CHECK(p.start > 0 && p.total == 10);
	dm_progress_start(&p, "step", 10, 0);
	CHECK_EQ_INT(p.enabled, isatty(STDERR_FILENO) ? 1 : 0);
	dm_progress_end(&p);
}
