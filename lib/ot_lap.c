/* ot_lap.c — exact optimal transport between two clouds of n points with
 * uniform weights: the linear assignment problem (SPEC.md §7).
 *
 * With a = b = 1/n the optimal plan of min <P, C> is a permutation matrix
 * divided by n (Birkhoff–von Neumann), so exact OT is
 *
 *   min over permutations s of (1/n) sum_i C_i,s(i),   C_ij = ||x_i - y_j||^p.
 *
 * Solved by the shortest augmenting path algorithm of Jonker and Volgenant,
 * "A shortest augmenting path algorithm for dense and sparse linear
 * assignment problems", Computing 38 (1987): column reduction with
 * reduction transfer, two rounds of augmenting row reduction, then a
 * Dijkstra search from each row still free over the reduced costs
 * C_ij - v_j (column potentials v).  O(n^3) in the worst case.
 *
 * Costs, in double: for d <= LAP_DENSE_D each row C_i. is computed when it
 * is needed, from the points (memory O(n d); a sweep of a row is then
 * cheaper than reading it from a stored matrix); for larger d the n x n
 * matrix is computed once (8 n^2 bytes: 8 MB at n = 1000).  n is capped at
 * LAP_MAX either way (the time is cubic).
 *
 * For p = 2 the clouds are first centred and scaled to unit RMS radius:
 * ||x_i - y_j||^2 = ||x_i||^2 + ||y_j||^2 - 2 x_i.y_j, and over
 * permutations only sum_i x_i.y_s(i) varies, which a translation of
 * either cloud changes by a constant and a positive scaling multiplies.
 * The optimum is the same, but the initial potentials are far better when
 * the clouds are apart (a displaced cloud made the searches 10x longer).
 * The reported cost is computed from the given points.
 *
 * Everything but the dense matrix (whose entries are independent) runs
 * on one thread, so the result does not depend on the number of threads. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "dm_base.h"
#include "dm_ot.h"

#define LAP_MAX     32768
#define LAP_DENSE_D 8

struct lap {
	int n, d, p;
	double *C;     /* [n, n] when dense, else NULL */
	double *xs;    /* [n, d] the first cloud, transformed */
	double *ys;    /* [d, n] the second, transformed, by coordinate */
	double *buf;   /* [n] the row computed last */
};

/* C_i. [n], computed into out: the sweep over j vectorises. */
static void
lap_row_compute(const struct lap *L, int i, double *out)
{
	const double *xi = L->xs + (size_t)i * L->d;
	int n = L->n;

	for (int j = 0; j < n; j++)
		out[j] = 0;
	for (int k = 0; k < L->d; k++) {
		const double *yk = L->ys + (size_t)k * n;
		double xik = xi[k];
		#pragma omp simd
		for (int j = 0; j < n; j++) {
			double e = xik - yk[j];
			out[j] += e * e;
		}
	}
	if (L->p == 1)
		#pragma omp simd
		for (int j = 0; j < n; j++)
			out[j] = sqrt(out[j]);
}

/* Row i of C: in the matrix, or computed into L->buf (valid until the
 * next call). */
static const double *
lap_row(struct lap *L, int i)
{
	if (L->C != NULL)
		return L->C + (size_t)i * L->n;
	lap_row_compute(L, i, L->buf);
	return L->buf;
}

/* The clouds as doubles in L (for p = 2 centred and scaled, see above),
 * and the matrix when dense. */
static void
lap_points(struct lap *L, const float *x, const float *y)
{
	int n = L->n, d = L->d;
	double sx = 1, sy = 1;

	for (size_t k = 0; k < (size_t)n * d; k++)
		L->xs[k] = x[k];
	for (int j = 0; j < n; j++)
		for (int k = 0; k < d; k++)
			L->ys[(size_t)k * n + j] = y[(size_t)j * d + k];
	if (L->p == 2) {
		double ssx = 0, ssy = 0;
		for (int k = 0; k < d; k++) {
			double mx = 0, my = 0;
			for (int i = 0; i < n; i++) {
				mx += L->xs[(size_t)i * d + k];
				my += L->ys[(size_t)k * n + i];
			}
			mx /= n;
			my /= n;
			for (int i = 0; i < n; i++) {
				double *a = &L->xs[(size_t)i * d + k];
				double *b = &L->ys[(size_t)k * n + i];
				*a -= mx;
				*b -= my;
				ssx += *a * *a;
				ssy += *b * *b;
			}
		}
		if (ssx > 0)
			sx = sqrt(n / ssx);
		if (ssy > 0)
			sy = sqrt(n / ssy);
		for (size_t k = 0; k < (size_t)n * d; k++) {
			L->xs[k] *= sx;
			L->ys[k] *= sy;
		}
	}
	if (L->C != NULL) {
		#pragma omp parallel for schedule(static)
		for (int i = 0; i < n; i++)
			lap_row_compute(L, i, L->C + (size_t)i * n);
	}
}

/* Column reduction and reduction transfer (JV's initialisation):
 * v_j = min_i C_ij; each column goes to the row of its minimum if that
 * row is still free; a row that got exactly one column passes its slack
 * to it.  Invariant from here on: the column x_i of an assigned row i
 * minimises C_ij - v_j over j.  x [n] row -> column, y [n] column -> row
 * (-1 = free).  Returns the number of free rows, listed in free_rows. */
static int
lap_reduce(struct lap *L, int *x, int *y, double *v, int *free_rows,
    unsigned char *unique)
{
	int n = L->n, nfree = 0;

	for (int j = 0; j < n; j++) {
		v[j] = INFINITY;
		y[j] = -1;
	}
	for (int i = 0; i < n; i++) {
		const double *Ci = lap_row(L, i);
		x[i] = -1;
		unique[i] = 1;
		for (int j = 0; j < n; j++)
			if (Ci[j] < v[j]) {
				v[j] = Ci[j];
				y[j] = i;
			}
	}
	for (int j = n - 1; j >= 0; j--) {
		int i = y[j];
		if (x[i] < 0) {
			x[i] = j;
		} else {
			unique[i] = 0;
			y[j] = -1;
		}
	}
	for (int i = 0; i < n; i++) {
		if (x[i] < 0) {
			free_rows[nfree++] = i;
		} else if (unique[i]) {
			const double *Ci = lap_row(L, i);
			int j1 = x[i];
			double min = INFINITY;
			for (int j = 0; j < n; j++)
				if (j != j1 && Ci[j] - v[j] < min)
					min = Ci[j] - v[j];
			v[j1] -= min - (Ci[j1] - v[j1]);
		}
	}
	return nfree;
}

/* Augmenting row reduction (an auction without epsilon): each free row
 * takes the column of its least reduced cost u1, lowering that column's
 * potential by the gap to the second least u2, and evicts the column's
 * row, which bids again at once when the potential did drop (u1 < u2)
 * and after this pass otherwise.  Near-equal bids can trade a column many
 * times for tiny drops, so the pass stops lowering after as many bids as
 * it had free rows (the searches are cheaper than such a price war).
 * Returns the number of rows left free (in free_rows). */
static int
lap_augment_rows(struct lap *L, int nfree, int *free_rows, int *x, int *y,
    double *v)
{
	int n = L->n, cur = 0, left = 0, bids = 0;

	while (cur < nfree) {
		int i = free_rows[cur++], j1 = 0, j2 = -1, i0;
		const double *Ci = lap_row(L, i);
		double u1 = Ci[0] - v[0], u2 = INFINITY;

		for (int j = 1; j < n; j++) {
			double h = Ci[j] - v[j];
			if (h < u2) {
				if (h >= u1) {
					u2 = h;
					j2 = j;
				} else {
					u2 = u1;
					u1 = h;
					j2 = j1;
					j1 = j;
				}
			}
		}
		i0 = y[j1];
		if (++bids <= nfree) {
			int lowers = u1 < u2;
			if (lowers)
				v[j1] -= u2 - u1;
			else if (i0 >= 0 && j2 >= 0) {
				j1 = j2;
				i0 = y[j2];
			}
			if (i0 >= 0) {
				if (lowers)
					free_rows[--cur] = i0;
				else
					free_rows[left++] = i0;
			}
		} else if (i0 >= 0) {
			free_rows[left++] = i0;
		}
		x[i] = j1;
		y[j1] = i;
	}
	return left;
}

/* One step of the search: dd_j = min(dd_j, C_ij - w_j - h), pr_j = i
 * where it dropped.  Branch-free, so that it vectorises. */
static void
lap_sweep(int n, const double *Ci, const double *w, double h, int i,
    double *dd, double *pr)
{
	double di = i;

	#pragma omp simd
	for (int j = 0; j < n; j++) {
		double t = Ci[j] - w[j] - h, e = dd[j], q = pr[j];
		q = t < e ? di : q;
		e = t < e ? t : e;
		dd[j] = e;
		pr[j] = q;
	}
}

/* min_j dd_j, in four independent chains (a vectorised min reduction
 * would need -ffinite-math-only). */
static double
lap_min(int n, const double *dd)
{
	double m0 = INFINITY, m1 = INFINITY, m2 = INFINITY, m3 = INFINITY;
	int j;

	for (j = 0; j + 4 <= n; j += 4) {
		m0 = dd[j] < m0 ? dd[j] : m0;
		m1 = dd[j + 1] < m1 ? dd[j + 1] : m1;
		m2 = dd[j + 2] < m2 ? dd[j + 2] : m2;
		m3 = dd[j + 3] < m3 ? dd[j + 3] : m3;
	}
	for (; j < n; j++)
		m0 = dd[j] < m0 ? dd[j] : m0;
	m0 = m1 < m0 ? m1 : m0;
	m2 = m3 < m2 ? m3 : m2;
	return m2 < m0 ? m2 : m0;
}

/* Shortest path in reduced costs C_ij - v_j from the free row i0 to a free
 * column (Dijkstra over columns), then the path flipped into x and y.
 * Reaching column jm at distance m, the next row is i = y_jm, whose least
 * reduced cost is at jm (the invariant), so the distance through i to
 * column j is C_ij - v_j - h with h = C_i,jm - v_jm - m.  Each step sweeps
 * one row over all columns (lap_sweep): a final column has w_j = -inf
 * (w is v otherwise) and search distance +inf, so no flag is tested; the
 * predecessor row is kept as a double beside the distance.  At the end the final columns get v_j += d_j - d_end, which
 * keeps every row's least reduced cost at its own column.  Work: w, dd,
 * df, pr [n] doubles, fin [n] ints. */
static void
lap_path(struct lap *L, int i0, int *x, int *y, double *v, double *w,
    double *dd, double *df, double *pr, int *fin)
{
	int n = L->n, nfin = 0, i = i0, j = -1;
	double h = 0, m = 0;

	for (int k = 0; k < n; k++) {
		w[k] = v[k];
		dd[k] = INFINITY;
	}
	for (;;) {
		const double *Ci = lap_row(L, i);
		if (j >= 0)
			h = Ci[j] - v[j] - m;
		lap_sweep(n, Ci, w, h, i, dd, pr);
		m = lap_min(n, dd);
		for (j = 0; dd[j] != m; j++)
			;
		df[j] = m;
		if (y[j] < 0)
			break;
		fin[nfin++] = j;
		dd[j] = INFINITY;
		w[j] = -INFINITY;
		i = y[j];
	}
	for (;;) {	/* flip the path from the free column j back to i0 */
		int t;
		i = (int)pr[j];
		y[j] = i;
		t = x[i];
		x[i] = j;
		if (i == i0)
			break;
		j = t;
	}
	for (int k = 0; k < nfin; k++)
		v[fin[k]] += df[fin[k]] - m;
}

/* The assignment x [n] of L; the work arrays are iw [3n] ints, dw [5n]
 * doubles, bw [n] bytes. */
static void
lap_solve(struct lap *L, int *x, int *iw, double *dw, unsigned char *bw)
{
	size_t n = (size_t)L->n;
	int *y = iw, *free_rows = iw + n, *fin = iw + 2 * n;
	double *v = dw, *w = dw + n, *dd = dw + 2 * n, *df = dw + 3 * n;
	double *pr = dw + 4 * n;
	int nfree;

	if (n == 1) {
		x[0] = 0;
		return;
	}
	nfree = lap_reduce(L, x, y, v, free_rows, bw);
	for (int round = 0; round < 2 && nfree > 0; round++)
		nfree = lap_augment_rows(L, nfree, free_rows, x, y, v);
	for (int f = 0; f < nfree; f++)
		lap_path(L, free_rows[f], x, y, v, w, dd, df, pr, fin);
}

int
dm_ot_assign(const float *x, const float *y, int64_t n, int d, int p,
    int64_t *perm, double *cost)
{
	struct lap L = {.n = (int)n, .d = d, .p = p};
	double *dw = NULL, sum = 0;
	int *iw = NULL, *row = NULL;
	unsigned char *bw = NULL;
	size_t nd;
	int rc = -1;

	if (n <= 0)
		return dm_seterr("assignment: n = %lld points (need at least 1)",
		    (long long)n);
	if (n > LAP_MAX)
		return dm_seterr("assignment: n = %lld points is too many for the "
		    "exact solver (at most %d)", (long long)n, LAP_MAX);
	if (d <= 0)
		return dm_seterr("assignment: dimension %d (need at least 1)", d);
	if (p != 1 && p != 2)
		return dm_seterr("assignment: cost exponent p = %d (1 or 2)", p);
	if (x == NULL || y == NULL)
		return dm_seterr("assignment: no points");
	if (dm_mul_size((size_t)n, (size_t)d, &nd) == -1)
		return -1;
	for (size_t k = 0; k < nd; k++)
		if (!isfinite(x[k]) || !isfinite(y[k]))
			return dm_seterr("assignment: row %zu of %s is not "
			    "finite", k / d, isfinite(x[k]) ? "Y" : "X");
	if (d > LAP_DENSE_D)
		L.C = dm_malloc((size_t)n * (size_t)n * sizeof *L.C);
	L.xs = dm_malloc(nd * sizeof *L.xs);
	L.ys = dm_malloc(nd * sizeof *L.ys);
	L.buf = dm_malloc((size_t)n * sizeof *L.buf);
	iw = dm_malloc(3 * (size_t)n * sizeof *iw);
	row = dm_malloc((size_t)n * sizeof *row);
	dw = dm_malloc(5 * (size_t)n * sizeof *dw);
	bw = dm_malloc((size_t)n);
	if ((d > LAP_DENSE_D && L.C == NULL) || L.xs == NULL || L.ys == NULL ||
	    L.buf == NULL || iw == NULL || row == NULL || dw == NULL ||
	    bw == NULL)
		goto out;
	lap_points(&L, x, y);
	lap_solve(&L, row, iw, dw, bw);
	for (int64_t i = 0; i < n; i++) {
		const float *xi = x + (size_t)i * d, *yj = y + (size_t)row[i] * d;
		double s = 0;
		for (int k = 0; k < d; k++)
			s += ((double)xi[k] - yj[k]) * ((double)xi[k] - yj[k]);
		sum += p == 2 ? s : sqrt(s);
		if (perm != NULL)
			perm[i] = row[i];
	}
	if (cost != NULL)
		*cost = sum / (double)n;
	rc = 0;
out:
	free(L.C);
	free(L.xs);
	free(L.ys);
	free(L.buf);
	free(iw);
	free(row);
	free(dw);
	free(bw);
	return rc;
}
