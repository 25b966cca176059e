#!/bin/sh
# test-sinkhorn.sh — dm-sinkhorn: the TSV table and -v, standard input,
# the plan, map and pairing files read back by NumPy (shapes, marginals,
# the map and cost from the plan), the divergence's properties, exit 3 on
# non-convergence, bad input.
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1
export OMP_WAIT_POLICY=PASSIVE

dm-data moons -n 300 -o a.st 2>/dev/null
dm-data moons -n 200 --seed 1 -o b.st 2>/dev/null
dm-data gauss -n 50 --dim 3 -o g3.st 2>/dev/null

# near X Y TOL: |x - y| <= tol (1 + |y|)
near() { [ $# -eq 3 ] && awk -v x="$1" -v y="$2" -v t="$3" 'BEGIN {d = x - y; if (d < 0) d = -d;
    a = y < 0 ? -y : y; exit !(d <= t * (1 + a))}'; }
col() { awk -F '\t' -v c="$1" 'NR == 1 {for (i = 1; i <= NF; i++) if ($i == c) k = i}
    NR == 2 {print $k}' "$T/out"; }

E="--eps-rel 0.01"
t_out "table" "^cost	w	entropic	iterations	marginal_error	converged$" \
    dm-sinkhorn $E a.st b.st
cost=$(col cost) ent=$(col entropic)
check "one row of 6 values" "[ \$(wc -l <out) -eq 2 ] && [ \$(awk -F '\t' 'NR == 2 {print NF}' out) -eq 6 ]"
check "converged" "[ \"\$(col converged)\" = 1 ]"
check "w = sqrt(cost)" "near \$(col w) \$(awk \"BEGIN {printf \\\"%.12g\\\", sqrt($cost)}\") 1e-9"
check "error <= tol" "awk \"BEGIN {exit !(\$(col marginal_error) <= 1e-6)}\""
t_out "stdin for X" "^cost" dm-sinkhorn $E - b.st <a.st
check "same as the file" "[ \"\$(col cost)\" = \"$cost\" ]"
t_out "stdin for Y" "^cost" dm-sinkhorn $E a.st - <b.st
check "same as the file" "[ \"\$(col cost)\" = \"$cost\" ]"
t_out "threads 1" "^cost" dm-sinkhorn $E --threads 1 a.st b.st
check "same at 1 thread" "[ \"\$(col cost)\" = \"$cost\" ]"
t_out "-v" "^epsilon +[0-9.e-]+ \(--eps-rel 0.01" dm-sinkhorn -v $E a.st b.st
check "-v labels" "grep -q '^points          n 300, m 200, d 2$' out && grep -q '^converged       yes' out && grep -q '^time ' out"
t_out "p 1" "^cost" dm-sinkhorn -p 1 $E a.st b.st
check "w = cost for p 1" "[ \"\$(col w)\" = \"\$(col cost)\" ]"

# divergence: a column more; 0 for a cloud with itself; symmetric
t_out "divergence" "^cost	w	entropic	divergence	iterations" \
    dm-sinkhorn --divergence $E a.st b.st
div=$(col divergence)
check "divergence > 0" "awk \"BEGIN {exit !($div > 0)}\""
t_out "divergence b a" "divergence" dm-sinkhorn --divergence $E b.st a.st
check "symmetric" "near \$(col divergence) $div 1e-6"
t_out "divergence a a" "divergence" dm-sinkhorn --divergence $E a.st a.st
check "0 for identical clouds" "near \$(col divergence) 0 1e-9"

# plan, map, pairing, read back by NumPy
t_out "outputs" "^cost" dm-sinkhorn $E --plan P.st --map M.st --pairing J.st \
    a.st b.st
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
	cat >chk.py <<'EOF'
import json, struct, sys
import numpy as np
def load(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        dt = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}[v["dtype"]]
        s, e = v["data_offsets"]
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dt).reshape(v["shape"])
    return out
x, y = load("a.st")["x"].astype(float), load("b.st")["x"].astype(float)
P, M, J = load("P.st")["plan"], load("M.st")["x"], load("J.st")["pairing"]
cost = float(sys.argv[1])
assert P.shape == (300, 200) and M.shape == (300, 2) and J.shape == (300,), (P.shape, M.shape, J.shape)
err = abs(P.sum(1) - 1 / 300).sum() + abs(P.sum(0) - 1 / 200).sum()
assert err <= 2e-6, err
C = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
assert abs((P * C).sum() - cost) <= 1e-6 * cost, ((P * C).sum(), cost)
assert np.allclose(M, P @ y * 300, atol=1e-5), abs(M - P @ y * 300).max()
assert (J == P.argmax(1)).all()
print("ok")
EOF
	check "numpy: shapes, marginals, cost, map, argmax" \
	    "[ \"\$(/usr/bin/python3 chk.py $cost 2>&1)\" = ok ]"
fi
t_out "sample pairing" "^cost" dm-sinkhorn $E --pairing J1.st \
    --pairing-mode sample --seed 4 a.st b.st
t_out "again" "^cost" dm-sinkhorn $E --pairing J2.st --pairing-mode sample \
    --seed 4 a.st b.st
check "reproducible" "cmp -s J1.st J2.st"
t_out "other seed" "^cost" dm-sinkhorn $E --pairing J3.st \
    --pairing-mode sample --seed 5 a.st b.st
check "differs" "! cmp -s J1.st J3.st"

# weights: 3 points at 0 onto 1 and 3 weighted 1/4, 3/4: cost 1/4 + 9 3/4
/usr/bin/python3 - <<'EOF' 2>/dev/null
import numpy as np
np.save("x0.npy", np.zeros((3, 1), np.float32))
np.save("y0.npy", np.array([[1], [3]], np.float32))
np.save("wy.npy", np.array([0.25, 0.75], np.float32))
np.save("wy2.npy", np.array([1, 1], np.float32))
np.save("wneg.npy", np.array([2, -1], np.float32))
np.save("wx.npy", np.array([1, 1, 1], np.float32))
np.save("nan.npy", np.array([[0], [np.nan]], np.float32))
EOF
if [ -e x0.npy ]; then
	t_out "weights" "^cost" dm-sinkhorn --eps 0.5 --weights-y wy.npy x0.npy y0.npy
	check "cost of the forced coupling" "near \$(col cost) 7 1e-9"
	t_err "different mass" 1 "different total mass" dm-sinkhorn \
	    --weights-x wx.npy --weights-y wy2.npy x0.npy y0.npy
	t_err "negative weight" 1 "weight 1 is -1" dm-sinkhorn \
	    --weights-y wneg.npy x0.npy y0.npy
	t_err "weights count" 1 "2 weights for the 3 points" dm-sinkhorn \
	    --weights-x wy.npy x0.npy y0.npy
	t_err "NaN in points" 1 "NaN" dm-sinkhorn nan.npy y0.npy
fi

# not converged: the row still comes, converged 0, exit 3, one warning
t_err "max-iter" 3 "not converged" dm-sinkhorn --max-iter 2 --eps-rel 0.001 \
    a.st b.st
check "row with converged 0" "[ \"\$(col converged)\" = 0 ] && [ \"\$(col iterations)\" = 2 ]"

# --exact: the assignment problem.  A shuffled copy is matched back at cost
# 0; in 1-D the sorted matching is optimal (closed form); Sinkhorn's
# transport cost at a small epsilon is above the exact optimum and close.
dm-data moons -n 200 --seed 2 -o c.st 2>/dev/null
t_out "exact" "^cost	w	entropic	iterations	marginal_error	converged$" \
    dm-sinkhorn --exact --pairing match.st b.st c.st
ex=$(col cost)
check "exact: iterations 0, converged" "[ \"\$(col iterations)\" = 0 ] && [ \"\$(col converged)\" = 1 ]"
t_out "sinkhorn at small eps" "^cost" dm-sinkhorn --eps-rel 1e-4 --tol 1e-4 b.st c.st
check "exact <= sinkhorn cost <= exact + 5%" "awk \"BEGIN {exit !($ex <= \$(col cost) && \$(col cost) <= 1.05 * $ex)}\""
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
	/usr/bin/python3 - >w1d.txt 2>/dev/null <<'EOF'
import json, struct, numpy as np
def put(path, name, a):
    a = np.ascontiguousarray(a)
    dt = {"float32": "F32", "int64": "I64"}[str(a.dtype)]
    h = json.dumps({name: {"dtype": dt, "shape": list(a.shape),
        "data_offsets": [0, a.nbytes]}}).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + a.tobytes())
r = np.random.default_rng(5)
x = r.normal(size=(150, 3)).astype(np.float32)
p = r.permutation(150)
put("px.st", "x", x)
put("py.st", "x", x[p])
np.savetxt("perm.txt", np.argsort(p), fmt="%d")
u = r.normal(size=257).astype(np.float32)
v = (r.normal(size=257) * 2 + 1).astype(np.float32)
put("u.st", "x", u[:, None])
put("v.st", "x", v[:, None])
print("%.12g" % np.mean((np.sort(u).astype(float) - np.sort(v)) ** 2))
EOF
	t_out "exact, shuffled copy" "^cost" dm-sinkhorn --exact --pairing pp.st px.st py.st
	check "cost 0" "[ \"\$(col cost)\" = 0 ]"
	check "pairing undoes the shuffle" "dm-info -pq -t pairing pp.st | cmp -s - perm.txt"
	t_out "exact, 1-D" "^cost" dm-sinkhorn --exact u.st v.st
	check "1-D: mean squared gap of the sorted samples" "near \$(col cost) $(cat w1d.txt) 1e-6"
fi
t_err "exact, n != m" 1 "as many points" dm-sinkhorn --exact a.st b.st
t_usage "exact with divergence" "--exact" dm-sinkhorn --exact --divergence b.st c.st
t_usage "exact with eps" "--exact" dm-sinkhorn --exact --eps 1 b.st c.st

# bad input
t_err "dimensions differ" 1 "3 coordinates.*2" dm-sinkhorn g3.st a.st
t_err "missing file" 1 "^dm-sinkhorn: nope.st: " dm-sinkhorn nope.st a.st
t_usage "one operand" "two point clouds" dm-sinkhorn a.st
t_usage "both stdin" "both be standard input" dm-sinkhorn - -
t_usage "p 3" "^dm-sinkhorn: -p: " dm-sinkhorn -p 3 a.st b.st
t_usage "eps 0" "epsilon must be > 0" dm-sinkhorn --eps 0 a.st b.st
t_usage "eps negative" "--eps-rel" dm-sinkhorn --eps-rel -1 a.st b.st
t_usage "two epsilons" "one of" dm-sinkhorn --eps 1 --blur 0.1 a.st b.st
t_usage "bad mode" "argmax or sample" dm-sinkhorn --pairing-mode best a.st b.st
t_usage "bad tol" "--tol" dm-sinkhorn --tol 0 a.st b.st
dm-info convert -t x -o empty.npy a.st 2>/dev/null
/usr/bin/python3 -c 'import numpy as np; np.save("e.npy", np.zeros((0, 2), np.float32))' 2>/dev/null
[ -e e.npy ] && t_err "empty cloud" 1 "no points" dm-sinkhorn e.npy a.st
finish
