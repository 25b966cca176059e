/* npy.c — NumPy .npy files: one array behind a Python dict literal header.
 *
 * Layout (numpy.lib.format, NEP 1): "\x93NUMPY", major, minor, the header
 * length (2 bytes little-endian in version 1.0, 4 bytes in 2.0 and 3.0),
 * the header "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"
 * padded with spaces and ending in '\n', then the raw data. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
    "npy.c assumes a little-endian host");

#define NPY_MAGIC       "\x93NUMPY"
#define NPY_MAGIC_LEN   6
#define NPY_ALIGN       64   /* numpy >= 1.14 starts the data at a multiple of 64 */
#define NPY_GROWTH      21   /* spare header room numpy leaves for the first dim */
#define NPY_SHOW        40   /* longest descr quoted back in an error */

/* The descr kinds and sizes this reader knows; everything else is refused. */
static const struct {
	char kind;
	size_t size;
	enum dm_dtype dtype;
} npy_types[] = {
	{'f', 8, DM_DTYPE_F64}, {'f', 4, DM_DTYPE_F32}, {'f', 2, DM_DTYPE_F16},
	{'i', 8, DM_DTYPE_I64}, {'i', 4, DM_DTYPE_I32}, {'i', 2, DM_DTYPE_I16},
	{'i', 1, DM_DTYPE_I8}, {'u', 1, DM_DTYPE_U8}, {'b', 1, DM_DTYPE_BOOL},
};

/* What the writer puts in 'descr' (BF16 has no npy spelling). */
static const char *const npy_descr[DM_DTYPE_COUNT] = {
	[DM_DTYPE_F64] = "<f8", [DM_DTYPE_F32] = "<f4", [DM_DTYPE_F16] = "<f2",
	[DM_DTYPE_I64] = "<i8", [DM_DTYPE_I32] = "<i4", [DM_DTYPE_I16] = "<i2",
	[DM_DTYPE_I8] = "|i1", [DM_DTYPE_U8] = "|u1", [DM_DTYPE_BOOL] = "|b1",
};

struct npy_header {
	enum dm_dtype dtype;
	int bigendian;
	int fortran;
	int ndim;
	int64_t shape[DM_MAX_DIMS];
};

/* A cursor over the header text. */
struct npy_lex {
	const char *p, *start, *end;
	int py2;                  /* versions 1.0 and 2.0: allow "3L" */
};

enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4 };

static int
lex_err(const struct npy_lex *lx, const char *what)
{
	return dm_seterr("bad npy header: %s at byte %zu", what,
	    (size_t)(lx->p - lx->start));
}

/* Python's whitespace inside brackets: blanks and line breaks. */
static void
lex_ws(struct npy_lex *lx)
{
	while (lx->p < lx->end && memchr(" \t\n\r\f\v", *lx->p, 6) != NULL)
		lx->p++;
}

static int
lex_peek(const struct npy_lex *lx)
{
	return lx->p < lx->end ? (unsigned char)*lx->p : -1;
}

static int
lex_char(struct npy_lex *lx, char c, const char *what)
{
	if (lex_peek(lx) != (unsigned char)c)
		return lex_err(lx, what);
	lx->p++;
	return 0;
}

/* A string literal in single or double quotes, printable ASCII only (no
 * escapes: nothing numpy writes needs them).  *s, *n: its contents. */
static int
lex_string(struct npy_lex *lx, const char **s, size_t *n)
{
	int q = lex_peek(lx);
	const char *p;

	if (q != '\'' && q != '"')
		return lex_err(lx, "expected a string");
	for (p = lx->p + 1; p < lx->end && *p != q; p++)
		if (*p == '\\' || (unsigned char)*p < 0x20 ||
		    (unsigned char)*p > 0x7e) {
			lx->p = p;
			return lex_err(lx, "unsupported character in string");
		}
	if (p == lx->end)
		return lex_err(lx, "unterminated string");
	*s = lx->p + 1;
	*n = (size_t)(p - *s);
	lx->p = p + 1;
	return 0;
}

static int
is_ident(int c)
{
	return c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z');
}

static int
lex_word(struct npy_lex *lx, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(lx->end - lx->p) < n || memcmp(lx->p, w, n) != 0)
		return 0;
	if (lx->p + n < lx->end && is_ident((unsigned char)lx->p[n]))
		return 0;
	lx->p += n;
	return 1;
}

/* "<f4", "|u1", ">i8", "=f2": byte order, kind, size. */
static int
descr_decode(const char *s, size_t n, struct npy_header *h)
{
	if (n == 3 && memchr("<>=|", s[0], 4) != NULL && s[2] >= '1' &&
	    s[2] <= '8') {
		for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
			if (npy_types[i].kind == s[1] &&
			    npy_types[i].size == (size_t)(s[2] - '0')) {
				h->dtype = npy_types[i].dtype;
				h->bigendian = s[0] == '>' && npy_types[i].size > 1;
				return 0;
			}
	}
	if (n > NPY_SHOW)
		return dm_seterr("unsupported npy dtype '%.*s...'", NPY_SHOW, s);
	return dm_seterr("unsupported npy dtype '%.*s'", (int)n, s);
}

static int
parse_descr(struct npy_lex *lx, struct npy_header *h)
{
	const char *s;
	size_t n;

	if (lex_peek(lx) == '[')
		return dm_seterr("unsupported npy dtype: structured (record) array");
	if (lex_string(lx, &s, &n) == -1)
		return -1;
	return descr_decode(s, n, h);
}

static int
parse_fortran(struct npy_lex *lx, struct npy_header *h)
{
	if (lex_word(lx, "True"))
		h->fortran = 1;
	else if (lex_word(lx, "False"))
		h->fortran = 0;
	else
		return lex_err(lx, "fortran_order must be True or False");
	return 0;
}

/* One dimension: a decimal integer literal (Python 3 rules for zeros). */
static int
parse_dim(struct npy_lex *lx, int64_t *out)
{
	int neg = 0, c;
	uint64_t v = 0;
	const char *digits;

	if (lex_peek(lx) == '-') {
		neg = 1;
		lx->p++;
		lex_ws(lx);
	}
	digits = lx->p;
	while ((c = lex_peek(lx)) >= '0' && c <= '9') {
		if (*digits == '0' && c != '0')
			return lex_err(lx, "leading zero in a dimension");
		if (v > (UINT64_C(1) << 63) / 10)
			return dm_seterr("npy dimension too large");
		v = v * 10 + (uint64_t)(c - '0');
		lx->p++;
	}
	if (lx->p == digits)
		return lex_err(lx, "expected a dimension");
	if (v > (uint64_t)INT64_MAX)
		return dm_seterr("npy dimension too large");
	if (lx->py2 && (lex_peek(lx) == 'L' || lex_peek(lx) == 'l'))
		lx->p++;
	if (is_ident(lex_peek(lx)))
		return lex_err(lx, "bad character in a dimension");
	if (neg && v != 0)
		return dm_seterr("npy shape has a negative dimension -%llu",
		    (unsigned long long)v);
	*out = (int64_t)v;
	return 0;
}

/* "()", "(5,)", "(3, 4)", "(3, 4,)": a tuple of integers.  "(5)" is the
 * integer 5 in Python, not a tuple, so numpy refuses it and so do we. */
static int
parse_shape(struct npy_lex *lx, struct npy_header *h)
{
	int64_t d = 0;

	if (lex_char(lx, '(', "shape must be a tuple '(...)'") == -1)
		return -1;
	h->ndim = 0;
	lex_ws(lx);
	if (lex_peek(lx) == ')') {
		lx->p++;
		return 0;
	}
	for (;;) {
		if (parse_dim(lx, &d) == -1)
			return -1;
		if (h->ndim == DM_MAX_DIMS)
			return dm_seterr("npy shape has more than %d dimensions",
			    DM_MAX_DIMS);
		h->shape[h->ndim++] = d;
		lex_ws(lx);
		if (lex_peek(lx) == ')') {
			if (h->ndim == 1)
				return lex_err(lx, "one-element shape needs a "
				    "trailing comma '(n,)'");
			lx->p++;
			return 0;
		}
		if (lex_char(lx, ',', "expected ',' or ')' in shape") == -1)
			return -1;
		lex_ws(lx);
		if (lex_peek(lx) == ')') {
			lx->p++;
			return 0;
		}
	}
}

static int
parse_entry(struct npy_lex *lx, struct npy_header *h, unsigned *seen)
{
	static const struct {
		const char *name;
		unsigned bit;
		int (*parse)(struct npy_lex *, struct npy_header *);
	} keys[] = {
		{"descr", KEY_DESCR, parse_descr},
		{"fortran_order", KEY_FORTRAN, parse_fortran},
		{"shape", KEY_SHAPE, parse_shape},
	};
	const char *s;
	size_t n, i;

	if (lex_string(lx, &s, &n) == -1)
		return -1;
	for (i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strlen(keys[i].name) == n && memcmp(keys[i].name, s, n) == 0)
			break;
	if (i == sizeof keys / sizeof keys[0])
		return dm_seterr("npy header has an unknown key '%.*s'",
		    n > NPY_SHOW ? NPY_SHOW : (int)n, s);
	if (*seen & keys[i].bit)
		return dm_seterr("npy header has key '%s' twice", keys[i].name);
	*seen |= keys[i].bit;
	lex_ws(lx);
	if (lex_char(lx, ':', "expected ':' after a key") == -1)
		return -1;
	lex_ws(lx);
	return keys[i].parse(lx, h);
}

/* The dict literal: exactly the keys descr, fortran_order and shape, in any
 * order, with an optional trailing comma. */
static int
parse_dict(const char *text, size_t len, int py2, struct npy_header *h)
{
	struct npy_lex lx = {text, text, text + len, py2};
	unsigned seen = 0;

	lex_ws(&lx);
	if (lex_char(&lx, '{', "expected '{'") == -1)
		return -1;
	lex_ws(&lx);
	while (lex_peek(&lx) != '}') {
		if (parse_entry(&lx, h, &seen) == -1)
			return -1;
		lex_ws(&lx);
		if (lex_peek(&lx) == '}')
			break;
		if (lex_char(&lx, ',', "expected ',' or '}'") == -1)
			return -1;
		lex_ws(&lx);
	}
	lx.p++;
	lex_ws(&lx);
	if (lx.p != lx.end)
		return lex_err(&lx, "text after the dict");
	if (!(seen & KEY_DESCR))
		return dm_seterr("npy header lacks the key 'descr'");
	if (!(seen & KEY_FORTRAN))
		return dm_seterr("npy header lacks the key 'fortran_order'");
	if (!(seen & KEY_SHAPE))
		return dm_seterr("npy header lacks the key 'shape'");
	return 0;
}

static void
byteswap(unsigned char *p, size_t numel, size_t esz)
{
	for (size_t i = 0; i < numel; i++, p += esz)
		for (size_t a = 0, b = esz - 1; a < b; a++, b--) {
			unsigned char c = p[a];
			p[a] = p[b];
			p[b] = c;
		}
}

/* Column-major src to row-major dst, same shape: walk src in order with an
 * odometer whose first index turns fastest, and keep dst's byte offset. */
static void
fortran_to_c(unsigned char *dst, const unsigned char *src, int ndim,
    const int64_t *shape, size_t numel, size_t esz)
{
	size_t stride[DM_MAX_DIMS], idx[DM_MAX_DIMS] = {0}, d = 0;
	int k;

	stride[ndim - 1] = esz;
	for (k = ndim - 2; k >= 0; k--)
		stride[k] = stride[k + 1] * (size_t)shape[k + 1];
	for (size_t j = 0; j < numel; j++, src += esz) {
		memcpy(dst + d, src, esz);
		for (k = 0; k < ndim; k++) {
			if (++idx[k] < (size_t)shape[k]) {
				d += stride[k];
				break;
			}
			idx[k] = 0;
			d -= ((size_t)shape[k] - 1) * stride[k];
		}
	}
}

static uint32_t
get_le(const unsigned char *p, int n)
{
	uint32_t v = 0;

	while (n-- > 0)
		v = v << 8 | p[n];
	return v;
}

int
dm_npy_parse(struct dm_file *f, unsigned char *buf, size_t len)
{
	struct npy_header h;
	struct dm_tensor *t;
	unsigned char *data;
	size_t pre, hlen, off, avail, numel, nbytes, esz;
	int major, minor, fortran, swap;

	memset(&h, 0, sizeof h);
	if (len < NPY_MAGIC_LEN || memcmp(buf, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
		return dm_seterr("not a npy file (bad magic)");
	if (len < NPY_MAGIC_LEN + 2)
		return dm_seterr("truncated npy file (%zu bytes)", len);
	major = buf[6];
	minor = buf[7];
	if ((major < 1 || major > 3) || minor != 0)
		return dm_seterr("unsupported npy version %d.%d (1.0, 2.0 or "
		    "3.0 are known)", major, minor);
	pre = major == 1 ? 10 : 12;
	if (len < pre)
		return dm_seterr("truncated npy file (%zu bytes)", len);
	hlen = get_le(buf + 8, major == 1 ? 2 : 4);
	if (hlen > len - pre)
		return dm_seterr("npy header length %zu goes beyond the end of "
		    "the file (%zu bytes)", hlen, len);
	if (hlen == 0 || buf[pre + hlen - 1] != '\n')
		return dm_seterr("bad npy header: it does not end with a newline");
	/* version 3.0 is utf-8, but every accepted header is ASCII anyway */
	if (parse_dict((const char *)buf + pre, hlen, major < 3, &h) == -1)
		return -1;
	if (dm_shape_numel(h.ndim, h.shape, h.dtype, &numel, &nbytes) == -1)
		return dm_errctx("npy shape: ");
	off = pre + hlen;
	avail = len - off;
	if (avail < nbytes)
		return dm_seterr("truncated: need %zu bytes of data, have %zu",
		    nbytes, avail);
	if (avail > nbytes)
		return dm_seterr("%zu bytes of trailing data after the npy array "
		    "(%zu bytes expected)", avail - nbytes, nbytes);

	data = buf + off;
	esz = dm_dtype_size(h.dtype);
	fortran = h.fortran && h.ndim > 1;
	swap = h.bigendian;
	if (!fortran && (uintptr_t)data % esz == 0) {
		/* zero copy: the tensor points into buf (writable, so
		 * big-endian data is swapped where it lies) */
		if (swap)
			byteswap(data, numel, esz);
		t = dm_tensor_view(h.dtype, h.ndim, h.shape, data);
		if (t == NULL)
			return -1;
	} else {
		if ((t = dm_tensor_new_dtype(h.dtype, h.ndim, h.shape)) == NULL)
			return -1;
		if (fortran)
			fortran_to_c(t->data, data, h.ndim, h.shape, numel, esz);
		else
			memcpy(t->data, data, nbytes);
		if (swap)
			byteswap(t->data, numel, esz);
	}
	if (dm_tensor_set_name(t, "x") == -1 || dm_file_add(f, t) == -1) {
		dm_tensor_free(t);
		return -1;
	}
	f->format = DM_FORMAT_NPY;
	return 0;
}

/* The shape as Python prints a tuple: "()", "(5,)", "(3, 4)". */
static size_t
shape_repr(char *s, size_t cap, const struct dm_tensor *t)
{
	size_t k = 0;

	k += (size_t)snprintf(s, cap, "(");
	for (int i = 0; i < t->ndim; i++)
		k += (size_t)snprintf(s + k, cap - k, "%s%lld", i ? ", " : "",
		    (long long)t->shape[i]);
	k += (size_t)snprintf(s + k, cap - k, t->ndim == 1 ? ",)" : ")");
	return k;
}

int
dm_npy_write(const struct dm_tensor *t, struct dm_sink *s)
{
	/* dict (< 64) + 8 dims of at most 21 chars + growth room + padding */
	char shape[DM_MAX_DIMS * 24 + 8], dict[512], first[24];
	unsigned char pre[12];
	size_t n, hlen, pad, npre;
	int major;

	if (t->dtype == DM_DTYPE_BF16)
		return dm_seterr("npy has no bfloat16; convert to F32 first");
	if ((unsigned)t->dtype >= DM_DTYPE_COUNT || npy_descr[t->dtype] == NULL)
		return dm_seterr("bad dtype");
	if (t->ndim < 0 || t->ndim > DM_MAX_DIMS)
		return dm_seterr("%d dimensions (at most %d)", t->ndim,
		    DM_MAX_DIMS);
	shape_repr(shape, sizeof shape, t);
	n = (size_t)snprintf(dict, sizeof dict,
	    "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
	    npy_descr[t->dtype], shape);
	/* numpy leaves room for the first dimension to grow to 21 digits */
	if (t->ndim > 0) {
		size_t d = (size_t)snprintf(first, sizeof first, "%lld",
		    (long long)t->shape[0]);
		for (; d < NPY_GROWTH; d++)
			dict[n++] = ' ';
	}
	/* pad with spaces (at least one) so that magic, version, length and
	 * header end on a multiple of NPY_ALIGN; version 2.0 only if needed */
	hlen = n + 1;
	major = 1;
	npre = 10;
	pad = NPY_ALIGN - (npre + hlen) % NPY_ALIGN;
	if (hlen + pad > 0xffff) {
		major = 2;
		npre = 12;
		pad = NPY_ALIGN - (npre + hlen) % NPY_ALIGN;
	}
	memcpy(pre, NPY_MAGIC, NPY_MAGIC_LEN);
	pre[6] = (unsigned char)major;
	pre[7] = 0;
	for (size_t i = 0; i < npre - 8; i++)
		pre[8 + i] = (unsigned char)((hlen + pad) >> (8 * i));
	if (dm_sink_write(s, pre, npre) == -1 || dm_sink_write(s, dict, n) == -1)
		return -1;
	memset(dict, ' ', pad);
	dict[pad] = '\n';
	if (dm_sink_write(s, dict, pad + 1) == -1)
		return -1;
	return dm_sink_write(s, t->data, t->nbytes);
}
