/* team.c — a small team of threads for work of a few microseconds.
 *
 * A network evaluated on one sample is a chain of matrix-vector products
 * of one or two microseconds each.  Split across cores, each core keeps
 * its share of the weights in its own cache, but the cores must meet
 * after every product: an OpenMP region with passive waiting (the tools'
 * default, see dm_cli.h) wakes its threads through the kernel, which
 * costs more than the product.  This team's helpers wait for work by
 * spinning on a shared counter for a bounded time (DM_TEAM_SPIN seconds)
 * and only then sleep on a condition variable, so that back-to-back
 * calls meet in well under a microsecond while an idle team leaves the
 * cores alone.  Members meet inside a job with dm_team_barrier. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "dm_base.h"
#include "dm_cli.h"
#include "nn_internal.h"

#define DM_TEAM_SPIN 2e-4	/* seconds a helper spins before it sleeps */

struct dm_team {
	int n;                          /* members, the caller is member 0 */
	pthread_t *tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic unsigned gen;           /* job number, bumped per dm_team_run */
	_Atomic int sleepers;           /* helpers waiting on cv */
	_Atomic int done;               /* helpers finished with job gen */
	_Atomic int quit;
	void (*fn)(void *, int);
	void *arg;
	/* barrier: arrivals count up to n; the last one flips the phase */
	_Atomic int arrived;
	_Atomic unsigned phase;
};

static inline void
relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Spin until *p != old; after `budget` seconds return 0 (gave up). A
 * budget < 0 spins for ever, yielding the core after every 2^14 polls
 * (about half a millisecond) in case the awaited thread lost its core. */
static int
spin_while(_Atomic unsigned *p, unsigned old, double budget)
{
	for (unsigned long i = 1;; i++) {
		if (atomic_load_explicit(p, memory_order_acquire) != old)
			return 1;
		relax();
		if ((i & 255) == 0) {
			if (budget < 0) {
				if ((i & 16383) == 0)
					sched_yield();
			} else if (i == 256)
				budget += dm_now();
			else if (dm_now() > budget)
				return 0;
		}
	}
}

static void *
helper(void *p)
{
	struct dm_team *T = p;
	int me;
	unsigned seen = 0;

	pthread_mutex_lock(&T->mu);
	me = atomic_fetch_add(&T->done, 1) + 1;	/* 1 .. n-1, see team_new */
	pthread_mutex_unlock(&T->mu);
	for (;;) {
		if (!spin_while(&T->gen, seen, DM_TEAM_SPIN)) {
			pthread_mutex_lock(&T->mu);
			atomic_fetch_add(&T->sleepers, 1);
			while (atomic_load(&T->gen) == seen)
				pthread_cond_wait(&T->cv, &T->mu);
			atomic_fetch_sub(&T->sleepers, 1);
			pthread_mutex_unlock(&T->mu);
		}
		seen = atomic_load_explicit(&T->gen, memory_order_acquire);
		if (atomic_load(&T->quit))
			return NULL;
		T->fn(T->arg, me);
		atomic_fetch_add_explicit(&T->done, 1, memory_order_release);
	}
}

struct dm_team *
dm_team_new(int n)
{
	struct dm_team *T;
	int started = 0;

	if (n < 2 || (T = calloc(1, sizeof *T)) == NULL)
		return NULL;
	if ((T->tid = calloc((size_t)n, sizeof *T->tid)) == NULL) {
		free(T);
		return NULL;
	}
	T->n = n;
	pthread_mutex_init(&T->mu, NULL);
	pthread_cond_init(&T->cv, NULL);
	for (int i = 1; i < n; i++) {
		if (pthread_create(&T->tid[i], NULL, helper, T) != 0)
			break;
		started++;
	}
	/* each helper takes its member number from `done`; wait for all */
	while (atomic_load(&T->done) < started)
		sched_yield();
	atomic_store(&T->done, 0);
	if (started < n - 1) {
		T->n = started + 1;
		dm_team_free(T);
		return NULL;
	}
	return T;
}

void
dm_team_free(struct dm_team *T)
{
	if (T == NULL)
		return;
	pthread_mutex_lock(&T->mu);
	atomic_store(&T->quit, 1);
	atomic_fetch_add(&T->gen, 1);
	pthread_cond_broadcast(&T->cv);
	pthread_mutex_unlock(&T->mu);
	for (int i = 1; i < T->n; i++)
		pthread_join(T->tid[i], NULL);
	pthread_cond_destroy(&T->cv);
	pthread_mutex_destroy(&T->mu);
	free(T->tid);
	free(T);
}

int
dm_team_size(const struct dm_team *T)
{
	return T ? T->n : 1;
}

void
dm_team_run(struct dm_team *T, void (*fn)(void *, int), void *arg)
{
	if (T == NULL) {
		fn(arg, 0);
		return;
	}
	T->fn = fn;
	T->arg = arg;
	atomic_store_explicit(&T->done, 0, memory_order_relaxed);
	/* sequentially consistent with the helpers' `sleepers` and `gen`:
	 * either this sees a sleeper, or that sleeper sees the new job */
	atomic_fetch_add(&T->gen, 1);
	if (atomic_load(&T->sleepers) > 0) {
		pthread_mutex_lock(&T->mu);
		pthread_cond_broadcast(&T->cv);
		pthread_mutex_unlock(&T->mu);
	}
	fn(arg, 0);
	for (unsigned long i = 1; atomic_load_explicit(&T->done,
	    memory_order_acquire) < T->n - 1; i++) {
		relax();
		if ((i & 16383) == 0)
			sched_yield();
	}
}

void
dm_team_barrier(struct dm_team *T)
{
	if (T == NULL)
		return;
	unsigned ph = atomic_load_explicit(&T->phase, memory_order_relaxed);
	if (atomic_fetch_add_explicit(&T->arrived, 1, memory_order_acq_rel) ==
	    T->n - 1) {
		atomic_store_explicit(&T->arrived, 0, memory_order_relaxed);
		atomic_fetch_add_explicit(&T->phase, 1, memory_order_release);
	} else
		spin_while(&T->phase, ph, -1);
}
