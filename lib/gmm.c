/* gmm.c — Gaussian mixtures: validation, Cholesky factors, sampling, the
 * exact denoiser E[x0 | x_t] and log p_t under x_t = alpha x0 + sigma eps
 * (DESIGN.md "Models"), model files and the text spec of dm-data gmm. */
#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm_base.h"
#include "dm_cli.h"
#include "dm_gmm.h"
#include "dm_rng.h"

/* Threads only pay off above some work (points x K x d^2 flops): a
 * parallel region costs microseconds, a sampler's small batches less. */
#define PARALLEL(n, g) ((double)(n) * (g)->K * ((g)->d * (g)->d + 8) > 2e5)

#define LOG_2PI 1.8378770664093454835606594728112

/* Lower Cholesky factor L (L L^T = A) of a symmetric d x d matrix, reading
 * only its lower triangle; -1 (no reason set) if A is not positive
 * definite.  L's upper triangle is zeroed. */
static int
cholesky(double *L, const double *A, int d)
{
	for (int i = 0; i < d; i++) {
		for (int j = 0; j <= i; j++) {
			double s = A[(size_t)i * d + j];
			for (int k = 0; k < j; k++)
				s -= L[(size_t)i * d + k] * L[(size_t)j * d + k];
			if (i == j) {
				if (!(s > 0) || !isfinite(s))
					return -1;
				L[(size_t)i * d + i] = sqrt(s);
			} else
				L[(size_t)i * d + j] = s / L[(size_t)j * d + j];
		}
		for (int j = i + 1; j < d; j++)
			L[(size_t)i * d + j] = 0;
	}
	return 0;
}

/* y := L^-1 b (forward substitution); y may be b. */
static void
solve_lower(const double *L, const double *b, double *y, int d)
{
	for (int i = 0; i < d; i++) {
		double s = b[i];
		for (int k = 0; k < i; k++)
			s -= L[(size_t)i * d + k] * y[k];
		y[i] = s / L[(size_t)i * d + i];
	}
}

/* x := L^-T y (back substitution); x may be y. */
static void
solve_upper_t(const double *L, const double *y, double *x, int d)
{
	for (int i = d - 1; i >= 0; i--) {
		double s = y[i];
		for (int k = i + 1; k < d; k++)
			s -= L[(size_t)k * d + i] * x[k];
		x[i] = s / L[(size_t)i * d + i];
	}
}

/* Room for K components of dimension d, with the element counts checked:
 * K * d * d doubles at most DM_GMM_MAX_ELEMS. */
static int
check_size(int64_t K, int64_t d)
{
	if (K < 1 || K > DM_GMM_MAX_K)
		return dm_seterr("number of components %lld out of range (1 to %d)",
		    (long long)K, DM_GMM_MAX_K);
	if (d < 1 || d > DM_GMM_MAX_D)
		return dm_seterr("dimension %lld out of range (1 to %d)",
		    (long long)d, DM_GMM_MAX_D);
	if (K * d * d > DM_GMM_MAX_ELEMS)
		return dm_seterr("mixture too large (%lld components of dimension "
		    "%lld: more than %lld covariance entries)", (long long)K,
		    (long long)d, (long long)DM_GMM_MAX_ELEMS);
	return 0;
}

int
dm_gmm_init(struct dm_gmm *g, int K, int d, double *weights, double *means,
    double *covs)
{
	double wsum = 0;
	size_t dd;

	memset(g, 0, sizeof *g);
	if (weights == NULL || means == NULL || covs == NULL) {
		dm_seterr("missing mixture arrays");
		goto fail;
	}
	if (check_size(K, d) == -1)
		goto fail;
	dd = (size_t)d * d;
	for (int k = 0; k < K; k++) {
		if (!(weights[k] > 0) || !isfinite(weights[k])) {
			dm_seterr("component %d: weight %g is not positive and finite",
			    k + 1, weights[k]);
			goto fail;
		}
		wsum += weights[k];
		for (int i = 0; i < d; i++)
			if (!isfinite(means[(size_t)k * d + i])) {
				dm_seterr("component %d: mean is not finite", k + 1);
				goto fail;
			}
		double *S = covs + (size_t)k * dd;
		for (size_t i = 0; i < dd; i++)
			if (!isfinite(S[i])) {
				dm_seterr("component %d: covariance is not finite",
				    k + 1);
				goto fail;
			}
		for (int i = 0; i < d; i++)
			for (int j = 0; j < i; j++) {
				double a = S[(size_t)i * d + j], b = S[(size_t)j * d + i];
				double scale = fmax(fabs(a), fabs(b));
				scale = fmax(scale, sqrt(fabs(S[(size_t)i * d + i] *
				    S[(size_t)j * d + j])));
				if (fabs(a - b) > 1e-9 * scale) {
					dm_seterr("component %d: covariance is not "
					    "symmetric (entries %d,%d and %d,%d)",
					    k + 1, i + 1, j + 1, j + 1, i + 1);
					goto fail;
				}
				S[(size_t)i * d + j] = S[(size_t)j * d + i] =
				    0.5 * (a + b);
			}
	}
	if (!isfinite(wsum)) {
		dm_seterr("weights sum to infinity");
		goto fail;
	}
	if ((g->chol = dm_malloc((size_t)K * dd * sizeof *g->chol)) == NULL)
		goto fail;
	for (int k = 0; k < K; k++)
		if (cholesky(g->chol + (size_t)k * dd, covs + (size_t)k * dd,
		    d) == -1) {
			dm_seterr("component %d: covariance is not positive "
			    "definite", k + 1);
			free(g->chol);
			g->chol = NULL;
			goto fail;
		}
	for (int k = 0; k < K; k++)
		weights[k] /= wsum;
	g->K = K;
	g->d = d;
	g->weights = weights;
	g->means = means;
	g->covs = covs;
	return 0;
fail:
	free(weights);
	free(means);
	free(covs);
	return -1;
}

void
dm_gmm_free(struct dm_gmm *g)
{
	if (g == NULL)
		return;
	free(g->weights);
	free(g->means);
	free(g->covs);
	free(g->chol);
	free(g->cls);
	memset(g, 0, sizeof *g);
}

int
dm_gmm_set_classes(struct dm_gmm *g, const int64_t *cls)
{
	int64_t C = 0;
	int *c, *seen;

	for (int k = 0; k < g->K; k++) {
		if (cls[k] < 0 || cls[k] >= g->K)
			return dm_seterr("component %d: class %lld out of range "
			    "(0 to %d)", k + 1, (long long)cls[k], g->K - 1);
		if (cls[k] + 1 > C)
			C = cls[k] + 1;
	}
	if ((c = dm_malloc((size_t)g->K * sizeof *c)) == NULL)
		return -1;
	if ((seen = dm_calloc((size_t)C, sizeof *seen)) == NULL) {
		free(c);
		return -1;
	}
	for (int k = 0; k < g->K; k++) {
		c[k] = (int)cls[k];
		seen[c[k]] = 1;
	}
	for (int64_t i = 0; i < C; i++)
		if (!seen[i]) {
			free(c);
			free(seen);
			return dm_seterr("class %lld has no component (classes "
			    "are 0 to %lld)", (long long)i, (long long)C - 1);
		}
	free(seen);
	free(g->cls);
	g->cls = c;
	g->classes = (int)C;
	return 0;
}

/* Copy a float tensor (F32 or F64) of exactly n elements into doubles. */
static double *
tensor_doubles(const struct dm_tensor *t, size_t n)
{
	double *p = dm_malloc(n * sizeof *p);

	if (p == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		p[i] = t->dtype == DM_DTYPE_F64 ? ((const double *)t->data)[i] :
		    (double)((const float *)t->data)[i];
	return p;
}

static const struct dm_tensor *
get_float(const struct dm_file *f, const char *name)
{
	const struct dm_tensor *t = dm_file_get(f, name);

	if (t == NULL) {
		dm_seterr("no tensor '%s' (not a gmm file)", name);
		return NULL;
	}
	if (t->dtype != DM_DTYPE_F32 && t->dtype != DM_DTYPE_F64) {
		dm_seterr("%s: dtype %s (need F32 or F64)", name,
		    dm_dtype_name(t->dtype));
		return NULL;
	}
	return t;
}

static int
shape_is(const struct dm_tensor *t, int ndim, const int64_t *want, int K,
    int d)
{
	char buf[128];

	if (t->ndim == ndim) {
		int i;
		for (i = 0; i < ndim && t->shape[i] == want[i]; i++)
			;
		if (i == ndim)
			return 0;
	}
	dm_shape_format(buf, sizeof buf, t->ndim, t->shape);
	return dm_seterr("%s: shape %s does not match K=%d, d=%d", t->name, buf,
	    K, d);
}

/* The optional gmm.classes [K] (any integer dtype). */
static int
read_classes(struct dm_gmm *g, const struct dm_file *f)
{
	const struct dm_tensor *t = dm_file_get(f, "gmm.classes");
	int64_t *c;
	int r;

	if (t == NULL)
		return 0;
	if (t->ndim != 1 || t->shape[0] != g->K || dm_dtype_is_float(t->dtype)) {
		dm_gmm_free(g);
		return dm_seterr("gmm.classes: need K = %d integers", g->K);
	}
	if ((c = dm_malloc((size_t)g->K * sizeof *c)) == NULL) {
		dm_gmm_free(g);
		return -1;
	}
	for (int k = 0; k < g->K; k++)
		c[k] = (int64_t)dm_tensor_get(t, (size_t)k);
	r = dm_gmm_set_classes(g, c);
	free(c);
	if (r == -1) {
		dm_errctx("gmm.classes: ");
		dm_gmm_free(g);
	}
	return r;
}

int
dm_gmm_from_file(struct dm_gmm *g, const struct dm_file *f)
{
	const struct dm_tensor *w, *m, *c;
	double *wd, *md, *cd;

	memset(g, 0, sizeof *g);
	if ((w = get_float(f, "gmm.weights")) == NULL ||
	    (m = get_float(f, "gmm.means")) == NULL ||
	    (c = get_float(f, "gmm.covs")) == NULL)
		return -1;
	if (w->ndim != 1) {
		char buf[128];
		dm_shape_format(buf, sizeof buf, w->ndim, w->shape);
		return dm_seterr("gmm.weights: shape %s is not [K]", buf);
	}
	if (m->ndim != 2) {
		char buf[128];
		dm_shape_format(buf, sizeof buf, m->ndim, m->shape);
		return dm_seterr("gmm.means: shape %s is not [K, d]", buf);
	}
	int64_t K = w->shape[0], d = m->shape[1];
	if (check_size(K, d) == -1)
		return -1;
	int64_t s1[1] = {K}, s2[2] = {K, d}, s3[3] = {K, d, d};
	if (shape_is(w, 1, s1, (int)K, (int)d) == -1 ||
	    shape_is(m, 2, s2, (int)K, (int)d) == -1 ||
	    shape_is(c, 3, s3, (int)K, (int)d) == -1)
		return -1;
	wd = tensor_doubles(w, (size_t)K);
	md = tensor_doubles(m, (size_t)(K * d));
	cd = tensor_doubles(c, (size_t)(K * d * d));
	if (wd == NULL || md == NULL || cd == NULL) {
		free(wd);
		free(md);
		free(cd);
		return -1;
	}
	if (dm_gmm_init(g, (int)K, (int)d, wd, md, cd) == -1)
		return -1;
	return read_classes(g, f);
}

static int
add_f64(struct dm_file *f, const char *name, int ndim, const int64_t *shape,
    const double *src)
{
	struct dm_tensor *t = dm_tensor_new_dtype(DM_DTYPE_F64, ndim, shape);

	if (t == NULL)
		return -1;
	memcpy(t->data, src, t->nbytes);
	if (dm_tensor_set_name(t, name) == -1 || dm_file_add(f, t) == -1) {
		dm_tensor_free(t);
		return -1;
	}
	return 0;
}

int
dm_gmm_to_file(const struct dm_gmm *g, struct dm_file *f, const char *schedule)
{
	int64_t s[3] = {g->K, g->d, g->d};
	char shape[32];

	if (add_f64(f, "gmm.weights", 1, s, g->weights) == -1 ||
	    add_f64(f, "gmm.means", 2, s, g->means) == -1 ||
	    add_f64(f, "gmm.covs", 3, s, g->covs) == -1)
		return -1;
	if (g->cls != NULL) {
		struct dm_tensor *t = dm_tensor_new_dtype(DM_DTYPE_I64, 1, s);
		if (t == NULL)
			return -1;
		for (int k = 0; k < g->K; k++)
			((int64_t *)t->data)[k] = g->cls[k];
		if (dm_tensor_set_name(t, "gmm.classes") == -1 ||
		    dm_file_add(f, t) == -1) {
			dm_tensor_free(t);
			return -1;
		}
	}
	if (schedule == NULL)
		return 0;
	snprintf(shape, sizeof shape, "[%d]", g->d);
	if (dm_file_meta_set(f, "dm.kind", "model") == -1 ||
	    dm_file_meta_set(f, "dm.arch", "gmm") == -1 ||
	    dm_file_meta_set(f, "dm.prediction", "x0") == -1 ||
	    dm_file_meta_set(f, "dm.schedule", schedule) == -1 ||
	    dm_file_meta_set(f, "dm.shape", shape) == -1 ||
	    dm_file_meta_set(f, "dm.version", DM_VERSION) == -1)
		return -1;
	return 0;
}

/* The text spec: "dim D", then "weight mean_1..mean_d [std | std_1..std_d |
 * cov_11..cov_dd]" per line; '#' starts a comment. */
struct parser {
	const char *p;      /* next line */
	int line;
	char *buf;          /* the current line, comment stripped */
	size_t cap;
	double *nums;
	size_t nnum, numcap;
};

/* Next non-blank line into ps->buf; 0 at the end of the text, 1 if read. */
static int
next_line(struct parser *ps)
{
	while (*ps->p != '\0') {
		const char *e = strchr(ps->p, '\n');
		size_t n = e ? (size_t)(e - ps->p) : strlen(ps->p);
		const char *h = memchr(ps->p, '#', n);
		size_t keep = h ? (size_t)(h - ps->p) : n;
		ps->line++;
		if (keep + 1 > ps->cap) {
			char *nb = dm_realloc(ps->buf, keep + 1);
			if (nb == NULL)
				return -1;
			ps->buf = nb;
			ps->cap = keep + 1;
		}
		memcpy(ps->buf, ps->p, keep);
		ps->buf[keep] = '\0';
		ps->p = e ? e + 1 : ps->p + n;
		for (size_t i = 0; i < keep; i++)
			if (!isspace((unsigned char)ps->buf[i]))
				return 1;
	}
	return 0;
}

/* Split ps->buf into numbers (strict); -1 with "line N: ..." on error. */
static int
line_numbers(struct parser *ps)
{
	char *save = NULL, *tok;

	ps->nnum = 0;
	for (tok = strtok_r(ps->buf, " \t\r\v\f", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t\r\v\f", &save)) {
		double v;
		if (dm_parse_double(tok, -DBL_MAX, DBL_MAX, &v) == -1)
			return dm_seterr("line %d: '%.40s' is not a number",
			    ps->line, tok);
		if (ps->nnum == ps->numcap) {
			size_t nc = ps->numcap ? 2 * ps->numcap : 64;
			double *nn;
			if (nc > (size_t)DM_GMM_MAX_D * DM_GMM_MAX_D + DM_GMM_MAX_D + 1)
				return dm_seterr("line %d: too many numbers",
				    ps->line);
			if ((nn = dm_realloc(ps->nums, nc * sizeof *nn)) == NULL)
				return -1;
			ps->nums = nn;
			ps->numcap = nc;
		}
		ps->nums[ps->nnum++] = v;
	}
	return 0;
}

static int
parse_dim(struct parser *ps, int *d)
{
	char *save = NULL, *kw, *val, *rest;
	int r = next_line(ps);

	if (r == -1)
		return -1;
	if (r == 0)
		return dm_seterr("empty mixture (expected \"dim D\")");
	kw = strtok_r(ps->buf, " \t\r\v\f", &save);
	val = strtok_r(NULL, " \t\r\v\f", &save);
	rest = strtok_r(NULL, " \t\r\v\f", &save);
	if (strcmp(kw, "dim") != 0 || val == NULL || rest != NULL)
		return dm_seterr("line %d: expected \"dim D\" first", ps->line);
	if (dm_parse_int(val, 1, DM_GMM_MAX_D, d) == -1)
		return dm_errctx("line %d: dim: ", ps->line);
	return 0;
}

/* Append the component in ps->nums to the growing arrays. */
static int
add_component(struct parser *ps, int d, int K, double **w, double **m,
    double **c)
{
	size_t n = ps->nnum - 1, dd = (size_t)d * d;
	const double *v = ps->nums;
	double *wn, *mn, *cn, *S;

	if (n != (size_t)d && n != (size_t)d + 1 && n != 2 * (size_t)d &&
	    n != (size_t)d + dd) {
		char want[128];
		size_t opts[4] = {d, (size_t)d + 1, 2 * (size_t)d, (size_t)d + dd};
		int len = 0, nopt = 0;
		size_t uniq[4];
		for (int i = 0; i < 4; i++) {
			int seen = 0;
			for (int j = 0; j < nopt; j++)
				seen |= uniq[j] == opts[i];
			if (!seen)
				uniq[nopt++] = opts[i];
		}
		for (int i = 0; i < nopt; i++)
			len += snprintf(want + len, sizeof want - len, "%s%zu",
			    i == 0 ? "" : i + 1 == nopt ? " or " : ", ", uniq[i]);
		return dm_seterr("line %d: expected %s numbers after the weight, "
		    "got %zu", ps->line, want, n);
	}
	if (check_size((int64_t)K + 1, d) == -1)
		return dm_errctx("line %d: ", ps->line);
	if ((wn = dm_realloc(*w, ((size_t)K + 1) * sizeof *wn)) == NULL)
		return -1;
	*w = wn;
	if ((mn = dm_realloc(*m, ((size_t)K + 1) * d * sizeof *mn)) == NULL)
		return -1;
	*m = mn;
	if ((cn = dm_realloc(*c, ((size_t)K + 1) * dd * sizeof *cn)) == NULL)
		return -1;
	*c = cn;
	if (!(v[0] > 0))
		return dm_seterr("line %d: weight %g is not positive", ps->line,
		    v[0]);
	wn[K] = v[0];
	memcpy(mn + (size_t)K * d, v + 1, (size_t)d * sizeof *v);
	S = cn + (size_t)K * dd;
	if (n == (size_t)d + dd && n != (size_t)d + 1) {
		memcpy(S, v + 1 + d, dd * sizeof *v);
		return 0;
	}
	memset(S, 0, dd * sizeof *S);
	for (int i = 0; i < d; i++) {
		double sd = n == (size_t)d ? 1 : n == (size_t)d + 1 ? v[1 + d] :
		    v[1 + d + i];
		if (!(sd > 0))
			return dm_seterr("line %d: standard deviation %g is not "
			    "positive", ps->line, sd);
		S[(size_t)i * d + i] = sd * sd;
		if (!isfinite(S[(size_t)i * d + i]))
			return dm_seterr("line %d: standard deviation %g is too "
			    "large", ps->line, sd);
	}
	return 0;
}

int
dm_gmm_parse(struct dm_gmm *g, const char *text)
{
	struct parser ps = {.p = text};
	double *w = NULL, *m = NULL, *c = NULL;
	int d = 0, K = 0, r;

	memset(g, 0, sizeof *g);
	if (parse_dim(&ps, &d) == -1)
		goto fail;
	while ((r = next_line(&ps)) == 1) {
		if (line_numbers(&ps) == -1 ||
		    add_component(&ps, d, K, &w, &m, &c) == -1)
			goto fail;
		K++;
	}
	if (r == -1)
		goto fail;
	if (K == 0) {
		dm_seterr("no components after \"dim %d\"", d);
		goto fail;
	}
	free(ps.buf);
	free(ps.nums);
	return dm_gmm_init(g, K, d, w, m, c);
fail:
	free(ps.buf);
	free(ps.nums);
	free(w);
	free(m);
	free(c);
	return -1;
}

int
dm_gmm_sample(const struct dm_gmm *g, int64_t n, uint64_t seed, int64_t first,
    float *x, int64_t *labels)
{
	int d = g->d, K = g->K, fail = 0;
	size_t dd = (size_t)d * d;

	if (n < 0 || first < 0 || first > (INT64_C(1) << 48) - n)
		return dm_seterr("bad sample range (%lld from %lld)",
		    (long long)n, (long long)first);
#pragma omp parallel if (PARALLEL(n, g))
	{
		double *z = malloc(2 * (size_t)d * sizeof *z);
		if (z == NULL) {
#pragma omp atomic write
			fail = 1;
		}
#pragma omp for schedule(static)
		for (int64_t i = 0; i < n; i++) {
			if (z == NULL)
				continue;
			uint64_t stream = dm_noise_stream(DM_NOISE_DATA,
			    (uint64_t)(first + i));
			double u, cum = 0;
			int k;
			/* uniform double 0 picks the component; normal doubles
			 * 2..d+1 (from block 1 on) are z */
			dm_rng_uniform_f64(&u, 1, seed, stream, 0);
			for (k = 0; k < K - 1; k++) {
				cum += g->weights[k];
				if (u < cum)
					break;
			}
			dm_rng_normal_f64(z, (size_t)d, seed, stream, 2);
			const double *L = g->chol + (size_t)k * dd;
			const double *mu = g->means + (size_t)k * d;
			for (int a = 0; a < d; a++) {
				double s = mu[a];
				for (int b = 0; b <= a; b++)
					s += L[(size_t)a * d + b] * z[b];
				x[(size_t)i * d + a] = (float)s;
			}
			if (labels != NULL)
				labels[i] = k;
		}
		free(z);
	}
	if (fail)
		return dm_seterr("out of memory");
	return 0;
}

/* Per call: for each component, the Cholesky factor of
 * A_k = alpha^2 Sigma_k + sigma^2 I, the constant of log N, and the gain
 * M_k = alpha Sigma_k A_k^-1 of the posterior mean. */
struct marginal {
	double *L;          /* [K * d * d] */
	double *M;          /* [K * d * d], only for the denoiser */
	double *c;          /* [K]: log pi_k - (d log 2 pi + log det A_k)/2 */
};

static void
marginal_free(struct marginal *mg)
{
	free(mg->L);
	free(mg->M);
	free(mg->c);
}

static int
marginal_init(struct marginal *mg, const struct dm_gmm *g, double alpha,
    double sigma, int gain)
{
	int K = g->K, d = g->d, fail = 0;
	size_t dd = (size_t)d * d;

	memset(mg, 0, sizeof *mg);
	if (!(alpha >= 0) || !(sigma >= 0) || !isfinite(alpha) ||
	    !isfinite(sigma) || (alpha == 0 && sigma == 0))
		return dm_seterr("bad alpha, sigma (%g, %g): need both >= 0, "
		    "finite, not both 0", alpha, sigma);
	mg->L = dm_malloc((size_t)K * dd * sizeof *mg->L);
	mg->c = dm_malloc((size_t)K * sizeof *mg->c);
	if (gain)
		mg->M = dm_malloc((size_t)K * dd * sizeof *mg->M);
	if (mg->L == NULL || mg->c == NULL || (gain && mg->M == NULL)) {
		marginal_free(mg);
		return -1;
	}
#pragma omp parallel for schedule(dynamic) if (K * dd > 4096)
	for (int k = 0; k < K; k++) {
		const double *S = g->covs + (size_t)k * dd;
		double *L = mg->L + (size_t)k * dd, *A, logdet = 0;
		if ((A = malloc(dd * sizeof *A)) == NULL) {
#pragma omp atomic write
			fail = 1;
			continue;
		}
		for (size_t i = 0; i < dd; i++)
			A[i] = alpha * alpha * S[i];
		for (int i = 0; i < d; i++)
			A[(size_t)i * d + i] += sigma * sigma;
		if (cholesky(L, A, d) == -1) {
#pragma omp atomic write
			fail = 2;
			free(A);
			continue;
		}
		for (int i = 0; i < d; i++)
			logdet += 2 * log(L[(size_t)i * d + i]);
		mg->c[k] = log(g->weights[k]) - 0.5 * (d * LOG_2PI + logdet);
		if (gain) {
			/* A X = Sigma column by column; M = alpha X^T, since
			 * (A^-1 Sigma)^T = Sigma A^-1 for symmetric A, Sigma */
			double *M = mg->M + (size_t)k * dd;
			for (int j = 0; j < d; j++) {
				for (int i = 0; i < d; i++)
					A[i] = S[(size_t)i * d + j];
				solve_lower(L, A, A, d);
				solve_upper_t(L, A, A, d);
				for (int i = 0; i < d; i++)
					M[(size_t)j * d + i] = alpha * A[i];
			}
		}
		free(A);
	}
	if (fail) {
		marginal_free(mg);
		return fail == 2 ? dm_seterr("alpha^2 Sigma + sigma^2 I is not "
		    "positive definite at alpha %g, sigma %g", alpha, sigma) :
		    dm_seterr("out of memory");
	}
	return 0;
}

/* log pi_k N(x; alpha mu_k, A_k) with r := x - alpha mu_k and y scratch. */
static double
component_logp(const struct marginal *mg, const struct dm_gmm *g, int k,
    double alpha, const float *x, double *r, double *y)
{
	int d = g->d;
	const double *mu = g->means + (size_t)k * d;
	double q = 0;

	for (int i = 0; i < d; i++)
		r[i] = (double)x[i] - alpha * mu[i];
	solve_lower(mg->L + (size_t)k * d * d, r, y, d);
	for (int i = 0; i < d; i++)
		q += y[i] * y[i];
	return mg->c[k] - 0.5 * q;
}

int
dm_gmm_x0(const struct dm_gmm *g, double alpha, double sigma, const float *xt,
    float *x0, int64_t n)
{
	return dm_gmm_denoise(g, alpha, sigma, xt, x0, NULL, n);
}

/* E[eps | x_t] per component is sigma A_k^-1 (x_t - alpha mu_k), which
 * equals (x_t - alpha m_k)/sigma without its cancellation near sigma = 0. */
int
dm_gmm_denoise(const struct dm_gmm *g, double alpha, double sigma,
    const float *xt, float *x0, float *eps, int64_t n)
{
	return dm_gmm_denoise_class(g, alpha, sigma, xt, NULL, x0, eps, n);
}

/* Whether component k takes part for label y (the null class and labels
 * outside 0 .. classes - 1 take every component). */
static int
in_class(const struct dm_gmm *g, int k, const int64_t *y, int64_t p)
{
	return y == NULL || g->cls == NULL || y[p] < 0 || y[p] >= g->classes ||
	    g->cls[k] == y[p];
}

int
dm_gmm_denoise_class(const struct dm_gmm *g, double alpha, double sigma,
    const float *xt, const int64_t *y, float *x0, float *eps, int64_t n)
{
	struct marginal mg;
	int d = g->d, K = g->K, fail = 0;

	if (n < 0)
		return dm_seterr("negative point count");
	if (sigma == 0 && alpha > 0 && isfinite(alpha)) {
		/* no noise: x_t = alpha x0 exactly (eps is not observed: 0) */
		for (size_t i = 0; i < (size_t)n * d; i++) {
			x0[i] = (float)(xt[i] / alpha);
			if (eps)
				eps[i] = 0;
		}
		return 0;
	}
	if (alpha == 0 && sigma > 0 && isfinite(sigma)) {
		/* pure noise: x_t says nothing about x0, E[x0] = sum pi_k mu_k
		 * over the row's class */
		for (int64_t p = 0; p < n; p++)
			for (int i = 0; i < d; i++) {
				double m = 0, ws = 0;
				for (int k = 0; k < K; k++)
					if (in_class(g, k, y, p)) {
						m += g->weights[k] * g->means[(size_t)k * d + i];
						ws += g->weights[k];
					}
				x0[(size_t)p * d + i] = (float)(m / ws);
				if (eps)
					eps[(size_t)p * d + i] = (float)(xt[(size_t)p * d + i] / sigma);
			}
		return 0;
	}
	if (marginal_init(&mg, g, alpha, sigma, 1) == -1)
		return -1;
#pragma omp parallel if (PARALLEL(n, g))
	{
		/* r, y, the current component's mean, the running sum, and
		 * the same two for eps */
		double *buf = malloc(6 * (size_t)d * sizeof *buf);
		if (buf == NULL) {
#pragma omp atomic write
			fail = 1;
		}
#pragma omp for schedule(static)
		for (int64_t p = 0; p < n; p++) {
			if (buf == NULL)
				continue;
			double *r = buf, *ly = buf + d, *mk = buf + 2 * d;
			double *acc = buf + 3 * d, lmax = -INFINITY, s = 0;
			double *ek = buf + 4 * d, *eacc = buf + 5 * d;

			memset(acc, 0, (size_t)d * sizeof *acc);
			memset(eacc, 0, (size_t)d * sizeof *eacc);
			const float *x = xt + (size_t)p * d;
			/* streaming log-sum-exp: acc / s = sum_k w_k m_k */
			for (int k = 0; k < K; k++) {
				if (!in_class(g, k, y, p))
					continue;
				double l = component_logp(&mg, g, k, alpha, x, r, ly);
				const double *M = mg.M + (size_t)k * d * d;
				const double *mu = g->means + (size_t)k * d;
				for (int i = 0; i < d; i++) {
					double v = mu[i];
					for (int j = 0; j < d; j++)
						v += M[(size_t)i * d + j] * r[j];
					mk[i] = v;
				}
				if (eps) {
					/* ly = L^-1 r: A^-1 r = L^-T ly */
					solve_upper_t(mg.L + (size_t)k * d * d, ly, ek, d);
					for (int i = 0; i < d; i++)
						ek[i] *= sigma;
				}
				if (l > lmax) {
					double f = lmax == -INFINITY ? 0 :
					    exp(lmax - l);
					s = s * f + 1;
					for (int i = 0; i < d; i++) {
						acc[i] = acc[i] * f + mk[i];
						eacc[i] = eacc[i] * f + (eps ? ek[i] : 0);
					}
					lmax = l;
				} else if (l > -INFINITY) {
					double e = exp(l - lmax);
					s += e;
					for (int i = 0; i < d; i++) {
						acc[i] += e * mk[i];
						eacc[i] += e * (eps ? ek[i] : 0);
					}
				}
			}
			if (!(s > 0)) {
				/* every density underflowed (or x has NaN): far
				 * from all components the likelihood dominates */
				for (int i = 0; i < d; i++) {
					acc[i] = alpha > 0 ? x[i] / alpha : NAN;
					eacc[i] = 0;
				}
				s = 1;
			}
			for (int i = 0; i < d; i++) {
				x0[(size_t)p * d + i] = (float)(acc[i] / s);
				if (eps)
					eps[(size_t)p * d + i] = (float)(eacc[i] / s);
			}
		}
		free(buf);
	}
	marginal_free(&mg);
	if (fail)
		return dm_seterr("out of memory");
	return 0;
}

/* Streaming log-sum-exp with a weighted vector sum: (lmax, s, acc) hold
 * log sum e^l = lmax + log s and sum e^l v = e^lmax acc. */
static void
lse_add(double *lmax, double *s, double *acc, double l, const double *v,
    int d)
{
	if (l > *lmax) {
		double f = *lmax == -INFINITY ? 0 : exp(*lmax - l);
		*s = *s * f + 1;
		for (int i = 0; i < d; i++)
			acc[i] = acc[i] * f + v[i];
		*lmax = l;
	} else if (l > -INFINITY) {
		double e = exp(l - *lmax);
		*s += e;
		for (int i = 0; i < d; i++)
			acc[i] += e * v[i];
	}
}

int
dm_gmm_class_logp(const struct dm_gmm *g, double alpha, double sigma,
    const float *xt, const int64_t *y, double *logp, float *grad, int64_t n)
{
	struct marginal mg;
	int d = g->d, K = g->K, fail = 0;

	if (n < 0)
		return dm_seterr("negative point count");
	if (g->cls == NULL)
		return dm_seterr("the mixture has no classes");
	for (int64_t p = 0; p < n; p++)
		if (y[p] < 0 || y[p] >= g->classes)
			return dm_seterr("label %lld of row %lld is out of range "
			    "(0 to %d)", (long long)y[p], (long long)p,
			    g->classes - 1);
	if (marginal_init(&mg, g, alpha, sigma, 0) == -1)
		return -1;
#pragma omp parallel if (PARALLEL(n, g))
	{
		/* r, L^-1 r, g_k, and the two accumulated gradients */
		double *buf = malloc(5 * (size_t)d * sizeof *buf);
		if (buf == NULL) {
#pragma omp atomic write
			fail = 1;
		}
#pragma omp for schedule(static)
		for (int64_t p = 0; p < n; p++) {
			if (buf == NULL)
				continue;
			double *r = buf, *ly = buf + d, *gk = buf + 2 * d;
			double *ga = buf + 3 * d, *gy = buf + 4 * d;
			double la = -INFINITY, sa = 0, lc = -INFINITY, sc = 0;
			const float *x = xt + (size_t)p * d;

			memset(ga, 0, 2 * (size_t)d * sizeof *ga);
			for (int k = 0; k < K; k++) {
				double l = component_logp(&mg, g, k, alpha, x, r, ly);
				/* g_k = -A_k^-1 r = -L^-T (L^-1 r) */
				solve_upper_t(mg.L + (size_t)k * d * d, ly, gk, d);
				for (int i = 0; i < d; i++)
					gk[i] = -gk[i];
				lse_add(&la, &sa, ga, l, gk, d);
				if (g->cls[k] == y[p])
					lse_add(&lc, &sc, gy, l, gk, d);
			}
			if (logp)
				logp[p] = lc == -INFINITY ? -INFINITY :
				    la == -INFINITY ? NAN :
				    lc + log(sc) - la - log(sa);
			if (grad)
				for (int i = 0; i < d; i++)
					grad[(size_t)p * d + i] = sc > 0 && sa > 0 ?
					    (float)(gy[i] / sc - ga[i] / sa) : 0;
		}
		free(buf);
	}
	marginal_free(&mg);
	if (fail)
		return dm_seterr("out of memory");
	return 0;
}

int
dm_gmm_logp(const struct dm_gmm *g, double alpha, double sigma,
    const float *xt, double *logp, int64_t n)
{
	struct marginal mg;
	int d = g->d, K = g->K, fail = 0;

	if (n < 0)
		return dm_seterr("negative point count");
	if (marginal_init(&mg, g, alpha, sigma, 0) == -1)
		return -1;
#pragma omp parallel if (PARALLEL(n, g))
	{
		double *buf = malloc(2 * (size_t)d * sizeof *buf);
		if (buf == NULL) {
#pragma omp atomic write
			fail = 1;
		}
#pragma omp for schedule(static)
		for (int64_t p = 0; p < n; p++) {
			if (buf == NULL)
				continue;
			double lmax = -INFINITY, s = 0;
			const float *x = xt + (size_t)p * d;
			for (int k = 0; k < K; k++) {
				double l = component_logp(&mg, g, k, alpha, x, buf,
				    buf + d);
				if (l > lmax) {
					s = lmax == -INFINITY ? 1 :
					    s * exp(lmax - l) + 1;
					lmax = l;
				} else if (l > -INFINITY)
					s += exp(l - lmax);
			}
			logp[p] = lmax == -INFINITY ? -INFINITY : lmax + log(s);
		}
		free(buf);
	}
	marginal_free(&mg);
	if (fail)
		return dm_seterr("out of memory");
	return 0;
}
