#!/bin/sh
# ot_cfm.sh [BUILD] — the minibatch OT coupling of flow matching (OT-CFM):
#   8gaussians (source) -> moons (data), one flow trained with
#   --coupling independent and one with --coupling ot (same steps, batch,
#   seed), each sampled with 1, 2 and 4 Euler steps and with 16 RK4 steps
#   (close to the model's exact ODE map).
# Each row, from dm-reflow(1)'s report ("The report"): the transport cost
# E|x1 - x0|^2 of the generated pairs (source point x1, sample x0), the
# straightness S along the same trajectories, and the Sinkhorn divergence
# of the samples to held-out moons.  A last row, "ot-reference", gives
# the transport cost <P, C> of the entropic plan between source and
# held-out points (dm-sinkhorn's default blur 0.05, tolerance 1e-4;
# close to their exact W2^2): about the least cost a map between the two
# distributions can have.  The table goes to OUT/ot_cfm.tsv.
#
# Knobs (environment): OUT (default results/ot_cfm), STEPS (training
# steps, default 2000), BATCH (default 256), WIDTH (of the mlp, default
# 128), EVAL_N (report samples and held-out points, default 1000),
# THREADS (default 2), SEED.  A few minutes on two idle cores at the
# defaults.
set -eu
B=${1:-build}
top=$(pwd)
PATH="$top/$B/bin:$PATH"
OUT=${OUT:-results/ot_cfm}
STEPS=${STEPS:-2000}
BATCH=${BATCH:-256}
WIDTH=${WIDTH:-128}
EVAL_N=${EVAL_N:-1000}
TH=${THREADS:-2}
SEED=${SEED:-0}
mkdir -p "$OUT"
cd "$OUT"
say() { printf 'ot_cfm: %s\n' "$*" >&2; }
C="-q --threads $TH --seed $SEED"
start=$(date +%s)
lap() { say "$1 ($(($(date +%s) - start)) s so far)"; }

dm-data moons -n 20000 --seed 1 -o all.st
dm-data split --test-n "$EVAL_N" --seed 1 -o train.st -O test.st all.st
dm-data 8gaussians -n 20000 --seed 2 -o src.st
dm-data 8gaussians -n "$EVAL_N" --seed 3 -o src-eval.st

printf 'coupling\tsteps\tcost\tstraightness\tdivergence\n' >ot_cfm.tsv
# row COUPLING STEPS: the report's second line (model, cost, S, div@k)
# as a table row
row() {
	awk -F '\t' -v OFS='\t' -v c="$1" -v k="$2" '
	    NR == 2 { print c, k, $2, $3, $4 }' >>ot_cfm.tsv
}
E="$C --source src.st --eval-n $EVAL_N --heldout test.st"
for c in independent ot; do
	lap "flow with --coupling $c ($STEPS steps, batch $BATCH)"
	dm-train $C --source src.st --coupling "$c" --steps "$STEPS" \
	    --batch "$BATCH" --arch-opts width="$WIDTH" -o "fm-$c.st" train.st
	for k in 1 2 4; do
		dm-reflow eval $E --sampler euler --steps "$k" \
		    --eval-steps "$k" "fm-$c.st" | row "$c" "$k"
	done
	dm-reflow eval $E --sampler rk4 --steps 16 --eval-sampler rk4 \
	    --eval-steps 16 "fm-$c.st" | row "$c" "16 rk4"
done
dm-sinkhorn --tol 1e-4 src-eval.st test.st | awk -F '\t' -v OFS='\t' '
    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "cost") c = i }
    NR == 2 { print "ot-reference", "-", $c, "-", "-" }' >>ot_cfm.tsv

lap "done"
column -t -s "$(printf '\t')" ot_cfm.tsv >&2 || cat ot_cfm.tsv >&2
say "table: $OUT/ot_cfm.tsv"
