#!/bin/sh
# demo.sh BUILD — the toolkit from data to samples in about a minute:
# make a 2-D data set, train a flow-matching model, sample it with several
# samplers and step counts, and write pictures and a table of quality
# against the number of network evaluations (NFE).
#
# Output goes to demo/ (DEMO_DIR to change it).  Quality is the Sinkhorn
# divergence (dm-sinkhorn(1)) between 2000 samples and 5000 held-out
# points of the data set: 0 for the same distribution, and it sees every
# feature of a distribution, not only its moments.  Samples of 2000 points
# carry noise of their own: the "data" row is the mean divergence of five
# fresh draws of 2000 points from the data set itself, the floor a perfect
# model would reach (single draws range over a factor of about 4).
set -eu
B=${1:-build}
top=$(pwd)
PATH="$top/$B/bin:$PATH"
out=${DEMO_DIR:-demo}
mkdir -p "$out"
cd "$out"

say() { printf 'demo: %s\n' "$*" >&2; }

# div FILE: the divergence column of dm-sinkhorn's table against held-out
# data, at a marginal tolerance of 1e-2 (within a few per cent of its
# converged value, and quick)
div() {
	dm-sinkhorn --divergence --tol 1e-2 "$1" heldout.st | awk -F '\t' '
	    NR == 1 { for (i = 1; i <= NF; i++) if ($i == "divergence") c = i }
	    NR == 2 { print $c }'
}

say "data: 20000 points of the two-moons set -> $out/data.png"
dm-data moons -n 20000 -o moons.st
dm-view --scatter --labels -o data.png moons.st
dm-data moons -n 5000 --seed 7 -o heldout.st

say "training a flow-matching model (mlp, rf schedule, 3000 steps, ~1 min)"
dm-train --objective flow --schedule rf --log train.tsv -o flow.st moons.st
dm-view --curve --x step --y loss --logy -o loss.png train.tsv

say "sampling: quality against NFE -> $out/quality.tsv, quality.png"
printf 'sampler\tsteps\tnfe\tdivergence\n' >quality.tsv
for k in 11 12 13 14 15; do
	dm-data moons -n 2000 --seed "$k" -o floor.st
	div floor.st
done | awk '{ s += $1 } END { printf "data\t-\t-\t%.6g\n", s / NR }' \
    >>quality.tsv
rm -f floor.st
for s in euler heun dpm++2m; do
	for k in 1 2 4 8 16 32; do
		[ "$s" = heun ] && [ "$k" -eq 1 ] && continue
		dm-sample -q -n 2000 --sampler "$s" --steps "$k" -o "s.st" flow.st
		nfe=$(dm-info s.st | sed -n 's/.*nfe=\([0-9]*\).*/\1/p')
		printf '%s\t%s\t%s\t%s\n' "$s" "$k" "$nfe" "$(div s.st)" \
		    >>quality.tsv
		if [ "$k" -eq 8 ]; then
			dm-view --scatter -o "samples-$s-8.png" s.st
		fi
	done
done
# the plot: one line per sampler against NFE, "-" where it has no run
awk -F '\t' -v OFS='\t' 'NR > 1 && $3 != "-" { v[$3, $1] = $4; seen[$3] = 1 }
    END { print "nfe", "euler", "heun", "dpm++2m"
    n = 0; for (x in seen) X[++n] = x + 0
    for (i = 2; i <= n; i++) for (j = i; j > 1 && X[j - 1] > X[j]; j--) {
	t = X[j]; X[j] = X[j - 1]; X[j - 1] = t }
    for (i = 1; i <= n; i++) { printf "%d", X[i]
	split("euler heun dpm++2m", S, " ")
	for (j = 1; j <= 3; j++) printf "\t%s", ((X[i], S[j]) in v) ? v[X[i], S[j]] : "-"
	print "" } }' quality.tsv >quality-nfe.tsv
dm-view --curve --logx --logy --points -o quality.png quality-nfe.tsv
rm -f s.st quality-nfe.tsv
dm-sample -q -n 64 --steps 32 --trajectory paths.st -o /dev/null flow.st
dm-view --trajectory -o paths.png paths.st

column -t quality.tsv >&2 2>/dev/null || cat quality.tsv >&2
say "pictures in $out/: data.png loss.png quality.png samples-euler-8.png" \
    "samples-heun-8.png samples-dpm++2m-8.png paths.png"
