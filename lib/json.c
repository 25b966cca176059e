/* json.c — a strict RFC 8259 JSON parser into a small DOM, for file headers.
 *
 * Strings must be valid UTF-8; escapes (with \uXXXX surrogate pairs) are
 * decoded to UTF-8; unpaired surrogates, raw control characters and \u0000
 * are refused.  Numbers are checked against the grammar and kept as text.
 * Duplicate keys in one object, nesting deeper than JSON_MAX_DEPTH and
 * anything after the value but whitespace are refused. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define JSON_MAX_DEPTH 64
/* Every value costs a node of a few dozen bytes: bound the DOM. */
#define JSON_MAX_NODES (1L << 21)

struct parser {
	const unsigned char *s;
	size_t len, pos;
	int depth;
	long nodes;
};

static int parse_value(struct parser *p, struct dm_json *v);

static int
fail_at(struct parser *p, const char *what)
{
	return dm_seterr("JSON: %s at byte %zu", what, p->pos);
}

static int
unexpected(struct parser *p)
{
	unsigned char c;

	if (p->pos >= p->len)
		return fail_at(p, "unexpected end of input");
	c = p->s[p->pos];
	if (c >= 0x20 && c < 0x7f)
		return dm_seterr("JSON: unexpected character '%c' at byte %zu",
		    c, p->pos);
	return dm_seterr("JSON: unexpected byte 0x%02x at byte %zu", c, p->pos);
}

static void
skip_ws(struct parser *p)
{
	while (p->pos < p->len) {
		unsigned char c = p->s[p->pos];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->pos++;
	}
}

static int
peek(struct parser *p)
{
	return p->pos < p->len ? p->s[p->pos] : -1;
}

static void
json_clear(struct dm_json *j)
{
	for (int i = 0; i < j->n; i++)
		json_clear(&j->kids[i]);
	free(j->kids);
	free(j->key);
	free(j->str);
	free(j->num);
	memset(j, 0, sizeof *j);
}

void
dm_json_free(struct dm_json *j)
{
	if (j == NULL)
		return;
	json_clear(j);
	free(j);
}

/* Length of the UTF-8 sequence at s[0..n) (1..4), or 0 if it is invalid:
 * overlong forms, surrogates and code points above U+10FFFF are refused. */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	size_t k;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		k = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		k = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		k = 4, cp = c & 0x07;
	else
		return 0;
	if (n < k)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((k == 3 && cp < 0x800) || (k == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return k;
}

static size_t
utf8_put(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Four hex digits at p->pos into *u. */
static int
hex4(struct parser *p, uint32_t *u)
{
	*u = 0;
	for (int i = 0; i < 4; i++) {
		int c = peek(p), d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return c < 0 ? unexpected(p) :
			    fail_at(p, "bad hex digit in \\u escape");
		*u = *u << 4 | (uint32_t)d;
		p->pos++;
	}
	return 0;
}

/* After "\u": one code point, joining a surrogate pair. */
static int
unicode_escape(struct parser *p, uint32_t *cp)
{
	size_t at = p->pos - 2;
	uint32_t hi, lo;

	if (hex4(p, &hi) == -1)
		return -1;
	if (hi >= 0xdc00 && hi <= 0xdfff) {
		p->pos = at;
		return fail_at(p, "unpaired low surrogate");
	}
	if (hi >= 0xd800 && hi <= 0xdbff) {
		if (p->pos + 2 > p->len || p->s[p->pos] != '\\' ||
		    p->s[p->pos + 1] != 'u') {
			p->pos = at;
			return fail_at(p, "unpaired high surrogate");
		}
		p->pos += 2;
		if (hex4(p, &lo) == -1)
			return -1;
		if (lo < 0xdc00 || lo > 0xdfff) {
			p->pos = at;
			return fail_at(p, "unpaired high surrogate");
		}
		hi = 0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00);
	}
	if (hi == 0) {
		p->pos = at;
		return fail_at(p, "\\u0000 in string");
	}
	*cp = hi;
	return 0;
}

/* After a backslash: one escape, its UTF-8 bytes appended at o + *k. */
static int
escape(struct parser *p, char *o, size_t *k)
{
	static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
	const char *e;
	uint32_t cp = 0;
	int c = peek(p);

	if (c < 0)
		return unexpected(p);
	if (c == 'u') {
		p->pos++;
		if (unicode_escape(p, &cp) == -1)
			return -1;
		*k += utf8_put(o + *k, cp);
		return 0;
	}
	if (c == 0 || (e = strchr(from, c)) == NULL) {
		p->pos--;
		return fail_at(p, "invalid escape");
	}
	o[(*k)++] = to[e - from];
	p->pos++;
	return 0;
}

/* The string at p->pos (which is '"') into a new NUL-terminated buffer.
 * Its decoded form is never longer than its text, which bounds the buffer. */
static int
parse_string(struct parser *p, char **out)
{
	size_t end = ++p->pos, k = 0;
	char *o;

	while (end < p->len && p->s[end] != '"')
		end += p->s[end] == '\\' ? 2 : 1;
	if (end >= p->len) {
		p->pos = p->len;
		return unexpected(p);
	}
	if ((o = dm_malloc(end - p->pos + 1)) == NULL)
		return -1;
	while (p->pos < end) {
		unsigned char c = p->s[p->pos];
		size_t n;
		if (c == '\\') {
			p->pos++;
			if (escape(p, o, &k) == -1)
				goto bad;
		} else if (c < 0x20) {
			dm_seterr("JSON: control character 0x%02x in string "
			    "at byte %zu", c, p->pos);
			goto bad;
		} else if ((n = utf8_len(p->s + p->pos, end - p->pos)) == 0) {
			fail_at(p, "invalid UTF-8");
			goto bad;
		} else {
			memcpy(o + k, p->s + p->pos, n);
			k += n;
			p->pos += n;
		}
	}
	o[k] = '\0';
	p->pos = end + 1;
	*out = o;
	return 0;
bad:
	free(o);
	return -1;
}

static size_t
digits(struct parser *p)
{
	size_t n = 0;

	while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
		p->pos++, n++;
	return n;
}

/* number = [ "-" ] int [ frac ] [ exp ]; int = "0" / digit1-9 *digit */
static int
parse_number(struct parser *p, struct dm_json *v)
{
	size_t start = p->pos;

	if (peek(p) == '-')
		p->pos++;
	if (peek(p) == '0')
		p->pos++;
	else if (digits(p) == 0)
		return unexpected(p);
	if (peek(p) == '.') {
		p->pos++;
		if (digits(p) == 0)
			return unexpected(p);
	}
	if (peek(p) == 'e' || peek(p) == 'E') {
		p->pos++;
		if (peek(p) == '+' || peek(p) == '-')
			p->pos++;
		if (digits(p) == 0)
			return unexpected(p);
	}
	if ((v->num = dm_malloc(p->pos - start + 1)) == NULL)
		return -1;
	memcpy(v->num, p->s + start, p->pos - start);
	v->num[p->pos - start] = '\0';
	v->type = DM_JSON_NUMBER;
	return 0;
}

static int
parse_word(struct parser *p, struct dm_json *v)
{
	static const struct {
		const char *w;
		enum dm_json_type t;
	} words[] = {
		{"true", DM_JSON_TRUE}, {"false", DM_JSON_FALSE},
		{"null", DM_JSON_NULL},
	};

	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
		size_t n = strlen(words[i].w);
		if (p->s[p->pos] != words[i].w[0])
			continue;
		for (size_t k = 0; k < n; k++, p->pos++)
			if (p->pos >= p->len || p->s[p->pos] != words[i].w[k])
				return unexpected(p);
		v->type = words[i].t;
		return 0;
	}
	return unexpected(p);
}

/* A new slot at the end of v->kids (zeroed). */
static struct dm_json *
add_kid(struct parser *p, struct dm_json *v, int *cap)
{
	if (++p->nodes > JSON_MAX_NODES) {
		dm_seterr("JSON: more than %ld values at byte %zu",
		    JSON_MAX_NODES, p->pos);
		return NULL;
	}
	if (v->n == *cap) {
		int ncap = *cap ? *cap * 2 : 4;
		struct dm_json *k = dm_realloc(v->kids, (size_t)ncap * sizeof *k);
		if (k == NULL)
			return NULL;
		v->kids = k;
		*cap = ncap;
	}
	memset(&v->kids[v->n], 0, sizeof v->kids[0]);
	return &v->kids[v->n++];
}

static int
parse_array(struct parser *p, struct dm_json *v)
{
	struct dm_json *k;
	int cap = 0;

	v->type = DM_JSON_ARRAY;
	p->pos++;
	skip_ws(p);
	if (peek(p) == ']') {
		p->pos++;
		return 0;
	}
	for (;;) {
		if ((k = add_kid(p, v, &cap)) == NULL ||
		    parse_value(p, k) == -1)
			return -1;
		skip_ws(p);
		if (peek(p) == ']') {
			p->pos++;
			return 0;
		}
		if (peek(p) != ',')
			return unexpected(p);
		p->pos++;
	}
}

struct keypos {
	const char *key;
	size_t pos;
};

static int
keycmp(const void *a, const void *b)
{
	const struct keypos *x = a, *y = b;
	int c = strcmp(x->key, y->key);

	if (c != 0)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* Refuse duplicate keys: sort (key, position) and compare neighbours. */
static int
check_dup_keys(const struct dm_json *v, const size_t *pos)
{
	struct keypos *kp;
	int i;

	if (v->n < 2)
		return 0;
	if ((kp = dm_calloc((size_t)v->n, sizeof *kp)) == NULL)
		return -1;
	for (i = 0; i < v->n; i++) {
		kp[i].key = v->kids[i].key;
		kp[i].pos = pos[i];
	}
	qsort(kp, (size_t)v->n, sizeof *kp, keycmp);
	for (i = 1; i < v->n; i++)
		if (strcmp(kp[i - 1].key, kp[i].key) == 0)
			break;
	if (i < v->n)
		dm_seterr("JSON: duplicate key '%.64s' at byte %zu",
		    kp[i].key, kp[i].pos);
	free(kp);
	return i < v->n ? -1 : 0;
}

/* One "key": value member into a new kid; its key's offset into *at. */
static int
parse_member(struct parser *p, struct dm_json *v, int *cap, size_t *at)
{
	struct dm_json *k;
	char *key;

	skip_ws(p);
	if (peek(p) != '"')
		return unexpected(p);
	*at = p->pos;
	if (parse_string(p, &key) == -1)
		return -1;
	if ((k = add_kid(p, v, cap)) == NULL) {
		free(key);
		return -1;
	}
	k->key = key;
	skip_ws(p);
	if (peek(p) != ':')
		return unexpected(p);
	p->pos++;
	return parse_value(p, k);
}

static int
parse_object(struct parser *p, struct dm_json *v)
{
	size_t *pos = NULL, *np;
	int cap = 0, rc = -1;

	v->type = DM_JSON_OBJECT;
	p->pos++;
	skip_ws(p);
	if (peek(p) == '}') {
		p->pos++;
		return 0;
	}
	for (;;) {
		if (v->n == cap) {
			/* pos grows with v->kids: at most one more slot */
			size_t n = cap ? (size_t)cap * 2 : 4;
			if ((np = dm_realloc(pos, n * sizeof *np)) == NULL)
				goto out;
			pos = np;
		}
		if (parse_member(p, v, &cap, &pos[v->n]) == -1)
			goto out;
		skip_ws(p);
		if (peek(p) == '}')
			break;
		if (peek(p) != ',') {
			unexpected(p);
			goto out;
		}
		p->pos++;
	}
	p->pos++;
	rc = check_dup_keys(v, pos);
out:
	free(pos);
	return rc;
}

static int
parse_value(struct parser *p, struct dm_json *v)
{
	int c, rc;

	skip_ws(p);
	c = peek(p);
	if (c == '{' || c == '[') {
		if (++p->depth > JSON_MAX_DEPTH)
			return fail_at(p, "nesting deeper than 64");
		rc = c == '{' ? parse_object(p, v) : parse_array(p, v);
		p->depth--;
		return rc;
	}
	if (c == '"') {
		if (parse_string(p, &v->str) == -1)
			return -1;
		v->type = DM_JSON_STRING;
		return 0;
	}
	if (c == '-' || (c >= '0' && c <= '9'))
		return parse_number(p, v);
	if (c == 't' || c == 'f' || c == 'n')
		return parse_word(p, v);
	return unexpected(p);
}

struct dm_json *
dm_json_parse(const char *text, size_t len)
{
	struct parser p = {(const unsigned char *)text, len, 0, 0, 1};
	struct dm_json *j;

	if ((j = dm_calloc(1, sizeof *j)) == NULL)
		return NULL;
	if (parse_value(&p, j) == -1)
		goto bad;
	skip_ws(&p);
	if (p.pos < p.len) {
		fail_at(&p, "trailing characters");
		goto bad;
	}
	return j;
bad:
	dm_json_free(j);
	return NULL;
}

const struct dm_json *
dm_json_get(const struct dm_json *obj, const char *key)
{
	if (obj == NULL || obj->type != DM_JSON_OBJECT)
		return NULL;
	for (int i = 0; i < obj->n; i++)
		if (strcmp(obj->kids[i].key, key) == 0)
			return &obj->kids[i];
	return NULL;
}

int
dm_json_uint(const struct dm_json *j, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	const char *s;

	if (j == NULL || j->type != DM_JSON_NUMBER)
		return dm_seterr("not a number");
	for (s = j->num; *s; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (d > 9)
			return dm_seterr("%.32s is not a non-negative integer",
			    j->num);
		if (v > (UINT64_MAX - d) / 10)
			return dm_seterr("%.32s is too large", j->num);
		v = v * 10 + d;
	}
	if (v > max)
		return dm_seterr("%.32s is too large (at most %llu)", j->num,
		    (unsigned long long)max);
	*out = v;
	return 0;
}

int
dm_json_write_string(struct dm_sink *s, const char *str)
{
	const char *run = str;
	char esc[8];

	if (dm_sink_write(s, "\"", 1) == -1)
		return -1;
	for (; *str; str++) {
		unsigned char c = (unsigned char)*str;
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if (dm_sink_write(s, run, (size_t)(str - run)) == -1)
			return -1;
		if (c < 0x20)
			snprintf(esc, sizeof esc, "\\u%04x", c);
		else
			snprintf(esc, sizeof esc, "\\%c", c);
		if (dm_sink_write(s, esc, strlen(esc)) == -1)
			return -1;
		run = str + 1;
	}
	if (dm_sink_write(s, run, (size_t)(str - run)) == -1)
		return -1;
	return dm_sink_write(s, "\"", 1);
}
