/* lora.c — low-rank adapters (SPEC.md §9): creation, merging, the
 * gradient chain for training, files in three namings, and extraction by
 * truncated SVD.  The conventions are in dm_lora.h. */
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "dm_base.h"
#include "dm_cli.h"
#include "dm_lora.h"
#include "dm_rng.h"

/* LAPACK's divide-and-conquer SVD, from the OpenMP OpenBLAS build (which
 * carries LAPACK but not LAPACKE).  Column-major; the trailing argument is
 * the Fortran length of jobz. */
void sgesdd_(const char *jobz, const int *m, const int *n, float *a,
    const int *lda, float *s, float *u, const int *ldu, float *vt,
    const int *ldvt, float *work, const int *lwork, int *iwork, int *info,
    size_t jobz_len);

static uint64_t
fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * UINT64_C(0x100000001b3);
	return h;
}

uint64_t
dm_lora_model_hash(const struct dm_model *m)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	char cfg[4096];

	if (dm_model_config_format(&m->cfg, cfg, sizeof cfg) == 0)
		h = fnv1a(h, cfg, strlen(cfg));
	for (int i = 0; i < m->nparam; i++) {
		const struct dm_param *p = &m->param[i];
		h = fnv1a(h, p->name, strlen(p->name) + 1);
		h = fnv1a(h, m->params + p->offset, p->numel * sizeof(float));
	}
	return h;
}

const char *
dm_lora_default_targets(const struct dm_model *m)
{
	return m->cfg.arch == DM_ARCH_UNET ? "down.*,mid.*,up.*" : "blocks.*";
}

int
dm_lora_match(const char *patterns, const char *name)
{
	char pat[512];
	const char *s = patterns;

	while (*s != '\0') {
		size_t n = strcspn(s, ",");
		if (n > 0 && n < sizeof pat) {
			memcpy(pat, s, n);
			pat[n] = '\0';
			if (fnmatch(pat, name, 0) == 0)
				return 1;
		}
		s += n;
		if (*s == ',')
			s++;
	}
	return 0;
}

/* The layer name of parameter p if it is a linear or conv weight. */
static int
layer_name(const struct dm_param *p, char *buf, size_t n)
{
	size_t len = strlen(p->name);

	if ((p->ndim != 2 && p->ndim != 4) || len < 8 ||
	    strcmp(p->name + len - 7, ".weight") != 0 || len - 7 >= n)
		return 0;
	memcpy(buf, p->name, len - 7);
	buf[len - 7] = '\0';
	return 1;
}

static int64_t
param_in(const struct dm_param *p)
{
	return p->ndim == 4 ? p->shape[1] * p->shape[2] * p->shape[3] :
	    p->shape[1];
}

struct dm_lora *
dm_lora_alloc(const struct dm_model *m, const int *ranks)
{
	struct dm_lora *l;
	size_t n = 0;
	int k = 0;

	if ((l = dm_calloc(1, sizeof *l)) == NULL)
		return NULL;
	if ((l->layer = dm_calloc((size_t)m->nparam + 1, sizeof *l->layer))
	    == NULL)
		goto fail;
	for (int i = 0; i < m->nparam; i++) {
		const struct dm_param *p = &m->param[i];
		struct dm_lora_layer *L = &l->layer[k];
		size_t na, nb;
		if (ranks[i] <= 0)
			continue;
		if (!layer_name(p, L->name, sizeof L->name)) {
			dm_seterr("%s is not a linear or conv weight", p->name);
			goto fail;
		}
		L->param = i;
		L->rank = ranks[i];
		L->out = p->shape[0];
		L->in = param_in(p);
		L->alpha = (float)ranks[i];
		if (dm_mul_size((size_t)L->rank, (size_t)L->in, &na) == -1 ||
		    dm_mul_size((size_t)L->rank, (size_t)L->out, &nb) == -1)
			goto fail;
		L->a = n;
		if (dm_add_size(n, na, &n) == -1)
			goto fail;
		L->b = n;
		if (dm_add_size(n, nb, &n) == -1)
			goto fail;
		k++;
	}
	l->nlayer = k;
	l->n = n;
	if ((l->w = dm_calloc(n ? n : 1, sizeof *l->w)) == NULL)
		goto fail;
	return l;
fail:
	dm_lora_free(l);
	return NULL;
}

void
dm_lora_free(struct dm_lora *l)
{
	if (l == NULL)
		return;
	free(l->layer);
	free(l->w);
	free(l->g);
	free(l->base);
	free(l);
}

size_t
dm_lora_numel(const struct dm_lora *l)
{
	return l->n;
}

struct dm_lora *
dm_lora_new(const struct dm_model *m, const char *targets, int r,
    double alpha, uint64_t seed)
{
	struct dm_lora *l;
	int *ranks, any = 0;
	char name[96];

	if (targets == NULL)
		targets = dm_lora_default_targets(m);
	if (r < 1) {
		dm_seterr("rank %d: the rank must be at least 1", r);
		return NULL;
	}
	if (!(alpha > 0) || !isfinite(alpha)) {
		dm_seterr("alpha %g is not positive", alpha);
		return NULL;
	}
	if (strlen(targets) >= sizeof l->targets) {
		dm_seterr("the target list is too long");
		return NULL;
	}
	if ((ranks = dm_calloc((size_t)m->nparam + 1, sizeof *ranks)) == NULL)
		return NULL;
	for (int i = 0; i < m->nparam; i++) {
		const struct dm_param *p = &m->param[i];
		if (!layer_name(p, name, sizeof name) ||
		    !dm_lora_match(targets, name))
			continue;
		int64_t lim = p->shape[0] < param_in(p) ? p->shape[0] :
		    param_in(p);
		if (r > lim) {
			dm_seterr("rank %d is larger than layer %s allows "
			    "(%lld)", r, name, (long long)lim);
			free(ranks);
			return NULL;
		}
		ranks[i] = r;
		any = 1;
	}
	if (!any) {
		dm_seterr("no linear or conv layer matches the targets '%s'",
		    targets);
		free(ranks);
		return NULL;
	}
	l = dm_lora_alloc(m, ranks);
	free(ranks);
	if (l == NULL)
		return NULL;
	l->rank = r;
	l->alpha = alpha;
	snprintf(l->targets, sizeof l->targets, "%s", targets);
	l->base_hash = dm_lora_model_hash(m);
	for (int i = 0; i < l->nlayer; i++) {
		struct dm_lora_layer *L = &l->layer[i];
		size_t na = (size_t)L->rank * (size_t)L->in;
		float *a = l->w + L->a, bound = (float)(1 / sqrt((double)L->in));
		L->alpha = (float)alpha;
		dm_rng_uniform(a, na, seed, dm_noise_stream(DM_NOISE_INIT,
		    UINT64_C(1) << 40 | (uint64_t)L->param), 0);
		for (size_t k = 0; k < na; k++)
			a[k] = (2 * a[k] - 1) * bound;
	}
	return l;
}

void
dm_lora_delta(const struct dm_lora *l, const float *w, int i, double c,
    float *dw)
{
	const struct dm_lora_layer *L = &l->layer[i];

	if (w == NULL)
		w = l->w;
	/* dw [out, in] += c (alpha/r) B [out, r] A [r, in] */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)L->out,
	    (int)L->in, L->rank, (float)(c * L->alpha / L->rank), w + L->b,
	    L->rank, w + L->a, (int)L->in, 1.0f, dw, (int)L->in);
}

/* Does every layer of l fit m? */
static int
check_fit(const struct dm_lora *l, const struct dm_model *m)
{
	for (int i = 0; i < l->nlayer; i++) {
		const struct dm_lora_layer *L = &l->layer[i];
		const struct dm_param *p;
		char name[96];
		if (L->param < 0 || L->param >= m->nparam)
			return dm_seterr("adapter layer %s is not in the model",
			    L->name);
		p = &m->param[L->param];
		if (!layer_name(p, name, sizeof name) ||
		    strcmp(name, L->name) != 0 || p->shape[0] != L->out ||
		    param_in(p) != L->in)
			return dm_seterr("adapter layer %s does not fit the "
			    "model", L->name);
		if (L->in > INT32_MAX || L->out > INT32_MAX)
			return dm_seterr("adapter layer %s is too large",
			    L->name);
	}
	return 0;
}

int
dm_lora_merge(struct dm_model *m, const struct dm_lora *l, double s)
{
	if (check_fit(l, m) == -1)
		return -1;
	for (int i = 0; i < l->nlayer; i++)
		dm_lora_delta(l, NULL, i, s,
		    m->params + m->param[l->layer[i].param].offset);
	return 0;
}

int
dm_lora_check_base(const struct dm_lora *l, uint64_t hash)
{
	if (l->base_hash != 0 && l->base_hash != hash)
		return dm_seterr("the adapter was made for another base model "
		    "(base %016llx, this model %016llx; --force overrides)",
		    (unsigned long long)l->base_hash,
		    (unsigned long long)hash);
	return 0;
}

int
dm_lora_attach(struct dm_lora *l, struct dm_model *m)
{
	size_t nb = 0;

	if (check_fit(l, m) == -1)
		return -1;
	for (int i = 0; i < l->nlayer; i++)
		nb += m->param[l->layer[i].param].numel;
	free(l->base);
	free(l->g);
	l->base = dm_malloc((nb ? nb : 1) * sizeof *l->base);
	l->g = dm_calloc(l->n ? l->n : 1, sizeof *l->g);
	if (l->base == NULL || l->g == NULL)
		return -1;
	nb = 0;
	for (int i = 0; i < l->nlayer; i++) {
		const struct dm_param *p = &m->param[l->layer[i].param];
		memcpy(l->base + nb, m->params + p->offset, p->numel *
		    sizeof(float));
		nb += p->numel;
	}
	return 0;
}

void
dm_lora_apply(const struct dm_lora *l, struct dm_model *m, const float *w)
{
	size_t nb = 0;

	for (int i = 0; i < l->nlayer; i++) {
		const struct dm_param *p = &m->param[l->layer[i].param];
		float *dst = m->params + p->offset;
		memcpy(dst, l->base + nb, p->numel * sizeof(float));
		dm_lora_delta(l, w, i, 1, dst);
		nb += p->numel;
	}
}

void
dm_lora_backward(struct dm_lora *l, const struct dm_model *m)
{
	for (int i = 0; i < l->nlayer; i++) {
		const struct dm_lora_layer *L = &l->layer[i];
		const float *G = m->grads + m->param[L->param].offset;
		float c = L->alpha / (float)L->rank;
		int o = (int)L->out, in = (int)L->in, r = L->rank;
		/* dB [out, r] = c G [out, in] A^T [in, r] */
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, o, r, in,
		    c, G, in, l->w + L->a, in, 0.0f, l->g + L->b, r);
		/* dA [r, in] = c B^T [r, out] G [out, in] */
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, in, o,
		    c, l->w + L->b, r, G, in, 0.0f, l->g + L->a, in);
	}
}

void
dm_lora_detach(struct dm_lora *l, struct dm_model *m)
{
	size_t nb = 0;

	if (l->base == NULL)
		return;
	for (int i = 0; i < l->nlayer; i++) {
		const struct dm_param *p = &m->param[l->layer[i].param];
		memcpy(m->params + p->offset, l->base + nb, p->numel *
		    sizeof(float));
		nb += p->numel;
	}
	free(l->base);
	l->base = NULL;
}

/* Files */

static int
add_tensor(struct dm_file *f, const char *name, int ndim,
    const int64_t *shape, const float *src)
{
	struct dm_tensor *t = dm_tensor_new(ndim, shape);

	if (t == NULL)
		return -1;
	memcpy(t->data, src, dm_tensor_numel(t) * sizeof(float));
	if (dm_tensor_set_name(t, name) == -1 || dm_file_add(f, t) == -1) {
		dm_tensor_free(t);
		return -1;
	}
	return 0;
}

int
dm_lora_to_file(const struct dm_lora *l, const float *w,
    const struct dm_model *m, struct dm_file *f)
{
	char name[160], buf[4096];

	if (w == NULL)
		w = l->w;
	if (check_fit(l, m) == -1)
		return -1;
	for (int i = 0; i < l->nlayer; i++) {
		const struct dm_lora_layer *L = &l->layer[i];
		const struct dm_param *p = &m->param[L->param];
		int64_t sa[4] = {L->rank, L->in, 0, 0}, sb[4] = {L->out,
		    L->rank, 1, 1};
		int nd = 2;
		if (p->ndim == 4) {
			sa[1] = p->shape[1];
			sa[2] = p->shape[2];
			sa[3] = p->shape[3];
			nd = 4;
		}
		snprintf(name, sizeof name, "%s.lora_A.weight", L->name);
		if (add_tensor(f, name, nd, sa, w + L->a) == -1)
			return -1;
		snprintf(name, sizeof name, "%s.lora_B.weight", L->name);
		if (add_tensor(f, name, nd, sb, w + L->b) == -1)
			return -1;
		snprintf(name, sizeof name, "%s.alpha", L->name);
		if (add_tensor(f, name, 0, sa, &L->alpha) == -1)
			return -1;
	}
	if (dm_file_meta_set(f, "dm.kind", "adapter") == -1 ||
	    dm_file_meta_set(f, "dm.arch", dm_arch_name(m->cfg.arch)) == -1 ||
	    dm_model_config_format(&m->cfg, buf, sizeof buf) == -1 ||
	    dm_file_meta_set(f, "dm.config", buf) == -1 ||
	    dm_file_meta_set(f, "dm.lora.targets", l->targets) == -1 ||
	    dm_file_meta_set(f, "dm.version", DM_VERSION) == -1)
		return -1;
	snprintf(buf, sizeof buf, "%d", l->rank);
	if (dm_file_meta_set(f, "dm.lora.rank", buf) == -1)
		return -1;
	snprintf(buf, sizeof buf, "%.9g", l->alpha);
	if (dm_file_meta_set(f, "dm.lora.alpha", buf) == -1)
		return -1;
	snprintf(buf, sizeof buf, "%016llx", (unsigned long long)l->base_hash);
	if (dm_file_meta_set(f, "dm.lora.base", buf) == -1)
		return -1;
	return 0;
}

enum part { PART_A, PART_B, PART_ALPHA };

static int
ends_with(const char *s, const char *suffix, size_t *stem)
{
	size_t n = strlen(s), k = strlen(suffix);

	if (n <= k || strcmp(s + n - k, suffix) != 0)
		return 0;
	*stem = n - k;
	return 1;
}

/* The parameter index of the layer that key (a tensor name without its
 * suffix) names: its own name, a PEFT name ending in ".<layer>", or a
 * kohya name "lora_unet_<layer with '.' -> '_'>". */
static int
find_layer(const struct dm_model *m, const char *key)
{
	size_t kn = strlen(key);
	int best = -1;
	size_t bestlen = 0;
	char name[96];

	for (int i = 0; i < m->nparam; i++) {
		size_t n;
		if (!layer_name(&m->param[i], name, sizeof name))
			continue;
		n = strlen(name);
		if (strcmp(key, name) == 0)
			return i;
		if (kn > n && key[kn - n - 1] == '.' &&
		    strcmp(key + kn - n, name) == 0 && n > bestlen) {
			best = i;
			bestlen = n;
		}
		if (strncmp(key, "lora_unet_", 10) == 0 && kn - 10 == n) {
			size_t j;
			for (j = 0; j < n; j++)
				if (key[10 + j] != (name[j] == '.' ? '_' : name[j]))
					break;
			if (j == n)
				return i;
		}
	}
	return best;
}

/* One tensor's part and layer; -1 with reason if it fits nothing. */
static int
classify(const struct dm_model *m, const char *tname, enum part *part,
    int *param)
{
	static const struct {
		const char *suffix;
		enum part part;
	} sfx[] = {
		{".lora_A.weight", PART_A}, {".lora_B.weight", PART_B},
		{".lora_down.weight", PART_A}, {".lora_up.weight", PART_B},
		{".alpha", PART_ALPHA}
	};
	char key[DM_MAX_NAME + 1];
	size_t stem;

	for (size_t k = 0; k < sizeof sfx / sizeof sfx[0]; k++) {
		if (!ends_with(tname, sfx[k].suffix, &stem))
			continue;
		if (stem >= sizeof key)
			break;
		memcpy(key, tname, stem);
		key[stem] = '\0';
		*part = sfx[k].part;
		if ((*param = find_layer(m, key)) < 0)
			return dm_seterr("adapter tensor '%s' names no linear or "
			    "conv layer of the model", tname);
		return 0;
	}
	return dm_seterr("'%s' is not an adapter tensor (lora_A/lora_B, "
	    "lora_down/lora_up or alpha)", tname);
}

struct found {
	struct dm_tensor *a, *b, *alpha;
};

/* Check the factor shapes of parameter p; *rank receives r. */
static int
check_shapes(const struct dm_param *p, const struct found *F, int *rank)
{
	const struct dm_tensor *a = F->a, *b = F->b;
	char sa[64], sb[64];

	dm_shape_format(sa, sizeof sa, a->ndim, a->shape);
	dm_shape_format(sb, sizeof sb, b->ndim, b->shape);
	if (a->ndim < 1 || a->shape[0] < 1 || a->shape[0] > INT32_MAX)
		return dm_seterr("%s: lora_A %s has rank 0 or no rank axis",
		    p->name, sa);
	int64_t r = a->shape[0];
	int okA = p->ndim == 2 ? a->ndim == 2 && a->shape[1] == p->shape[1] :
	    a->ndim == 4 && a->shape[1] == p->shape[1] &&
	    a->shape[2] == p->shape[2] && a->shape[3] == p->shape[3];
	int okB = b->shape[0] == p->shape[0] && ((b->ndim == 2 &&
	    b->shape[1] == r) || (b->ndim == 4 && b->shape[1] == r &&
	    b->shape[2] == 1 && b->shape[3] == 1));
	if (!okA || !okB) {
		char sp[64];
		dm_shape_format(sp, sizeof sp, p->ndim, p->shape);
		return dm_seterr("%s: factors A %s and B %s do not fit the "
		    "weight %s", p->name, sa, sb, sp);
	}
	*rank = (int)r;
	return 0;
}

int
dm_lora_from_file(struct dm_lora **out, const struct dm_file *f,
    const struct dm_model *m)
{
	struct found *F = NULL;
	struct dm_lora *l = NULL;
	int *ranks = NULL;
	const char *kind = dm_file_meta(f, "dm.kind"), *v;
	double meta_alpha = 0;
	int any = 0;

	*out = NULL;
	if (kind != NULL && strcmp(kind, "adapter") != 0 &&
	    strcmp(kind, "lora") != 0)
		return dm_seterr("the file holds %s, not an adapter", kind);
	if ((v = dm_file_meta(f, "dm.arch")) != NULL &&
	    strcmp(v, dm_arch_name(m->cfg.arch)) != 0)
		return dm_seterr("the adapter is for arch %s, the model is %s",
		    v, dm_arch_name(m->cfg.arch));
	if (m->cfg.arch == DM_ARCH_GMM)
		return dm_seterr("a gmm model has no layers to adapt");
	if ((v = dm_file_meta(f, "dm.lora.alpha")) != NULL &&
	    (dm_parse_double(v, 1e-30, 1e30, &meta_alpha) == -1))
		return dm_errctx("dm.lora.alpha: ");
	F = dm_calloc((size_t)m->nparam + 1, sizeof *F);
	ranks = dm_calloc((size_t)m->nparam + 1, sizeof *ranks);
	if (F == NULL || ranks == NULL)
		goto fail;
	for (int k = 0; k < f->ntensors; k++) {
		struct dm_tensor *t = f->tensors[k];
		enum part part;
		int i;
		if (t->name == NULL)
			continue;
		if (classify(m, t->name, &part, &i) == -1)
			goto fail;
		if (!dm_dtype_is_float(t->dtype)) {
			dm_seterr("%s is %s, not a float tensor", t->name,
			    dm_dtype_name(t->dtype));
			goto fail;
		}
		struct dm_tensor **slot = part == PART_A ? &F[i].a :
		    part == PART_B ? &F[i].b : &F[i].alpha;
		if (*slot != NULL) {
			dm_seterr("two tensors for %s of layer %s", part ==
			    PART_A ? "A" : part == PART_B ? "B" : "alpha",
			    m->param[i].name);
			goto fail;
		}
		*slot = t;
	}
	for (int i = 0; i < m->nparam; i++) {
		if (F[i].a == NULL && F[i].b == NULL) {
			if (F[i].alpha != NULL) {
				dm_seterr("%s: alpha without factors",
				    m->param[i].name);
				goto fail;
			}
			continue;
		}
		if (F[i].a == NULL || F[i].b == NULL) {
			dm_seterr("%s: lora_%s is missing", m->param[i].name,
			    F[i].a == NULL ? "A (lora_down)" : "B (lora_up)");
			goto fail;
		}
		if (check_shapes(&m->param[i], &F[i], &ranks[i]) == -1)
			goto fail;
		if (F[i].alpha != NULL && dm_tensor_numel(F[i].alpha) != 1) {
			dm_seterr("%s: alpha is not a scalar", m->param[i].name);
			goto fail;
		}
		any = 1;
	}
	if (!any) {
		dm_seterr("the file holds no adapter tensors");
		goto fail;
	}
	if ((l = dm_lora_alloc(m, ranks)) == NULL)
		goto fail;
	for (int k = 0; k < l->nlayer; k++) {
		struct dm_lora_layer *L = &l->layer[k];
		const struct found *P = &F[L->param];
		size_t na = (size_t)L->rank * (size_t)L->in;
		size_t nb = (size_t)L->rank * (size_t)L->out;
		for (size_t j = 0; j < na; j++)
			l->w[L->a + j] = (float)dm_tensor_get(P->a, j);
		for (size_t j = 0; j < nb; j++)
			l->w[L->b + j] = (float)dm_tensor_get(P->b, j);
		double al = P->alpha != NULL ? dm_tensor_get(P->alpha, 0) :
		    meta_alpha > 0 ? meta_alpha : L->rank;
		if (!(al > 0) || !isfinite(al)) {
			dm_seterr("%s: alpha %g is not positive", L->name, al);
			goto fail;
		}
		L->alpha = (float)al;
		if (L->rank > l->rank)
			l->rank = L->rank;
	}
	for (size_t j = 0; j < l->n; j++)
		if (!isfinite(l->w[j])) {
			dm_seterr("the adapter holds NaN or Inf");
			goto fail;
		}
	l->alpha = meta_alpha > 0 ? meta_alpha : l->layer[0].alpha;
	if ((v = dm_file_meta(f, "dm.lora.targets")) != NULL)
		snprintf(l->targets, sizeof l->targets, "%s", v);
	if ((v = dm_file_meta(f, "dm.lora.base")) != NULL) {
		char *end;
		l->base_hash = strtoull(v, &end, 16);
		if (*v == '\0' || *end != '\0') {
			dm_seterr("dm.lora.base '%s' is not a hash", v);
			goto fail;
		}
	}
	free(F);
	free(ranks);
	*out = l;
	return 0;
fail:
	free(F);
	free(ranks);
	dm_lora_free(l);
	return -1;
}

int
dm_lora_load(struct dm_lora **out, const char *path,
    const struct dm_model *m)
{
	struct dm_file *f;
	int rc;

	*out = NULL;
	if (dm_file_read(&f, path) == -1)
		return -1;
	rc = dm_lora_from_file(out, f, m);
	dm_file_free(f);
	return rc;
}

/* Extraction */

/* Thin SVD of the row-major matrix D [o, n] (destroyed): U [o, k],
 * s [k], Vt [k, n], k = min(o, n).  Row-major D is column-major D^T, whose
 * SVD is V S U^T: LAPACK's "U" of D^T, read row-major, is Vt, and its
 * "VT", read row-major, is U. */
static int
svd(float *D, int o, int n, float *U, float *s, float *Vt)
{
	int k = o < n ? o : n, info = 0, lwork = -1, *iwork;
	float q, *work;

	if ((iwork = dm_malloc((size_t)8 * (size_t)k * sizeof *iwork)) == NULL)
		return -1;
	sgesdd_("S", &n, &o, D, &n, s, Vt, &n, U, &k, &q, &lwork, iwork,
	    &info, 1);
	if (info != 0) {
		free(iwork);
		return dm_seterr("sgesdd: workspace query failed (%d)", info);
	}
	lwork = (int)q + 1;
	if ((work = dm_malloc((size_t)lwork * sizeof *work)) == NULL) {
		free(iwork);
		return -1;
	}
	sgesdd_("S", &n, &o, D, &n, s, Vt, &n, U, &k, work, &lwork, iwork,
	    &info, 1);
	free(work);
	free(iwork);
	if (info != 0)
		return dm_seterr("sgesdd did not converge (%d)", info);
	return 0;
}

/* Factor layer i of l from D (its delta, [out, in]); err2/norm2 as in
 * dm_lora_from_delta. */
static int
factor_layer(struct dm_lora *l, int i, const float *delta, double *err2,
    double *norm2)
{
	struct dm_lora_layer *L = &l->layer[i];
	int o = (int)L->out, n = (int)L->in, k = o < n ? o : n, r = L->rank;
	size_t on = (size_t)o * (size_t)n;
	float *D, *U, *s, *Vt, *R;
	int rc = 0;

	D = dm_malloc(on * sizeof *D);
	U = dm_malloc((size_t)o * (size_t)k * sizeof *U);
	s = dm_malloc((size_t)k * sizeof *s);
	Vt = dm_malloc((size_t)k * (size_t)n * sizeof *Vt);
	R = dm_malloc(on * sizeof *R);
	if (D == NULL || U == NULL || s == NULL || Vt == NULL || R == NULL) {
		rc = -1;
		goto done;
	}
	memcpy(D, delta, on * sizeof *D);
	if ((rc = svd(D, o, n, U, s, Vt)) == -1)
		goto done;
	/* B = U_r S_r^(1/2) [o, r], A = S_r^(1/2) Vt_r [r, n] */
	for (int a = 0; a < o; a++)
		for (int j = 0; j < r; j++)
			l->w[L->b + (size_t)a * r + j] = U[(size_t)a * k + j] *
			    sqrtf(s[j]);
	for (int j = 0; j < r; j++)
		for (int b = 0; b < n; b++)
			l->w[L->a + (size_t)j * n + b] = sqrtf(s[j]) *
			    Vt[(size_t)j * n + b];
	L->alpha = (float)r;
	memset(R, 0, on * sizeof *R);
	dm_lora_delta(l, NULL, i, 1, R);
	double e = 0, d2 = 0;
	for (size_t j = 0; j < on; j++) {
		double x = delta[j];
		e += (x - R[j]) * (x - R[j]);
		d2 += x * x;
	}
	if (err2 != NULL)
		err2[i] = e;
	if (norm2 != NULL)
		norm2[i] = d2;
done:
	free(D);
	free(U);
	free(s);
	free(Vt);
	free(R);
	return rc;
}

struct dm_lora *
dm_lora_from_delta(const struct dm_model *m, const float *delta,
    const char *targets, int r, double *err2, double *norm2)
{
	struct dm_lora *l;
	int *ranks;
	char name[96];

	if (r < 1) {
		dm_seterr("rank %d: the rank must be at least 1", r);
		return NULL;
	}
	if ((ranks = dm_calloc((size_t)m->nparam + 1, sizeof *ranks)) == NULL)
		return NULL;
	for (int i = 0; i < m->nparam; i++) {
		const struct dm_param *p = &m->param[i];
		const float *d = delta + p->offset;
		size_t j;
		if (!layer_name(p, name, sizeof name) || (targets != NULL &&
		    !dm_lora_match(targets, name)))
			continue;
		if (p->shape[0] > INT32_MAX / 4 || param_in(p) > INT32_MAX / 4) {
			dm_seterr("%s is too large to factor", p->name);
			free(ranks);
			return NULL;
		}
		for (j = 0; j < p->numel && d[j] == 0; j++)
			;
		if (j == p->numel)
			continue;
		int64_t lim = p->shape[0] < param_in(p) ? p->shape[0] :
		    param_in(p);
		ranks[i] = r < lim ? r : (int)lim;
	}
	l = dm_lora_alloc(m, ranks);
	free(ranks);
	if (l == NULL)
		return NULL;
	if (l->nlayer == 0) {
		dm_seterr("no adapted layer differs from the base");
		dm_lora_free(l);
		return NULL;
	}
	l->rank = r;
	l->alpha = r;
	snprintf(l->targets, sizeof l->targets, "%s", targets ? targets : "*");
	l->base_hash = dm_lora_model_hash(m);
	for (int i = 0; i < l->nlayer; i++)
		if (factor_layer(l, i, delta + m->param[l->layer[i].param].offset,
		    err2, norm2) == -1) {
			dm_lora_free(l);
			return NULL;
		}
	return l;
}
