#!/bin/sh
# lora.sh [BUILD] — adapt a flow trained on the two moons to the circles:
# low-rank adapters of ranks 1, 2, 4 and 8 against full fine-tuning, for
# several step counts.  Each row: trainable parameters, file size, wall
# time and the Sinkhorn divergence of 4000 samples (dpm++2m, 16 steps) to
# held-out circles, with the base model's own divergence as the starting
# point.  The table goes to OUT/lora.tsv.
#
# Knobs (environment): OUT (default results/lora), BASE_STEPS (default
# 4000), STEPS (the fine-tuning step counts, default "250 500 1000 2000"),
# RANKS (default "1 2 4 8"), THREADS (default 2), SEED.
set -eu
B=${1:-build}
top=$(pwd)
PATH="$top/$B/bin:$PATH"
OUT=${OUT:-results/lora}
BASE_STEPS=${BASE_STEPS:-4000}
STEPS=${STEPS:-250 500 1000 2000}
RANKS=${RANKS:-1 2 4 8}
TH=${THREADS:-2}
SEED=${SEED:-0}
mkdir -p "$OUT"
cd "$OUT"
say() { printf 'lora: %s\n' "$*" >&2; }
C="-q --threads $TH --seed $SEED"

dm-data moons -n 20000 --seed 1 -o moons.st
dm-data circles -n 20000 --seed 2 -o circles.st
dm-data circles -n 4000 --seed 3 -o heldout.st

# div MODEL [ADAPTER]: Sinkhorn divergence of 4000 samples to heldout.st
div() {
	lora=""
	[ $# -gt 1 ] && lora="--lora $2"
	dm-sample $C -n 4000 --sampler dpm++2m --steps 16 $lora "$1" |
	    dm-sinkhorn --divergence - heldout.st | awk -F '\t' '
	    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "divergence") c = i }
	    NR == 2 { print $c }'
}
# timed FILE CMD...: run CMD, its wall seconds in FILE
timed() {
	f=$1; shift
	t0=$(date +%s.%N)
	"$@"
	echo "$(date +%s.%N) $t0" | awk '{printf "%.1f\n", $1 - $2}' >"$f"
}

say "base: flow on the moons ($BASE_STEPS steps)"
timed base.sec dm-train $C --steps "$BASE_STEPS" -o base.st moons.st
printf 'method\trank\tsteps\ttrainable\tfile_bytes\tseconds\tdivergence\n' \
    >lora.tsv
printf 'base\t-\t0\t-\t%s\t%s\t%s\n' "$(wc -c <base.st)" "$(cat base.sec)" \
    "$(div base.st)" >>lora.tsv

for k in $STEPS; do
	say "full fine-tuning, $k steps"
	timed full.sec dm-train $C --init base.st --steps "$k" --warmup 50 \
	    --lr 1e-3 -o "full-$k.st" circles.st
	printf 'full\t-\t%s\tall\t%s\t%s\t%s\n' "$k" "$(wc -c <"full-$k.st")" \
	    "$(cat full.sec)" "$(div "full-$k.st")" >>lora.tsv
	for r in $RANKS; do
		say "rank-$r adapter, $k steps"
		t0=$(date +%s.%N)
		dm-train --threads "$TH" --seed "$SEED" --lora "$r" --base base.st \
		    --steps "$k" --warmup 50 --lr 1e-2 -o "lora-$r-$k.st" \
		    circles.st 2>train.err
		sec=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f\n", $1 - $2}')
		# "... N of M parameters trainable (F%)"
		tr=$(sed -n 's/.* \([0-9]*\) of [0-9]* parameters trainable (\(.*\)).*/\1 (\2)/p' \
		    train.err | head -n 1)
		printf 'lora\t%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$k" "$tr" \
		    "$(wc -c <"lora-$r-$k.st")" "$sec" \
		    "$(div base.st "lora-$r-$k.st")" >>lora.tsv
	done
done
rm -f train.err full.sec base.sec
column -t -s "$(printf '\t')" lora.tsv >&2 || cat lora.tsv >&2
say "table: $OUT/lora.tsv"
