#!/bin/sh
# demo.sh BUILD — the toolkit from data to samples in about a minute:
# make a 2-D data set, train a flow-matching model, sample it with several
# samplers and step counts, and write pictures and a table of quality
# against the number of network evaluations (NFE).
#
# Output goes to demo/ (DEMO_DIR to change it).  Quality is the distance
# between the first two moments of 2000 samples and of the data,
# |mean_s - mean_d| + ||cov_s - cov_d||_F (0 for a perfect match of the
# moments; not a full distance between distributions).
set -eu
B=${1:-build}
top=$(pwd)
PATH="$top/$B/bin:$PATH"
out=${DEMO_DIR:-demo}
mkdir -p "$out"
cd "$out"

say() { printf 'demo: %s\n' "$*" >&2; }

# moments FILE: "mx my cxx cxy cyy" of tensor x
moments() {
	dm-info -pq -t x "$1" | awk '{n++; sx += $1; sy += $2; sxx += $1*$1;
	    sxy += $1*$2; syy += $2*$2}
	    END {mx = sx/n; my = sy/n;
	    printf "%.6f %.6f %.6f %.6f %.6f\n", mx, my, sxx/n - mx*mx,
	    sxy/n - mx*my, syy/n - my*my}'
}

say "data: 20000 points of the two-moons set -> $out/data.png"
dm-data moons -n 20000 -o moons.st
dm-view --scatter --labels -o data.png moons.st
ref=$(moments moons.st)

say "training a flow-matching model (mlp, rf schedule, 3000 steps, ~1 min)"
dm-train --objective flow --schedule rf --log train.tsv -o flow.st moons.st
dm-view --curve --x step --y loss --logy -o loss.png train.tsv

say "sampling: quality against NFE -> $out/quality.tsv"
printf 'sampler\tsteps\tnfe\tmoment_error\n' >quality.tsv
for s in euler heun dpm++2m; do
	for k in 1 2 4 8 16 32; do
		[ "$s" = heun ] && [ "$k" -eq 1 ] && continue
		dm-sample -q -n 2000 --sampler "$s" --steps "$k" -o "s.st" flow.st
		nfe=$(dm-info s.st | sed -n 's/.*nfe=\([0-9]*\).*/\1/p')
		err=$(printf '%s\n%s\n' "$ref" "$(moments s.st)" | awk '
		    NR == 1 {for (i = 1; i <= 5; i++) r[i] = $i}
		    NR == 2 {dm = sqrt(($1-r[1])^2 + ($2-r[2])^2);
		    dc = sqrt(($3-r[3])^2 + 2*($4-r[4])^2 + ($5-r[5])^2);
		    printf "%.4f", dm + dc}')
		printf '%s\t%s\t%s\t%s\n' "$s" "$k" "$nfe" "$err" >>quality.tsv
		if [ "$k" -eq 8 ]; then
			dm-view --scatter -o "samples-$s-8.png" s.st
		fi
	done
done
rm -f s.st
dm-sample -q -n 64 --steps 32 --trajectory paths.st -o /dev/null flow.st
dm-view --trajectory -o paths.png paths.st

column -t quality.tsv >&2 2>/dev/null || cat quality.tsv >&2
say "pictures in $out/: data.png loss.png samples-euler-8.png" \
    "samples-heun-8.png samples-dpm++2m-8.png paths.png"
