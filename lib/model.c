/* model.c — the model interface (dm_model.h): configs and their text,
 * parameter registration and PyTorch-default initialization, activation
 * arenas, dispatch to the networks (mlp.c, unet.c) and the exact gmm,
 * model files, and dm_model_denoise. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_cli.h"
#include "dm_model.h"
#include "dm_nn.h"
#include "dm_rng.h"
#include "model_impl.h"

static const char *arch_names[DM_ARCH_COUNT] = {"mlp", "unet", "gmm"};

const char *
dm_arch_name(enum dm_arch a)
{
	return (unsigned)a < DM_ARCH_COUNT ? arch_names[a] : "?";
}

int
dm_arch_parse(const char *name, enum dm_arch *out)
{
	for (int i = 0; i < DM_ARCH_COUNT; i++)
		if (strcmp(name, arch_names[i]) == 0) {
			*out = (enum dm_arch)i;
			return 0;
		}
	return dm_seterr("unknown architecture '%s' (mlp, unet, gmm)", name);
}

/* Configs */

void
dm_model_config_defaults(struct dm_model_config *c, enum dm_arch arch,
    int ndim, const int64_t *shape)
{
	memset(c, 0, sizeof *c);
	c->arch = arch;
	c->head = DM_HEAD_FIELD;
	c->pred = DM_PRED_EPS;
	snprintf(c->schedule, sizeof c->schedule, "linear");
	c->ndim = ndim < 0 ? 0 : ndim > 4 ? 4 : ndim;
	for (int i = 0; i < c->ndim; i++)
		c->shape[i] = shape[i];
	c->width = 256;
	c->depth = 3;
	c->temb = 64;
	c->ch = 32;
	c->nres = 1;
	c->attn = 1;
	c->heads = 4;
	c->groups = 8;
	c->sigma_data = 0.5;
	c->nlevels = 3;
	for (int i = 0; i < DM_UNET_MAX_LEVELS; i++)
		c->mult[i] = 1 << (i < 3 ? i : 2);
	if (arch == DM_ARCH_UNET) {
		c->temb = c->ch;
		/* fewer levels while the lowest resolution would be odd-sized
		 * on the way down or smaller than 4 */
		if (c->ndim == 3)
			while (c->nlevels > 1) {
				int64_t f = (int64_t)1 << (c->nlevels - 1);
				if (shape[1] % f == 0 && shape[2] % f == 0 &&
				    shape[1] / f >= 4 && shape[2] / f >= 4)
					break;
				c->nlevels--;
			}
	}
}

static int
parse_key(struct dm_model_config *c, const char *key, const char *val,
    int *mult_open)
{
	int v;

	*mult_open = 0;
	if (strcmp(key, "dropout") == 0) {
		double d;
		if (dm_parse_double(val, 0, 0.999, &d) == -1)
			return -1;
		c->dropout = (float)d;
		return 0;
	}
	if (strcmp(key, "head") == 0) {
		if (strcmp(val, "field") == 0)
			c->head = DM_HEAD_FIELD;
		else if (strcmp(val, "classifier") == 0)
			c->head = DM_HEAD_CLASSIFIER;
		else
			return dm_seterr("head '%s' is not field or classifier",
			    val);
		return 0;
	}
	if (strcmp(key, "sigma_data") == 0) {
		if (dm_parse_double(val, 1e-6, 1e6, &c->sigma_data) == -1)
			return -1;
		return 0;
	}
	if (strcmp(key, "mult") == 0) {
		if (dm_parse_int(val, 1, 64, &v) == -1)
			return -1;
		c->nlevels = 1;
		c->mult[0] = v;
		*mult_open = 1;
		return 0;
	}
	static const struct {
		const char *name;
		size_t off;
		int min, max;
	} keys[] = {
		{"width", offsetof(struct dm_model_config, width), 1, 65536},
		{"depth", offsetof(struct dm_model_config, depth), 0, 1000},
		{"temb", offsetof(struct dm_model_config, temb), 2, 65536},
		{"ch", offsetof(struct dm_model_config, ch), 1, 4096},
		{"nres", offsetof(struct dm_model_config, nres), 1, 100},
		{"attn", offsetof(struct dm_model_config, attn), 0, 1},
		{"heads", offsetof(struct dm_model_config, heads), 1, 1024},
		{"groups", offsetof(struct dm_model_config, groups), 1, 4096},
		{"cm", offsetof(struct dm_model_config, cm), 0, 1},
	};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		if (strcmp(key, keys[i].name) == 0) {
			if (dm_parse_int(val, keys[i].min, keys[i].max, &v) == -1)
				return -1;
			*(int *)((char *)c + keys[i].off) = v;
			return 0;
		}
	return dm_seterr("unknown model option '%s' (width, depth, temb, ch, "
	    "mult, nres, attn, heads, groups, dropout, head, cm, sigma_data)",
	    key);
}

int
dm_model_config_parse(struct dm_model_config *c, const char *text)
{
	char buf[1024], *p, *tok, *save = NULL;
	int mult_open = 0;

	if (strlen(text) >= sizeof buf)
		return dm_seterr("model options too long");
	memcpy(buf, text, strlen(text) + 1);
	for (p = buf; (tok = strtok_r(p, ",", &save)) != NULL; p = NULL) {
		char *eq = strchr(tok, '=');
		int v;
		if (eq == NULL) {
			/* "mult=1,2,4": the list goes on */
			if (!mult_open)
				return dm_seterr("model option '%s' has no "
				    "'=value'", tok);
			if (c->nlevels >= DM_UNET_MAX_LEVELS)
				return dm_seterr("mult: at most %d levels",
				    DM_UNET_MAX_LEVELS);
			if (dm_parse_int(tok, 1, 64, &v) == -1)
				return dm_errctx("mult: ");
			c->mult[c->nlevels++] = v;
			continue;
		}
		*eq = '\0';
		if (parse_key(c, tok, eq + 1, &mult_open) == -1)
			return dm_errctx("%s: ", tok);
	}
	return 0;
}

/* snprintf at buf + *k, advancing *k by the full length. */
static void
appendf(char *buf, size_t n, size_t *k, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(buf + (*k < n ? *k : n), *k < n ? n - *k : 0, fmt, ap);
	va_end(ap);
	*k += r > 0 ? (size_t)r : 0;
}

int
dm_model_config_format(const struct dm_model_config *c, char *buf, size_t n)
{
	size_t k = 0;

	if (n == 0)
		return dm_seterr("config text does not fit");
	buf[0] = '\0';
	switch (c->arch) {
	case DM_ARCH_MLP:
		appendf(buf, n, &k, "width=%d,depth=%d,temb=%d", c->width,
		    c->depth, c->temb);
		break;
	case DM_ARCH_UNET:
		appendf(buf, n, &k, "ch=%d,mult=", c->ch);
		for (int i = 0; i < c->nlevels && i < DM_UNET_MAX_LEVELS; i++)
			appendf(buf, n, &k, "%s%d", i ? "," : "", c->mult[i]);
		appendf(buf, n, &k, ",nres=%d,attn=%d,heads=%d,groups=%d,"
		    "temb=%d", c->nres, c->attn, c->heads, c->groups, c->temb);
		break;
	default:
		return 0;
	}
	appendf(buf, n, &k, ",dropout=%.9g,head=%s", (double)c->dropout,
	    c->head == DM_HEAD_CLASSIFIER ? "classifier" : "field");
	if (c->cm)
		appendf(buf, n, &k, ",cm=1,sigma_data=%.9g", c->sigma_data);
	if (k >= n)
		return dm_seterr("config text does not fit in %zu bytes", n);
	return 0;
}

/* Parameter registration */

size_t
dm_pbuild_add(struct dm_pbuild *pb, enum dm_init init, int64_t fan_in,
    int ndim, const int64_t *shape, const char *fmt, ...)
{
	struct dm_param *p;
	va_list ap;
	size_t numel, off = pb->total;

	if (pb->err)
		return 0;
	if (pb->n == pb->cap) {
		int cap = pb->cap ? 2 * pb->cap : 64;
		struct dm_param *np = dm_realloc(pb->param, cap * sizeof *np);
		if (np == NULL)
			goto fail;
		pb->param = np;
		enum dm_init *ni = dm_realloc(pb->init, cap * sizeof *ni);
		if (ni == NULL)
			goto fail;
		pb->init = ni;
		int64_t *nf = dm_realloc(pb->fan_in, cap * sizeof *nf);
		if (nf == NULL)
			goto fail;
		pb->fan_in = nf;
		pb->cap = cap;
	}
	if (dm_shape_numel(ndim, shape, DM_DTYPE_F32, &numel, NULL) == -1 ||
	    dm_add_size(pb->total, numel, &pb->total) == -1)
		goto fail;
	/* keep the flat array addressable with int-sized BLAS strides */
	if (pb->total > ((size_t)1 << 31)) {
		dm_seterr("model too large (over 2^31 parameters)");
		goto fail;
	}
	p = &pb->param[pb->n];
	memset(p, 0, sizeof *p);
	va_start(ap, fmt);
	vsnprintf(p->name, sizeof p->name, fmt, ap);
	va_end(ap);
	p->ndim = ndim;
	for (int i = 0; i < ndim; i++)
		p->shape[i] = shape[i];
	p->offset = off;
	p->numel = numel;
	pb->init[pb->n] = init;
	pb->fan_in[pb->n] = fan_in;
	pb->n++;
	return off;
fail:
	pb->err = 1;
	return 0;
}

void
dm_pbuild_linear(struct dm_pbuild *pb, size_t *w, size_t *b, int din,
    int dout, int zero, const char *name)
{
	int64_t sw[2] = {dout, din}, sb[1] = {dout};
	enum dm_init init = zero ? DM_INIT_ZERO : DM_INIT_FAN;

	*w = dm_pbuild_add(pb, init, din, 2, sw, "%s.weight", name);
	*b = dm_pbuild_add(pb, init, din, 1, sb, "%s.bias", name);
}

void
dm_pbuild_conv(struct dm_pbuild *pb, size_t *w, size_t *b, int cin, int cout,
    int k, int zero, const char *name)
{
	int64_t sw[4] = {cout, cin, k, k}, sb[1] = {cout};
	enum dm_init init = zero ? DM_INIT_ZERO : DM_INIT_FAN;

	*w = dm_pbuild_add(pb, init, (int64_t)cin * k * k, 4, sw, "%s.weight",
	    name);
	*b = dm_pbuild_add(pb, init, (int64_t)cin * k * k, 1, sb, "%s.bias",
	    name);
}

void
dm_pbuild_norm(struct dm_pbuild *pb, size_t *w, size_t *b, int C,
    const char *name)
{
	int64_t s[1] = {C};

	*w = dm_pbuild_add(pb, DM_INIT_ONE, 0, 1, s, "%s.weight", name);
	*b = dm_pbuild_add(pb, DM_INIT_ZERO, 0, 1, s, "%s.bias", name);
}

/* Tensor i draws from (seed, dm_noise_stream(DM_NOISE_INIT, i)), index 0. */
static void
init_params(struct dm_model *m, const struct dm_pbuild *pb, uint64_t seed)
{
	for (int i = 0; i < pb->n; i++) {
		const struct dm_param *p = &pb->param[i];
		float *w = m->params + p->offset;
		uint64_t stream = dm_noise_stream(DM_NOISE_INIT, (uint64_t)i);
		switch (pb->init[i]) {
		case DM_INIT_FAN: {
			float bound = pb->fan_in[i] > 0 ?
			    (float)(1 / sqrt((double)pb->fan_in[i])) : 0;
			dm_rng_uniform(w, p->numel, seed, stream, 0);
			for (size_t k = 0; k < p->numel; k++)
				w[k] = (2 * w[k] - 1) * bound;
			break;
		}
		case DM_INIT_NORMAL:
			dm_rng_normal(w, p->numel, seed, stream, 0);
			break;
		case DM_INIT_ONE:
			for (size_t k = 0; k < p->numel; k++)
				w[k] = 1;
			break;
		default:
			memset(w, 0, p->numel * sizeof *w);
			break;
		}
	}
}

/* Activations */

float *
dm_acts_take(struct dm_acts *a, size_t n)
{
	float *p = a->act != NULL ? a->act + a->used * (size_t)a->cap +
	    (size_t)a->view_row * n : NULL;

	a->used += n;
	return p;
}

static void
acts_layout(struct dm_model *m)
{
	struct dm_acts *a = m->impl;

	a->used = 0;
	if (m->cfg.arch == DM_ARCH_MLP)
		dm_mlp_layout(m);
	else if (m->cfg.arch == DM_ARCH_UNET)
		dm_unet_layout(m);
	a->per_sample = a->used;
}

static size_t
acts_work(const struct dm_model *m, int B)
{
	if (m->cfg.arch == DM_ARCH_MLP)
		return dm_mlp_work(m, B);
	if (m->cfg.arch == DM_ARCH_UNET)
		return dm_unet_work(m, B);
	return 0;
}

/* Make room for batches of B: every buffer allocated once, grown only. */
static int
acts_reserve(struct dm_model *m, int B)
{
	struct dm_acts *a = m->impl;
	size_t n, nout, nwork, bytes;
	float *act = NULL, *work = NULL, *tbuf = NULL, *obuf = NULL;
	int64_t *y = NULL;

	if (B <= a->cap)
		return 0;
	if (a->per_sample == 0) {
		float *keep = a->act;
		a->act = NULL;
		acts_layout(m);
		a->act = keep;
	}
	nwork = acts_work(m, B);
	nout = dm_model_out_size(m);
	if (dm_mul_size(a->per_sample, (size_t)B, &n) == -1 ||
	    dm_mul_size(n, sizeof(float), &bytes) == -1 ||
	    dm_mul_size(nout, (size_t)B, &nout) == -1 ||
	    dm_mul_size(nout, sizeof(float), &nout) == -1 ||
	    dm_mul_size(nwork, sizeof(float), &nwork) == -1)
		return dm_errctx("model: batch of %d: ", B);
	if ((act = dm_malloc(bytes)) == NULL ||
	    (work = dm_malloc(nwork)) == NULL ||
	    (tbuf = dm_malloc((size_t)B * sizeof *tbuf)) == NULL ||
	    (obuf = dm_malloc(nout)) == NULL ||
	    (y = dm_malloc((size_t)B * sizeof *y)) == NULL) {
		free(act);
		free(work);
		free(tbuf);
		free(obuf);
		return -1;
	}
	free(a->act);
	free(a->grad);
	free(a->work);
	free(a->tbuf);
	free(a->obuf);
	free(a->y);
	a->act = act;
	a->grad = NULL;
	a->work = work;
	a->work_n = nwork / sizeof(float);
	a->tbuf = tbuf;
	a->obuf = obuf;
	a->y = y;
	a->cap = B;
	a->trained = 0;
	acts_layout(m);
	m->batch_cap = B;
	return 0;
}

static void
acts_free(struct dm_acts *a)
{
	if (a == NULL)
		return;
	free(a->act);
	free(a->grad);
	free(a->work);
	free(a->tbuf);
	free(a->obuf);
	free(a->y);
}

/* Shared pieces */

void
dm_bias_add_forward(float *out, const float *e, int B, int C, int HW)
{
	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++) {
			float v = e[(size_t)b * C + c];
			float *o = out + ((size_t)b * C + c) * HW;
			for (int i = 0; i < HW; i++)
				o[i] += v;
		}
}

void
dm_bias_add_backward(float *de, const float *dout, int B, int C, int HW)
{
	for (int b = 0; b < B; b++)
		for (int c = 0; c < C; c++) {
			const float *d = dout + ((size_t)b * C + c) * HW;
			float s = 0;
			for (int i = 0; i < HW; i++)
				s += d[i];
			de[(size_t)b * C + c] += s;
		}
}

int
dm_model_labels(struct dm_model *m, const int64_t *y, int B)
{
	struct dm_acts *a = m->impl;
	int K = m->cfg.classes;

	for (int i = 0; i < B; i++) {
		int64_t v = y != NULL ? y[i] : K;
		if (v < 0 || v > K)
			return dm_seterr("model: label %lld of row %d is out "
			    "of range (0 to %d, %d = no class)",
			    (long long)v, i, K, K);
		a->y[i] = v;
	}
	return 0;
}

void
dm_model_dropout(struct dm_model *m, float *out, uint8_t *mask,
    const float *in, size_t n, int layer)
{
	/* a sample index past every data set's: no stream shared with the
	 * training loop's own draws */
	uint64_t s = (UINT64_C(1) << 47) | (m->dropout_step << 12) |
	    (uint64_t)(layer & 0xfff);

	dm_dropout_forward(out, mask, in, n, m->cfg.dropout, m->dropout_seed,
	    dm_noise_stream(DM_NOISE_TRAIN, s));
}

/* Models */

static int
check_common(const struct dm_model_config *c)
{
	if ((unsigned)c->arch >= DM_ARCH_COUNT)
		return dm_seterr("model: bad architecture");
	if ((unsigned)c->pred >= DM_PRED_COUNT)
		return dm_seterr("model: bad prediction kind");
	if (c->ndim < 1 || c->ndim > 4)
		return dm_seterr("model: data shape has %d dimensions",
		    c->ndim);
	for (int i = 0; i < c->ndim; i++)
		if (c->shape[i] < 1 || c->shape[i] > (1 << 24))
			return dm_seterr("model: data shape dimension %lld "
			    "out of range", (long long)c->shape[i]);
	if (c->classes < 0 || c->classes > 1000000)
		return dm_seterr("model: %d classes (0 to 1000000)", c->classes);
	if (c->head == DM_HEAD_CLASSIFIER && c->classes < 2)
		return dm_seterr("model: a classifier needs 2 classes or more");
	if (c->head != DM_HEAD_FIELD && c->head != DM_HEAD_CLASSIFIER)
		return dm_seterr("model: bad head");
	if (!(c->dropout >= 0 && c->dropout < 1))
		return dm_seterr("model: dropout %g is not in [0, 1)",
		    (double)c->dropout);
	return 0;
}

static struct dm_model *
model_create(const struct dm_model_config *cfg, int init, uint64_t seed)
{
	struct dm_model *m;
	struct dm_pbuild pb;
	int r;

	if (cfg->arch == DM_ARCH_GMM) {
		dm_seterr("model: a gmm is made from a file (dm_model_from_file)");
		return NULL;
	}
	if (check_common(cfg) == -1)
		return NULL;
	if ((m = dm_calloc(1, sizeof *m)) == NULL)
		return NULL;
	m->cfg = *cfg;
	m->cfg.schedule[sizeof m->cfg.schedule - 1] = '\0';
	if (dm_schedule_from_string(&m->sched, m->cfg.schedule) == -1) {
		dm_errctx("model: schedule: ");
		free(m);
		return NULL;
	}
	memset(&pb, 0, sizeof pb);
	r = cfg->arch == DM_ARCH_MLP ? dm_mlp_build(m, &pb) :
	    dm_unet_build(m, &pb);
	if (r == -1 || pb.err)
		goto fail;
	m->nparam = pb.n;
	m->param = pb.param;
	pb.param = NULL;
	m->nparams = pb.total;
	if ((m->params = dm_malloc(m->nparams * sizeof(float))) == NULL)
		goto fail;
	if (init) {
		pb.param = m->param;
		init_params(m, &pb, seed);
		pb.param = NULL;
	}
	free(pb.init);
	free(pb.fan_in);
	return m;
fail:
	free(pb.param);
	free(pb.init);
	free(pb.fan_in);
	dm_model_free(m);
	return NULL;
}

struct dm_model *
dm_model_new(const struct dm_model_config *cfg, uint64_t seed)
{
	return model_create(cfg, 1, seed);
}

void
dm_model_free(struct dm_model *m)
{
	if (m == NULL)
		return;
	/* every state starts with its struct dm_acts */
	acts_free(m->impl);
	if (m->cfg.arch == DM_ARCH_MLP)
		dm_mlp_free(m);
	else if (m->cfg.arch == DM_ARCH_UNET)
		dm_unet_free(m);
	else
		free(m->impl);
	dm_gmm_free(&m->gmm);
	dm_schedule_free(&m->sched);
	free(m->cm_buf);
	free(m->param);
	free(m->params);
	free(m->grads);
	free(m);
}

size_t
dm_model_in_size(const struct dm_model *m)
{
	size_t n = 1;

	for (int i = 0; i < m->cfg.ndim; i++)
		n *= (size_t)m->cfg.shape[i];
	return n;
}

size_t
dm_model_out_size(const struct dm_model *m)
{
	if (m->cfg.head == DM_HEAD_CLASSIFIER)
		return (size_t)m->cfg.classes;
	return dm_model_in_size(m);
}

/* Consistency parameterisation */

void
dm_cm_coeffs(double sigma, double sigma_min, double sigma_d, double *c_skip,
    double *c_out, double *c_in)
{
	double ds = sigma - sigma_min, d2 = sigma_d * sigma_d;

	*c_skip = d2 / (ds * ds + d2);
	*c_out = sigma_d * ds / sqrt(d2 + sigma * sigma);
	*c_in = 1 / sqrt(sigma * sigma + d2);
}

double
dm_cm_sigma_min(const struct dm_schedule *s)
{
	struct dm_sched_point p;

	dm_schedule_at(s, s->t_min, &p);
	return p.sigma / p.alpha;
}

/* cm_buf: [cap d] network input, [cap d] network output gradient, then
 * per row c_skip / alpha, c_out, c_in / alpha. */
static int
cm_reserve(struct dm_model *m, int B)
{
	size_t d = dm_model_in_size(m), n;

	if (B <= m->cm_cap)
		return 0;
	if (dm_mul_size(d, 2, &n) == -1 || dm_add_size(n, 3, &n) == -1 ||
	    dm_mul_size(n, (size_t)B, &n) == -1 ||
	    dm_mul_size(n, sizeof(float), &n) == -1)
		return -1;
	free(m->cm_buf);
	m->cm_cap = 0;
	if ((m->cm_buf = dm_malloc(n)) == NULL)
		return -1;
	m->cm_cap = B;
	return 0;
}

static float *
cm_coef(const struct dm_model *m)
{
	return m->cm_buf + 2 * (size_t)m->cm_cap * dm_model_in_size(m);
}

/* The network's input c_in x / alpha for rows x at times t. */
static const float *
cm_input(struct dm_model *m, const float *x, const float *t, int B)
{
	size_t d = dm_model_in_size(m);
	double smin = dm_cm_sigma_min(&m->sched);
	float *xin = m->cm_buf, *c = cm_coef(m);

	for (int b = 0; b < B; b++) {
		struct dm_sched_point p;
		double cs, co, ci;
		dm_schedule_at(&m->sched, t[b], &p);
		dm_cm_coeffs(p.sigma / p.alpha, smin, m->cfg.sigma_data, &cs,
		    &co, &ci);
		c[3 * b] = (float)(cs / p.alpha);
		c[3 * b + 1] = (float)co;
		c[3 * b + 2] = (float)(ci / p.alpha);
		for (size_t k = 0; k < d; k++)
			xin[(size_t)b * d + k] = c[3 * b + 2] *
			    x[(size_t)b * d + k];
	}
	return xin;
}

/* out = c_skip x / alpha + c_out F. */
static void
cm_output(const struct dm_model *m, float *out, const float *x, int B)
{
	size_t d = dm_model_in_size(m);
	const float *c = cm_coef(m);

	for (int b = 0; b < B; b++)
		for (size_t k = 0; k < d; k++) {
			size_t i = (size_t)b * d + k;
			out[i] = c[3 * b] * x[i] + c[3 * b + 1] * out[i];
		}
}

static int net_forward(struct dm_model *m, float *out, const float *x,
    const float *t, const int64_t *y, int B, int train);
static int net_backward(struct dm_model *m, float *dx, const float *dout);

int
dm_model_forward(struct dm_model *m, float *out, const float *x,
    const float *t, const int64_t *y, int B, int train)
{
	if (!m->cfg.cm || m->cfg.arch == DM_ARCH_GMM ||
	    m->cfg.head != DM_HEAD_FIELD)
		return net_forward(m, out, x, t, y, B, train);
	if (B < 1)
		return dm_seterr("model: batch of %d", B);
	if (cm_reserve(m, B) == -1)
		return -1;
	if (net_forward(m, out, cm_input(m, x, t, B), t, y, B, train) == -1)
		return -1;
	cm_output(m, out, x, B);
	return 0;
}

int
dm_model_backward(struct dm_model *m, float *dx, const float *dout)
{
	struct dm_acts *a = m->impl;
	size_t d = dm_model_in_size(m);
	float *dnet;
	const float *c;

	if (!m->cfg.cm || m->cfg.arch == DM_ARCH_GMM ||
	    m->cfg.head != DM_HEAD_FIELD)
		return net_backward(m, dx, dout);
	if (a == NULL || !a->trained || m->cm_cap < a->B)
		return dm_seterr("model: backward needs a forward with train = 1");
	dnet = m->cm_buf + (size_t)m->cm_cap * d;
	c = cm_coef(m);
	for (int b = 0; b < a->B; b++)
		for (size_t k = 0; k < d; k++)
			dnet[(size_t)b * d + k] = c[3 * b + 1] *
			    dout[(size_t)b * d + k];
	if (net_backward(m, dx, dnet) == -1)
		return -1;
	if (dx != NULL)
		for (int b = 0; b < a->B; b++)
			for (size_t k = 0; k < d; k++) {
				size_t i = (size_t)b * d + k;
				dx[i] = c[3 * b + 2] * dx[i] + c[3 * b] * dout[i];
			}
	return 0;
}

static int
net_forward(struct dm_model *m, float *out, const float *x,
    const float *t, const int64_t *y, int B, int train)
{
	struct dm_acts *a;
	int r;

	if (m->cfg.arch == DM_ARCH_GMM)
		return dm_seterr("model: the gmm has no network forward "
		    "(use dm_model_denoise)");
	if (B < 1)
		return dm_seterr("model: batch of %d", B);
	if (acts_reserve(m, B) == -1)
		return -1;
	a = m->impl;
	if (dm_model_labels(m, y, B) == -1)
		return -1;
	a->B = B;
	a->trained = 0;
	a->dropping = train && m->cfg.dropout > 0;
	r = m->cfg.arch == DM_ARCH_MLP ?
	    dm_mlp_forward(m, out, x, t, a->y, B, train) :
	    dm_unet_forward(m, out, x, t, a->y, B, train);
	if (r == -1)
		return -1;
	a->trained = train != 0;
	if (a->dropping)
		m->dropout_step++;
	return 0;
}

size_t
dm_model_feature_size(const struct dm_model *m)
{
	const struct dm_model_config *c = &m->cfg;

	if (c->arch == DM_ARCH_MLP)
		return (size_t)c->width;
	if (c->arch == DM_ARCH_UNET && c->head == DM_HEAD_CLASSIFIER)
		return (size_t)c->ch * (size_t)c->mult[c->nlevels - 1];
	return 0;
}

int
dm_model_features(struct dm_model *m, float *feat, float *out,
    const float *x, const float *t, const int64_t *y, int B)
{
	const float *f;
	size_t dim = 0;

	if (dm_model_feature_size(m) == 0)
		return dm_seterr("model: only classifiers and mlps have "
		    "penultimate features");
	if (dm_model_forward(m, out, x, t, y, B, 0) == -1)
		return -1;
	f = m->cfg.arch == DM_ARCH_MLP ? dm_mlp_features(m, &dim) :
	    dm_unet_features(m, &dim);
	if (f == NULL || dim != dm_model_feature_size(m))
		return dm_seterr("model: no features");
	memcpy(feat, f, (size_t)B * dim * sizeof(float));
	return 0;
}

static int
net_backward(struct dm_model *m, float *dx, const float *dout)
{
	struct dm_acts *a = m->impl;
	size_t n;

	if (m->cfg.arch == DM_ARCH_GMM)
		return dm_seterr("model: the gmm has no gradients");
	if (a == NULL || !a->trained)
		return dm_seterr("model: backward needs a forward with train = 1");
	if (m->grads == NULL) {
		if ((m->grads = dm_calloc(m->nparams, sizeof(float))) == NULL)
			return -1;
	}
	n = a->per_sample * (size_t)a->cap;
	if (a->grad == NULL &&
	    (a->grad = dm_malloc(n * sizeof(float))) == NULL)
		return -1;
	/* the mlp sets each gradient before it adds to it (mlp.c) */
	if (m->cfg.arch != DM_ARCH_MLP)
		memset(a->grad, 0, n * sizeof(float));
	if (m->cfg.arch == DM_ARCH_MLP)
		dm_mlp_backward(m, dx, dout);
	else
		dm_unet_backward(m, dx, dout);
	return 0;
}

void
dm_model_zero_grad(struct dm_model *m)
{
	if (m->grads == NULL && m->nparams > 0)
		m->grads = dm_calloc(m->nparams, sizeof(float));
	else if (m->grads != NULL)
		memset(m->grads, 0, m->nparams * sizeof(float));
}

/* Files */

int
dm_model_to_file(const struct dm_model *m, const float *weights,
    struct dm_file *f)
{
	char buf[512];

	if (m->cfg.arch == DM_ARCH_GMM) {
		if (dm_schedule_to_string(&m->sched, buf, sizeof buf) == -1)
			return -1;
		return dm_gmm_to_file(&m->gmm, f, buf);
	}
	if (weights == NULL)
		weights = m->params;
	for (int i = 0; i < m->nparam; i++) {
		const struct dm_param *p = &m->param[i];
		struct dm_tensor *t = dm_tensor_new(p->ndim, p->shape);
		if (t == NULL)
			return -1;
		memcpy(t->data, weights + p->offset, p->numel * sizeof(float));
		if (dm_tensor_set_name(t, p->name) == -1 ||
		    dm_file_add(f, t) == -1) {
			dm_tensor_free(t);
			return -1;
		}
	}
	if (dm_file_meta_set(f, "dm.kind", "model") == -1 ||
	    dm_file_meta_set(f, "dm.arch", dm_arch_name(m->cfg.arch)) == -1)
		return -1;
	if (dm_model_config_format(&m->cfg, buf, sizeof buf) == -1 ||
	    dm_file_meta_set(f, "dm.config", buf) == -1)
		return -1;
	if (dm_file_meta_set(f, "dm.prediction", dm_pred_name(m->cfg.pred)) == -1)
		return -1;
	if (dm_schedule_to_string(&m->sched, buf, sizeof buf) == -1 ||
	    dm_file_meta_set(f, "dm.schedule", buf) == -1)
		return -1;
	dm_shape_format(buf, sizeof buf, m->cfg.ndim, m->cfg.shape);
	if (dm_file_meta_set(f, "dm.shape", buf) == -1)
		return -1;
	snprintf(buf, sizeof buf, "%d", m->cfg.classes);
	if (dm_file_meta_set(f, "dm.classes", buf) == -1 ||
	    dm_file_meta_set(f, "dm.version", DM_VERSION) == -1)
		return -1;
	return 0;
}

/* "[1, 28, 28]" -> ndim, shape. */
static int
parse_shape(const char *s, int *ndim, int64_t *shape)
{
	char buf[128], *p, *tok, *save = NULL;
	size_t n = strlen(s);
	int k = 0;

	if (n < 2 || n >= sizeof buf || s[0] != '[' || s[n - 1] != ']')
		return dm_seterr("dm.shape '%s' is not like [2] or [1, 28, 28]",
		    s);
	memcpy(buf, s + 1, n - 2);
	buf[n - 2] = '\0';
	for (p = buf; (tok = strtok_r(p, ",", &save)) != NULL; p = NULL) {
		while (*tok == ' ')
			tok++;
		if (k == 4)
			return dm_seterr("dm.shape '%s': more than 4 "
			    "dimensions", s);
		if (dm_parse_int64(tok, 1, 1 << 24, &shape[k]) == -1)
			return dm_errctx("dm.shape '%s': ", s);
		k++;
	}
	if (k == 0)
		return dm_seterr("dm.shape '%s' is empty", s);
	*ndim = k;
	return 0;
}

static const char *
need_meta(const struct dm_file *f, const char *key)
{
	const char *v = dm_file_meta(f, key);

	if (v == NULL)
		dm_seterr("model: metadata %s is missing", key);
	return v;
}

static int
load_gmm(struct dm_model **out, const struct dm_file *f)
{
	struct dm_model *m;
	const char *sched;

	if ((sched = need_meta(f, "dm.schedule")) == NULL)
		return -1;
	if ((m = dm_calloc(1, sizeof *m)) == NULL)
		return -1;
	if ((m->impl = dm_calloc(1, sizeof(struct dm_acts))) == NULL) {
		free(m);
		return -1;
	}
	m->cfg.arch = DM_ARCH_GMM;
	m->cfg.pred = DM_PRED_X0;
	snprintf(m->cfg.schedule, sizeof m->cfg.schedule, "%s", sched);
	if (dm_schedule_from_string(&m->sched, m->cfg.schedule) == -1) {
		dm_errctx("model: schedule: ");
		dm_model_free(m);
		return -1;
	}
	if (dm_gmm_from_file(&m->gmm, f) == -1) {
		dm_model_free(m);
		return -1;
	}
	m->cfg.ndim = 1;
	m->cfg.shape[0] = m->gmm.d;
	m->cfg.classes = m->gmm.classes;
	*out = m;
	return 0;
}

static int
load_weights(struct dm_model *m, const struct dm_file *f)
{
	char have[128], need[128];

	for (int i = 0; i < m->nparam; i++) {
		const struct dm_param *p = &m->param[i];
		const struct dm_tensor *t = dm_file_get(f, p->name);
		float *w = m->params + p->offset;
		int same = t != NULL && t->ndim == p->ndim;
		if (t == NULL)
			return dm_seterr("model: tensor '%s' is missing",
			    p->name);
		for (int k = 0; same && k < p->ndim; k++)
			same = t->shape[k] == p->shape[k];
		if (!same) {
			dm_shape_format(have, sizeof have, t->ndim, t->shape);
			dm_shape_format(need, sizeof need, p->ndim, p->shape);
			return dm_seterr("model: tensor '%s' has shape %s but "
			    "the %s config needs %s", p->name, have,
			    dm_arch_name(m->cfg.arch), need);
		}
		if (!dm_dtype_is_float(t->dtype))
			return dm_seterr("model: tensor '%s' has dtype %s, not "
			    "a float type", p->name, dm_dtype_name(t->dtype));
		if (t->dtype == DM_DTYPE_F32)
			memcpy(w, t->data, p->numel * sizeof(float));
		else
			for (size_t k = 0; k < p->numel; k++)
				w[k] = (float)dm_tensor_get(t, k);
		for (size_t k = 0; k < p->numel; k++)
			if (!isfinite(w[k]))
				return dm_seterr("model: tensor '%s' holds NaN "
				    "or Inf", p->name);
	}
	return 0;
}

int
dm_model_from_file(struct dm_model **out, const struct dm_file *f)
{
	struct dm_model_config c;
	struct dm_model *m;
	const char *kind, *arch, *v;
	enum dm_arch a;
	int ndim = 0;
	int64_t shape[4];

	*out = NULL;
	kind = dm_file_meta(f, "dm.kind");
	if (kind != NULL && strcmp(kind, "model") != 0 &&
	    strcmp(kind, "checkpoint") != 0)
		return dm_seterr("model: the file holds %s, not a model", kind);
	if ((arch = need_meta(f, "dm.arch")) == NULL)
		return -1;
	if (dm_arch_parse(arch, &a) == -1)
		return dm_errctx("model: ");
	if (a == DM_ARCH_GMM)
		return load_gmm(out, f);
	if ((v = need_meta(f, "dm.shape")) == NULL ||
	    parse_shape(v, &ndim, shape) == -1)
		return -1;
	dm_model_config_defaults(&c, a, ndim, shape);
	if ((v = need_meta(f, "dm.config")) == NULL)
		return -1;
	if (dm_model_config_parse(&c, v) == -1)
		return dm_errctx("model: dm.config: ");
	if ((v = need_meta(f, "dm.prediction")) == NULL)
		return -1;
	if (dm_pred_parse(v, &c.pred) == -1)
		return dm_errctx("model: ");
	if ((v = need_meta(f, "dm.schedule")) == NULL)
		return -1;
	if (strlen(v) >= sizeof c.schedule)
		return dm_seterr("model: dm.schedule is too long");
	snprintf(c.schedule, sizeof c.schedule, "%s", v);
	if ((v = dm_file_meta(f, "dm.classes")) != NULL &&
	    dm_parse_int(v, 0, 1000000, &c.classes) == -1)
		return dm_errctx("model: dm.classes: ");
	if ((m = model_create(&c, 0, 0)) == NULL)
		return -1;
	if (load_weights(m, f) == -1) {
		dm_model_free(m);
		return -1;
	}
	*out = m;
	return 0;
}

int
dm_model_load(struct dm_model **out, const char *path)
{
	struct dm_file *f;
	int r;

	*out = NULL;
	if (dm_file_read(&f, path) == -1)
		return -1;
	r = dm_model_from_file(out, f);
	dm_file_free(f);
	return r;
}

int
dm_model_save(const struct dm_model *m, const float *weights,
    const char *path)
{
	struct dm_file *f = dm_file_new();
	int r;

	if (f == NULL)
		return -1;
	r = dm_model_to_file(m, weights, f);
	if (r == 0)
		r = dm_file_write(f, path, 0);
	dm_file_free(f);
	return r;
}

/* Sampling */

static int
gmm_denoise(struct dm_model *m, float *x0, float *eps, const float *x,
    const struct dm_sched_point *p, const int64_t *y, int B)
{
	struct dm_acts *a = m->impl;
	size_t n = (size_t)B * (size_t)m->gmm.d;
	float *xh = x0;

	if (xh == NULL) {
		if (B > a->cap) {
			float *o = dm_realloc(a->obuf, n * sizeof(float));
			if (o == NULL)
				return -1;
			a->obuf = o;
			a->cap = B;
		}
		xh = a->obuf;
	}
	if (dm_gmm_denoise_class(&m->gmm, p->alpha, p->sigma, x, y, xh, NULL,
	    B) == -1)
		return -1;
	if (eps != NULL)
		for (size_t i = 0; i < n; i++)
			eps[i] = (float)((x[i] - p->alpha * xh[i]) / p->sigma);
	return 0;
}

int
dm_model_prepare(struct dm_model *m, const double *t, int n)
{
	float tf[DM_MLP_PREPARE_MAX];
	struct dm_sched_point p;

	if (m->cfg.arch != DM_ARCH_MLP)
		return 0;
	if (n < 1)
		return dm_mlp_prepare(m, NULL, 0);
	if (n > DM_MLP_PREPARE_MAX)
		n = DM_MLP_PREPARE_MAX;
	for (int i = 0; i < n; i++) {	/* the times dm_model_denoise uses */
		dm_schedule_at(&m->sched, dm_schedule_clamp(&m->sched, t[i]), &p);
		tf[i] = (float)p.t;
	}
	return dm_mlp_prepare(m, tf, n);
}

int
dm_model_denoise(struct dm_model *m, float *x0, float *eps, const float *x,
    double t, const int64_t *y, int B)
{
	struct dm_sched_point p;
	struct dm_acts *a;

	if (B < 1)
		return dm_seterr("model: batch of %d", B);
	if (m->cfg.head == DM_HEAD_CLASSIFIER)
		return dm_seterr("model: a classifier does not denoise");
	dm_schedule_at(&m->sched, dm_schedule_clamp(&m->sched, t), &p);
	if (m->cfg.arch == DM_ARCH_GMM)
		return gmm_denoise(m, x0, eps, x, &p, y, B);
	if (acts_reserve(m, B) == -1)
		return -1;
	a = m->impl;
	for (int i = 0; i < B; i++)
		a->tbuf[i] = (float)p.t;
	if (dm_model_forward(m, a->obuf, x, a->tbuf, y, B, 0) == -1)
		return -1;
	dm_pred_to_x0_eps(m->cfg.pred, &p, x, a->obuf, x0, eps,
	    (size_t)B * dm_model_in_size(m));
	return 0;
}
