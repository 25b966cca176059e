#!/bin/sh
# test-sample.sh — dm-sample on the exact Gaussian-mixture model.
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1

dm-data gmm --k 4 --dim 2 --model --schedule rf -o g4.st
dm-data gmm --k 4 --dim 2 -n 10 -o data.st

# per-sample noise: rows do not depend on -n, --batch or --threads
for s in euler euler_a ddpm dpm++2m_sde adaptive; do
	dm-sample -q -n 100 --sampler $s --steps 10 -o a.st g4.st
	dm-sample -q -n 10 --batch 3 --threads 1 --sampler $s --steps 10 -o b.st g4.st
	dm-info -pq -t x --rows 0:10 a.st >a.tsv
	dm-info -pq -t x b.st >b.tsv
	check "$s: sample i independent of -n, --batch, --threads" 'cmp -s a.tsv b.tsv'
done
dm-sample -q -n 100 --seed 1 -o c.st g4.st
dm-info -pq -t x --rows 0:10 c.st >c.tsv
check "another seed, other samples" '! cmp -s a.tsv c.tsv'

# --x1: a deterministic sampler is a deterministic map
dm-data gauss --dim 2 -n 50 -o x1.st
dm-sample -q --x1 x1.st --sampler heun --steps 8 -o y1.st g4.st
dm-sample -q --x1 x1.st --sampler heun --steps 8 --seed 7 -o y2.st g4.st
dm-info -pq y1.st >y1.tsv; dm-info -pq y2.st >y2.tsv
check "--x1 with heun is a map" 'cmp -s y1.tsv y2.tsv'
t_out "--x1 keeps the row count" '\[50, 2\]' dm-info y1.st

# NFE and the summary line
t_err "heun 8 steps: 15 NFE" 0 '15 NFE per sample' dm-sample -n 5 --sampler heun --steps 8 -o /dev/null g4.st
t_err "rk4 5 steps: 20 NFE" 0 '20 NFE per sample' dm-sample -n 5 --sampler rk4 --steps 5 -o /dev/null g4.st

# trajectory
dm-sample -q -n 64 --steps 20 --trajectory tr.st -o /dev/null g4.st
t_out "trajectory shape" '^  x +F32 +\[21, 64, 2\]' dm-info tr.st
t_out "trajectory kind" 'kind: trajectory' dm-info tr.st
run dm-info -pq -t t tr.st
check "trajectory times run from 1 to 0" 'head -n 1 "$T/out" | grep -q "^1$" && tail -n 1 "$T/out" | grep -q "^0$"'

# the samples have the mixture's moments: 4 components on a circle of
# radius 3 with std 0.5: mean 0, per-axis variance 9/2 + 0.25 = 4.75
dm-sample -q -n 4000 --sampler heun --steps 30 -o m.st g4.st
run dm-info -s -t x m.st
check "sample mean near 0, std near sqrt(4.75)" "awk '\$1==\"x\" {m=\$10; s=\$11; exit !(m < 0.1 && m > -0.1 && s > 2.1 && s < 2.26)}' '$T/out'"

# errors
t_usage "unknown sampler" 'unknown sampler' dm-sample --sampler plms g4.st
t_exit "steps 0" 2 dm-sample --steps 0 g4.st
t_exit "no model" 2 dm-sample
t_err "missing model" 1 'dm-sample: nope.st: ' dm-sample -o o.st nope.st
t_err "guidance on an unconditional model" 1 'unconditional' dm-sample --guidance 3 --label 1 -o o.st g4.st
t_usage "mask without known" 'go together' dm-sample --mask data.st g4.st
t_err "mask of the wrong shape" 1 'need 2' dm-sample -n 5 --mask x1.st --known x1.st -o o.st g4.st
t_err "data file as a model" 1 'dm-sample: data.st: ' dm-sample -o o.st data.st
t_err "full disk" 1 'dm-sample: /dev/full: ' dm-sample -q -n 5 -o /dev/full g4.st
check "no leftover files" '[ -z "$(ls -A . | grep "^\\.")" ]'
t_out "version" '^dm-sample \(dm toolkit\) ' dm-sample --version
finish
