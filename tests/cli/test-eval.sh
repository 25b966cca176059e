#!/bin/sh
# test-eval.sh — dm-eval: accuracy and FD-classifier of an mlp classifier
# and the raw Fréchet distance against a NumPy/SciPy reading
# (tests/cli/eval_ref.py), labels from every source, bad input.
. "$(dirname "$0")/lib.sh"
ref=$(cd "$(dirname "$0")" && pwd)/eval_ref.py
cd "$T" || exit 1
export OMP_WAIT_POLICY=PASSIVE

dm-data moons -n 600 -o a.st 2>/dev/null
dm-data moons -n 400 --seed 1 --noise 0.2 -o b.st 2>/dev/null
dm-train --objective classifier --schedule rf --arch-opts width=16,depth=1 \
    --steps 40 --batch 64 --threads 1 -q -o c.st a.st 2>/dev/null

# near X Y TOL: |x - y| <= tol (1 + |y|)
near() { [ $# -eq 3 ] && awk -v x="$1" -v y="$2" -v t="$3" 'BEGIN {d = x - y; if (d < 0) d = -d;
    a = y < 0 ? -y : y; exit !(d <= t * (1 + a))}'; }
col() { awk -F '\t' -v c="$1" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == c) k = i}
    NR == 2 {print $k}' "$T/out"; }

t_out "accuracy and fd" "^n	accuracy	n_ref	fd$" dm-eval -c c.st --ref b.st a.st
acc=$(col accuracy) fd=$(col fd)
check "n" "[ \"\$(col n)\" = 600 ] && [ \"\$(col n_ref)\" = 400 ]"
if /usr/bin/python3 -c 'import numpy, scipy' 2>/dev/null; then
	want=$(/usr/bin/python3 "$ref" mlp c.st 0.001 a.st b.st)
	check "accuracy as numpy" "near $acc $(echo "$want" | cut -f 1) 1e-4"
	check "fd-classifier as scipy" "near $fd $(echo "$want" | cut -f 2) 1e-4"
	t_out "raw fd" "fd" dm-eval --ref b.st a.st
	check "raw fd as scipy" "near $(col fd) $(/usr/bin/python3 "$ref" raw a.st b.st) 1e-6"
fi
check "accuracy is a fraction" "near $acc 0.5 1"
t_out "fd of a set with itself" "fd" dm-eval -c c.st --ref a.st a.st
check "is 0" "near $(col fd) 0 1e-6"
t_out "fd symmetric" "fd" dm-eval -c c.st --ref a.st b.st
check "fd(b, a) = fd(a, b)" "near $(col fd) $fd 1e-6"

# labels: --label 0 and --label 1 split the predictions of 2 classes
t_out "label 0" "accuracy" dm-eval -c c.st --label 0 b.st; a0=$(col accuracy)
t_out "label 1" "accuracy" dm-eval -c c.st --label 1 b.st; a1=$(col accuracy)
dm-info convert -t x -o bx.st b.st 2>/dev/null
t_out "no labels: shares" "frac_0	frac_1" dm-eval -v -c c.st --ref a.st - <bx.st
check "label 0 + label 1 = 1" "near \$(awk \"BEGIN {print $a0 + $a1}\") 1 1e-3"
check "label 0 = share predicted 0" "near $a0 \$(col frac_0) 1e-3"
t_out "per class" "acc_0	acc_1" dm-eval -v -c c.st a.st
t_out "--labels file" "accuracy" dm-eval -c c.st --labels a.st a.st
check "same as its own y" "near \$(col accuracy) $acc 1e-9"

# bad input
t_usage "no operand" "no SAMPLES" dm-eval -c c.st
t_usage "nothing to do" "nothing to do" dm-eval a.st
t_usage "both label options" "not both" dm-eval -c c.st --label 0 --labels a.st a.st
t_usage "labels without classifier" "classifier" dm-eval --label 0 --ref a.st a.st
t_usage "bad batch" "--batch" dm-eval -c c.st --batch 0 a.st
t_err "label out of range" 1 "classes 0..1" dm-eval -c c.st --label 2 a.st
t_err "missing file" 1 "^dm-eval: nope.st: " dm-eval -c c.st nope.st
dm-train --objective flow --arch-opts width=16,depth=1 --steps 2 --batch 8 \
    -q -o f.st a.st 2>/dev/null
t_err "not a classifier" 1 "not a classifier" dm-eval -c f.st a.st
dm-data gauss -n 10 --dim 3 -o g3.st 2>/dev/null
t_err "wrong shape" 1 "shape" dm-eval -c c.st g3.st
t_err "raw: wrong shape" 1 "shape" dm-eval --ref g3.st a.st
dm-data gauss -n 1 --dim 2 -o one.st 2>/dev/null
t_err "one row" 1 "2 rows" dm-eval --ref one.st a.st
finish
