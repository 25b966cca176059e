#!/bin/sh
# test-reflow.sh — dm-reflow: deterministic pairs of the exact mixture,
# reflow and one-step distillation on the pairs of a linear OT map (which
# they must keep), progressive and consistency distillation, the report,
# bad input.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
RP="$PY $(cd "$(dirname "$0")" && pwd)/reflow.py"
cd "$T" || exit 1
Q="--threads 2 -q"
TR="--batch 256 --lr 5e-3"

dm-data gmm --k 3 --dim 2 --model --schedule rf -o gmm.st 2>/dev/null
dm-data moons -n 2000 -o moons.st 2>/dev/null
dm-data gmm --k 2 --dim 3 --model --schedule rf -o gmm3.st 2>/dev/null
dm-data gmm --k 2 --dim 3 -n 100 -o g3.st 2>/dev/null
dm-train $Q --arch-opts width=16,depth=1 --steps 1 -o f3.st g3.st 2>/dev/null

# pairs: a fixed seed gives the same file, row i from (seed, i)
t_exit "pairs" 0 dm-reflow pairs $Q -n 400 --steps 8 --seed 3 -o p1.st gmm.st
t_exit "pairs again" 0 dm-reflow pairs $Q -n 400 --steps 8 --seed 3 -o p2.st gmm.st
check "same seed, same pairs" "cmp -s p1.st p2.st"
t_exit "pairs, other seed" 0 dm-reflow pairs $Q -n 400 --steps 8 --seed 4 \
    -o p3.st gmm.st
check "other seed, other pairs" "! cmp -s p1.st p3.st"
t_exit "fewer pairs, one thread" 0 dm-reflow pairs -q --threads 1 -n 150 \
    --steps 8 --seed 3 -o p4.st gmm.st
t_out "x0 [400, 2]" 'x0 .*F32.*\[400, 2\]' dm-info p1.st
check "x1 [400, 2] and kind pairs" \
    "grep -q 'x1 .*F32.*\[400, 2\]' $T/out && grep -q 'kind: pairs' $T/out"
dm-info convert -t x1 --rename x1=x -o x1.st p1.st 2>/dev/null
t_exit "the same ODE solved by dm-sample from x1" 0 dm-sample $Q \
    --sampler rk4 --steps 8 --x1 x1.st -o s1.st gmm.st

have_np=0
$PY -c 'import numpy' 2>/dev/null && have_np=1
if [ $have_np -eq 1 ]; then
	t_out "pairs: x0 = dm-sample's end points" '^ok' $RP x0 p1.st s1.st 1e-5
	t_out "pairs: the source is N(0, I)" '^ok' $RP source p1.st
	t_out "pairs: the first 150 rows whatever -n and threads" '^ok' \
	    $RP prefix p4.st p1.st

	# The linear map x0 = A x1 + b, A symmetric positive definite, is the
	# optimal transport map between two Gaussians: its straight lines do
	# not cross, so a flow trained on its pairs reproduces it, and a
	# reflow round on them keeps it.
	$RP linpairs lin.st fresh.st 4000 7 >/dev/null
	t_exit "a flow of the right shape" 0 dm-train $Q --arch-opts \
	    width=64,depth=2 --steps 1 -o init.st moons.st
	run dm-reflow train $Q --pairs lin.st --fresh --train-steps 1500 $TR \
	    --eval-n 500 --eval-steps 1 -o lin2.st init.st
	check "reflow on the pairs of an OT map" "[ $RC -eq 0 ]"
	cp "$T/out" report.tsv
	check "report header" \
	    "head -n 1 report.tsv | grep -q '^model	cost	straightness	div@1\$'"
	check "report rows" "[ \$(wc -l <report.tsv) -eq 3 ] && \
	    cut -f 1 report.tsv | tr '\n' ' ' | grep -q '^model 1-rectified 2-rectified \$'"
	check "round model written" "[ -s lin2-r2.st ] && [ -s lin2.st ]"
	# straightness of the trained flow: small next to its cost (~3.9)
	check "the flow of the OT pairs is straight" \
	    "awk -F '\t' 'NR == 3 && \$2 > 3 && \$2 < 5 && \$3 < 0.05 * \$2 { ok = 1 } END { exit !ok }' report.tsv"
	t_exit "its map in 4 euler steps" 0 dm-sample $Q --steps 4 \
	    --x1 fresh.st -o m4.st lin2.st
	t_out "... is the OT map" '^ok' $RP maperr m4.st fresh.st 0.005
	t_exit "and in one step" 0 dm-sample $Q --steps 1 --x1 fresh.st \
	    -o m1.st lin2.st
	t_out "... too" '^ok' $RP maperr m1.st fresh.st 0.01

	# one-step distillation on the same pairs
	run dm-reflow distill $Q --pairs lin.st --train-steps 1000 $TR \
	    --eval-n 200 --eval-steps 1 -o one.st init.st
	check "distill" "[ $RC -eq 0 ] && cut -f 1 $T/out | tr '\n' ' ' | \
	    grep -q '^model input distilled \$'"
	t_exit "one step of the distilled model" 0 dm-sample $Q --steps 1 \
	    --x1 fresh.st -o d1.st one.st
	t_out "... is the OT map" '^ok' $RP maperr d1.st fresh.st 0.01
fi

# progressive distillation: names, DDIM evaluation, the model runs
t_exit "a v model" 0 dm-train $Q --objective v --schedule cosine \
    --arch-opts width=32,depth=2 --steps 50 --batch 128 -o v.st moons.st
t_out "progressive 8 -> 2" '^progressive-2	' dm-reflow progressive $Q \
    --from 8 --to 2 --train-steps 20 --batch 128 --eval-n 200 \
    --eval-steps 2 -o v2.st v.st moons.st
check "... two rows" "cut -f 1 $T/out | tr '\n' ' ' | grep -q '^model progressive-4 progressive-2 \$'"
t_exit "... samples in 2 DDIM steps" 0 dm-sample $Q --sampler ddim \
    --steps 2 -n 100 -o v2s.st v2.st

# consistency distillation of the exact mixture
t_out "consistency distillation" '^consistency-distilled	-	-	' \
    dm-reflow consistency $Q --teacher gmm.st --arch-opts width=32,depth=2 \
    --train-steps 30 --batch 64 --eval-n 100 --eval-steps 1 -o cd.st moons.st
t_out "... a consistency model" 'cm=1' dm-info cd.st
t_exit "... samples in 2 steps" 0 dm-sample $Q --sampler consistency \
    --steps 2 -n 100 -o cds.st cd.st
t_out "eval of several models" '^v2.st	' dm-reflow eval $Q --eval-n 100 \
    --eval-steps 1,2 v.st v2.st

# bad input
if [ $have_np -eq 1 ]; then
	$RP mismatch p1.st short.st >/dev/null
	t_err "pairs whose x0 and x1 differ in rows" 1 \
	    'short.st: x0 and x1 differ in row count or shape' \
	    dm-reflow train $Q --pairs short.st --train-steps 2 -o z.st init.st
	check "... found before the report" "[ ! -s $T/out ]"
	t_err "pairs of another shape" 1 \
	    'p1.st: x0 has rows of 2 elements; the model takes 3' \
	    dm-reflow distill $Q --pairs p1.st --train-steps 2 -o z.st f3.st
fi
t_err "a teacher of another shape" 1 'moons.st: x has rows of 2 elements; the model takes 3' \
    dm-reflow consistency $Q --teacher gmm3.st --train-steps 2 -o z.st moons.st
t_err "data of another shape" 1 'has rows of 2 elements; the model takes 3' \
    dm-reflow progressive $Q --from 4 --train-steps 2 -o z.st f3.st moons.st
t_usage "zero rounds" '--rounds: 0 rounds' dm-reflow train --rounds 0 \
    -o z.st v.st
t_usage "an odd step count on the way" 'halving 12 steps down to 1 meets the odd count 3' \
    dm-reflow progressive $Q --from 12 -o z.st v.st moons.st
t_usage "--to not below --from" 'not below' dm-reflow progressive $Q \
    --from 4 --to 4 -o z.st v.st moons.st
t_usage "a stochastic pairs solver" 'deterministic solver' dm-reflow pairs \
    --sampler euler_a gmm.st
t_usage "no -o for training" '-o FILE is required' dm-reflow train $Q v.st
t_usage "an unknown command" "'straighten' is not a command" dm-reflow \
    straighten v.st
t_err "a gmm is not trained" 1 'a gmm has no network' dm-reflow train $Q \
    -o z.st gmm.st
dm-train $Q --classes auto --arch-opts width=16,depth=1 --steps 2 \
    -o cond.st moons.st 2>/dev/null
t_err "a conditional model" 1 'cond.st: dm-reflow takes unconditional models' \
    dm-reflow pairs $Q -n 10 -o z.st cond.st
t_err "a missing model" 1 'nope.st: ' dm-reflow eval $Q nope.st
check "nothing written on errors" "[ ! -e z.st ]"
finish
