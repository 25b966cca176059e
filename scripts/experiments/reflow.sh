#!/bin/sh
# reflow.sh [BUILD] — straightening and distillation on real runs:
#   moons (Gaussian source) and 8gaussians -> moons (domain transfer):
#   1-, 2- and 3-rectified flows, one-step distillation on 1- and
#   2-rectified pairs; on moons also progressive distillation (to 2 and 1
#   DDIM steps) and consistency models (trained and distilled).
# Each model gets a row: transport cost E|x1 - x0|^2, straightness S and
# the Sinkhorn divergence to held-out data at 1, 2, 4 and 16 steps
# (dm-reflow(1), "The report").  The table goes to OUT/reflow.tsv.
#
# Knobs (environment): OUT (default results/reflow), STEPS (training steps
# of the first flow, default 6000), RSTEPS (steps per reflow or
# distillation round, default 4000), N (pairs per round, default 20000),
# EVAL_N (report samples, default 2000), THREADS (default 2), SEED.
# About 40 minutes on two cores at the defaults.
set -eu
B=${1:-build}
top=$(pwd)
PATH="$top/$B/bin:$PATH"
OUT=${OUT:-results/reflow}
STEPS=${STEPS:-6000}
RSTEPS=${RSTEPS:-4000}
N=${N:-20000}
EVAL_N=${EVAL_N:-2000}
TH=${THREADS:-2}
SEED=${SEED:-0}
mkdir -p "$OUT"
cd "$OUT"
say() { printf 'reflow: %s\n' "$*" >&2; }
C="-q --threads $TH --seed $SEED"
R="$C -n $N --train-steps $RSTEPS --eval-n $EVAL_N --heldout heldout.st"
start=$(date +%s)
lap() { say "$1 ($(($(date +%s) - start)) s so far)"; }

dm-data moons -n 40000 --seed 1 -o all.st
dm-data split --test-n 10000 --seed 1 -o train.st -O test.st all.st
# the report's held-out points: 2000 of the test rows (the divergence's
# work grows with the product of the two sizes)
dm-data split --test-n 2000 --seed 2 -o /dev/null -O heldout.st test.st
dm-data 8gaussians -n 30000 --seed 2 -o 8g.st

# table rows: "set<TAB>model<TAB>..." collected from the reports
printf 'set\tmodel\tcost\tstraightness\tdiv@1\tdiv@2\tdiv@4\tdiv@16\n' \
    >reflow.tsv
keep() {	# keep SET [NAME]: append a report's rows but its header and
		# "input" row, naming the "distilled" row NAME
	awk -F '\t' -v OFS='\t' -v set="$1" -v d="${2:-distilled}" '
	    NR > 1 && $1 != "input" { if ($1 == "distilled") $1 = d
	    print set, $0 }' >>reflow.tsv
}

for set in moons 8g-moons; do
	src=""
	[ "$set" = 8g-moons ] && src="--source 8g.st"
	lap "$set: 1-rectified flow ($STEPS steps)"
	[ -e "$set-1.st" ] ||	# kept from an interrupted run
	    dm-train $C $src --steps "$STEPS" --batch 512 -o "$set-1.st" train.st
	lap "$set: two reflow rounds"
	dm-reflow train $R $src --rounds 2 -o "$set-rf.st" "$set-1.st" |
	    keep "$set"
	lap "$set: one-step distillation of the 1- and 2-rectified flows"
	dm-reflow distill $R $src -o "$set-d1.st" "$set-1.st" |
	    keep "$set" distilled-from-1
	dm-reflow distill $R $src -o "$set-d2.st" "$set-rf-r2.st" |
	    keep "$set" distilled-from-2
done

lap "moons: progressive distillation of the 1-rectified flow, 16 -> 1 DDIM steps"
dm-reflow progressive $C --from 16 --to 1 --train-steps "$RSTEPS" \
    --eval-n "$EVAL_N" --heldout heldout.st -o moons-pd.st moons-1.st train.st |
    keep moons
lap "moons: consistency distillation and consistency training"
dm-reflow consistency $C --teacher moons-1.st --train-steps "$RSTEPS" \
    --eval-n "$EVAL_N" --heldout heldout.st -o moons-cd.st train.st | keep moons
dm-train $C --objective consistency --steps "$STEPS" --batch 512 \
    -o moons-ct.st train.st
dm-reflow eval $C --eval-n "$EVAL_N" --heldout heldout.st moons-ct.st |
    sed 's/moons-ct.st/consistency-trained/' | keep moons

lap "done"
column -t -s "$(printf '\t')" reflow.tsv >&2 || cat reflow.tsv >&2
say "table: $OUT/reflow.tsv"
