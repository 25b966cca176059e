/* gradcheck.h — central finite-difference checks of backward passes.
 *
 * The scalar under test is L = sum_i out_i * r_i (r fixed random), so the
 * backward pass is run with dout = r and its gradients are compared with
 * (L(p + h) - L(p - h)) / 2h, L summed in double.  Usage:
 *
 *   static void fwd(void *ctx) { ...forward into ctx->out... }
 *   gradcheck("linear dw", w, dw, nw, fwd, &ctx, out, r, nout, 1e-2, 2e-2);
 *
 * Checks at most GRADCHECK_MAX entries (spread over the array) and fails the
 * current test, naming the entry, when
 * |num - ana| > tol * max(1, |num|, |ana|). */
#ifndef DM_GRADCHECK_H
#define DM_GRADCHECK_H

#include <math.h>
#include <stddef.h>

#include "test.h"

#define GRADCHECK_MAX 96

static inline double
gradcheck_loss(const float *out, const float *r, size_t n)
{
	double s = 0;

	for (size_t i = 0; i < n; i++)
		s += (double)out[i] * r[i];
	return s;
}

/* Returns the number of mismatches (also reported through CHECK). */
static inline int
gradcheck_at(const char *what, const char *file, int line, float *p,
    const float *grad, size_t n, void (*fwd)(void *), void *ctx,
    const float *out, const float *r, size_t nout, double h, double tol)
{
	size_t step = n > GRADCHECK_MAX ? n / GRADCHECK_MAX : 1;
	int bad = 0;

	for (size_t i = 0; i < n; i += step) {
		float save = p[i];
		p[i] = (float)(save + h);
		fwd(ctx);
		double lp = gradcheck_loss(out, r, nout);
		p[i] = (float)(save - h);
		fwd(ctx);
		double lm = gradcheck_loss(out, r, nout);
		p[i] = save;
		/* the step actually taken, after rounding to float */
		double hh = ((double)(float)(save + h) - (double)(float)(save - h)) / 2;
		double num = (lp - lm) / (2 * hh), ana = grad[i];
		double scale = fmax(1, fmax(fabs(num), fabs(ana)));
		if (fabs(num - ana) > tol * scale) {
			if (bad++ < 5)
				dm_test_fail(file, line, "%s[%zu]: analytic %.8g, "
				    "numeric %.8g", what, i, ana, num);
		}
	}
	fwd(ctx);	/* leave the forward state as it was */
	return bad;
}

#define gradcheck(what, p, g, n, fwd, ctx, out, r, nout, h, tol)          \
	gradcheck_at(what, __FILE__, __LINE__, p, g, n, fwd, ctx, out, r, \
	    nout, h, tol)

#endif
