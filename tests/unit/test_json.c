/* test_json.c — the strict JSON parser: accepted and refused texts, string
 * decoding, integers, string writing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "test.h"

static struct dm_json *
parse(const char *s)
{
	return dm_json_parse(s, strlen(s));
}

DM_TEST(json_accepts_valid_texts)
{
	static const char *const ok[] = {
		"{}", "[]", " \t\n\r{\"a\" : [ 1 , 2 ] } \n", "\"x\"", "0",
		"-0", "1.5e+10", "-1E-2", "0.0e0", "123456789012345678901234",
		"true", "false", "null", "[[[]]]", "{\"\":{}}",
		"\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "[\"\\u00e9\", \"\\uD83D\\uDE00\"]",
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		struct dm_json *j = parse(ok[i]);
		CHECK_MSG(j != NULL, "'%s' refused: %s", ok[i], dm_errstr());
		dm_json_free(j);
	}
}

DM_TEST(json_refuses_invalid_texts)
{
	static const struct {
		const char *text, *why;
	} bad[] = {
		{"", "unexpected end of input at byte 0"},
		{"{", "unexpected end of input at byte 1"},
		{"{\"a\":1,}", "unexpected character '}' at byte 7"},
		{"[1,]", "unexpected character ']' at byte 3"},
		{"[1 2]", "unexpected character '2' at byte 3"},
		{"{\"a\" 1}", "unexpected character '1' at byte 5"},
		{"{1:2}", "unexpected character '1' at byte 1"},
		{"{\"a\":  x}", "unexpected character 'x' at byte 7"},
		{"01", "trailing characters at byte 1"},
		{"0x10", "trailing characters at byte 1"},
		{"{\"a\":1} x", "trailing characters at byte 8"},
		{"1.", "unexpected end of input"},
		{"1.e3", "unexpected character 'e'"},
		{".5", "unexpected character '.'"},
		{"+1", "unexpected character '+'"},
		{"1e", "unexpected end of input"},
		{"1e+", "unexpected end of input"},
		{"-", "unexpected end of input"},
		{"--1", "unexpected character '-'"},
		{"NaN", "unexpected character 'N'"},
		{"Infinity", "unexpected character 'I'"},
		{"tru", "unexpected end of input"},
		{"nulL", "unexpected character 'L'"},
		{"True", "unexpected character 'T'"},
		{"'a'", "unexpected character '''"},
		{"\"abc", "unexpected end of input"},
		{"\"a\\", "unexpected end of input"},
		{"\"a\x01z\"", "control character 0x01 in string at byte 2"},
		{"\"a\tb\"", "control character 0x09"},
		{"\"\\u0000\"", "\\u0000 in string at byte 1"},
		{"\"ab\\ud800\"", "unpaired high surrogate at byte 3"},
		{"\"\\ud800\\u0041\"", "unpaired high surrogate"},
		{"\"\\ud800\\ud800\"", "unpaired high surrogate"},
		{"\"\\udc00\"", "unpaired low surrogate"},
		{"\"\\x\"", "invalid escape at byte 1"},
		{"\"\\U0041\"", "invalid escape"},
		{"\"\\u12g4\"", "bad hex digit"},
		{"\"\\u12\"", "bad hex digit"},
		{"\"\xff\"", "invalid UTF-8 at byte 1"},
		{"\"\xc0\xaf\"", "invalid UTF-8"},          /* overlong '/' */
		{"\"\xe0\x80\xaf\"", "invalid UTF-8"},      /* overlong */
		{"\"\xed\xa0\x80\"", "invalid UTF-8"},      /* encoded surrogate */
		{"\"\xf4\x90\x80\x80\"", "invalid UTF-8"},  /* above U+10FFFF */
		{"\"\xc3\"", "invalid UTF-8"},              /* cut sequence */
		{"{\"a\":1,\"b\":2,\"a\":3}", "duplicate key 'a' at byte 13"},
		{"\v1", "unexpected byte 0x0b at byte 0"},
		{"\xef\xbb\xbf{}", "unexpected byte 0xef"},  /* no BOM */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_FAILS(parse(bad[i].text) == NULL ? -1 : 0, bad[i].why);
	/* a NUL byte inside the text (length given) */
	CHECK_FAILS(dm_json_parse("[1,\0]", 5) == NULL ? -1 : 0,
	    "unexpected byte 0x00 at byte 3");
	/* only len bytes are read */
	struct dm_json *j = dm_json_parse("[1]garbage", 3);
	CHECK(j != NULL);
	dm_json_free(j);
}

DM_TEST(json_nesting_limit)
{
	char s[200];

	memset(s, '[', 64);
	memset(s + 64, ']', 64);
	struct dm_json *j = dm_json_parse(s, 128);
	CHECK_MSG(j != NULL, "64 levels refused: %s", dm_errstr());
	dm_json_free(j);
	memset(s, '[', 65);
	memset(s + 65, ']', 65);
	CHECK_FAILS(dm_json_parse(s, 130) == NULL ? -1 : 0,
	    "nesting deeper than 64 at byte 64");
	memset(s, '[', 200);
	CHECK_FAILS(dm_json_parse(s, 200) == NULL ? -1 : 0, "nesting");
}

DM_TEST(json_dom_and_strings)
{
	struct dm_json *j = parse("{\"s\": \"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\","
	    " \"u\": \"\\u00e9\\u20AC\\ud83d\\ude00\", \"n\": -1.5e3,"
	    " \"a\": [true, false, null, {}], \"e\": \"\"}");
	const struct dm_json *v;

	CHECK(j != NULL);
	if (j == NULL)
		return;
	CHECK_EQ_INT(j->type, DM_JSON_OBJECT);
	CHECK_EQ_INT(j->n, 5);
	CHECK_STR(j->kids[0].key, "s");
	CHECK_STR(j->kids[4].key, "e");
	v = dm_json_get(j, "s");
	CHECK(v != NULL && v->type == DM_JSON_STRING);
	CHECK_STR(v ? v->str : NULL, "a\"b\\c/d\b\f\n\r\t");
	v = dm_json_get(j, "u");
	/* U+00E9, U+20AC, U+1F600 in UTF-8 */
	CHECK_STR(v ? v->str : NULL, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	v = dm_json_get(j, "n");
	CHECK(v != NULL && v->type == DM_JSON_NUMBER);
	CHECK_STR(v ? v->num : NULL, "-1.5e3");
	v = dm_json_get(j, "a");
	CHECK(v != NULL && v->type == DM_JSON_ARRAY && v->n == 4);
	if (v != NULL && v->n == 4) {
		CHECK_EQ_INT(v->kids[0].type, DM_JSON_TRUE);
		CHECK_EQ_INT(v->kids[1].type, DM_JSON_FALSE);
		CHECK_EQ_INT(v->kids[2].type, DM_JSON_NULL);
		CHECK_EQ_INT(v->kids[3].type, DM_JSON_OBJECT);
		CHECK(v->kids[0].key == NULL);
	}
	CHECK_STR(dm_json_get(j, "e")->str, "");
	CHECK(dm_json_get(j, "missing") == NULL);
	CHECK(dm_json_get(v, "x") == NULL);    /* not an object */
	dm_json_free(j);
	dm_json_free(NULL);
}

DM_TEST(json_uint)
{
	static const struct {
		const char *text;
		uint64_t max;
		int ok;
		uint64_t want;
	} cases[] = {
		{"0", 10, 1, 0},
		{"7", 7, 1, 7},
		{"8", 7, 0, 0},
		{"18446744073709551615", UINT64_MAX, 1, UINT64_MAX},
		{"18446744073709551616", UINT64_MAX, 0, 0},
		{"99999999999999999999999", UINT64_MAX, 0, 0},
		{"9223372036854775808", INT64_MAX, 0, 0},
		{"-1", 10, 0, 0},
		{"-0", 10, 0, 0},
		{"1.0", 10, 0, 0},
		{"1e3", 10000, 0, 0},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct dm_json *j = parse(cases[i].text);
		uint64_t v = 12345;
		CHECK(j != NULL);
		if (j == NULL)
			continue;
		int rc = dm_json_uint(j, cases[i].max, &v);
		CHECK_MSG(rc == (cases[i].ok ? 0 : -1), "dm_json_uint(%s) = %d",
		    cases[i].text, rc);
		if (cases[i].ok)
			CHECK(v == cases[i].want);
		dm_json_free(j);
	}
	struct dm_json *s = parse("\"5\"");
	uint64_t v;
	CHECK_FAILS(dm_json_uint(s, 10, &v), "not a number");
	dm_json_free(s);
}

DM_TEST(json_write_string)
{
	struct dm_membuf b = {0};
	struct dm_sink s = {dm_membuf_write, &b};
	const char *want = "\"a\\\"b\\\\c\\u000a\\u0001\\u001f/\xc3\xa9\"";

	CHECK_OK(dm_json_write_string(&s, "a\"b\\c\n\x01\x1f/\xc3\xa9"));
	CHECK(b.len == strlen(want) && memcmp(b.p, want, b.len) == 0);
	/* what is written parses back to the same string */
	struct dm_json *j = dm_json_parse((const char *)b.p, b.len);
	CHECK(j != NULL && j->type == DM_JSON_STRING);
	CHECK_STR(j ? j->str : NULL, "a\"b\\c\n\x01\x1f/\xc3\xa9");
	dm_json_free(j);
	b.len = 0;
	CHECK_OK(dm_json_write_string(&s, ""));
	CHECK(b.len == 2 && memcmp(b.p, "\"\"", 2) == 0);
	free(b.p);
}
