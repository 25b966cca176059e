#!/bin/sh
# test-noise.sh — dm-noise: the one-shot formula against values computed
# here with awk, determinism, the chain against the one-shot moments, errors.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3

# mkdata FILE N D VALUE|seq: a safetensors file with x [N, D] F32 (all VALUE,
# or 0, 1, 2, ... for "seq") and y [N] I64, written by hand with python3
mkdata() {
	"$PY" - "$@" <<'PYEOF'
import json, struct, sys
path, n, d, v = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
vals = [float(i) if v == 'seq' else float(v) for i in range(n * d)]
x = struct.pack('<%df' % (n * d), *vals)
y = struct.pack('<%dq' % n, *range(n))
h = json.dumps({'__metadata__': {'dm.kind': 'data'},
    'x': {'dtype': 'F32', 'shape': [n, d], 'data_offsets': [0, len(x)]},
    'y': {'dtype': 'I64', 'shape': [n], 'data_offsets': [len(x), len(x) + len(y)]}}).encode()
h += b' ' * (-len(h) % 8)
open(path, 'wb').write(struct.pack('<Q', len(h)) + h + x + y)
PYEOF
}

D=$FIX/data.st

# t = 0 is the data itself (linear: alpha 1, sigma 0)
run dm-noise -t 0 -o "$T/t0.st" "$D"
run dm-info -p -t x "$T/t0.st"
cp "$T/out" "$T/t0.tsv"
run dm-info -p -t x "$D"
check "t=0 is the data" "cmp -s '$T/out' '$T/t0.tsv'"

# x_t = alpha x0 + sigma eps with eps written by --with-eps (rf: alpha 0.7, sigma 0.3)
t_exit "rf -t 0.3 --with-eps" 0 dm-noise --schedule rf -t 0.3 --with-eps -o "$T/rf.st" "$D"
dm-info -p -t x "$D" | tail -n +2 >"$T/x0"
dm-info -p -t x "$T/rf.st" | tail -n +2 >"$T/xt"
dm-info -p -t eps "$T/rf.st" | tail -n +2 >"$T/eps"
check "x_t = 0.7 x0 + 0.3 eps" "paste '$T/x0' '$T/xt' '$T/eps' | awk -F'\t' '{
	for (j = 1; j <= 2; j++) { d = \$(2+j) - (0.7*\$j + 0.3*\$(4+j)); if (d > 1e-5 || d < -1e-5) bad = 1 }
	n++ } END { exit bad || n != 8 }'"
t_out "t tensor" '\[8\]' dm-info -t t "$T/rf.st"
t_out "labels passed through" '^ *y +I64' dm-info "$T/rf.st"
t_out "dm.noise recorded" 'dm.noise = t=0.3 schedule=rf' dm-info "$T/rf.st"

# linear at t = 0.5: alpha^2 = prod (1 - beta_i), i <= 500
run dm-noise -t 0.5 --with-eps -o "$T/lin.st" "$D"
dm-info -p -t x "$T/lin.st" | tail -n +2 >"$T/xt"
dm-info -p -t eps "$T/lin.st" | tail -n +2 >"$T/eps"
check "linear t=0.5 closed form" "paste '$T/x0' '$T/xt' '$T/eps' | awk -F'\t' 'BEGIN {
	p = 1; for (i = 1; i <= 500; i++) p *= 1 - (1e-4 + (i-1)/999*(0.02-1e-4)); a = sqrt(p); s = sqrt(1-p) }
	{ for (j = 1; j <= 2; j++) { d = \$(2+j) - (a*\$j + s*\$(4+j)); if (d > 1e-5 || d < -1e-5) bad = 1 } }
	END { exit bad }'"

# sample i's noise does not depend on N: the first 10 rows of 1000 equal a 10-row file
if "$PY" -c 'import json, struct' 2>/dev/null; then
	mkdata "$T/big.st" 1000 3 seq
	mkdata "$T/small.st" 10 3 seq
	for m in "-t 0.4" "--t-uniform" "--chain -t 0.4"; do
		dm-noise $m --seed 3 "$T/big.st" -o "$T/b.st"
		dm-noise $m --seed 3 "$T/small.st" -o "$T/s.st"
		dm-info -p --rows 0:10 -t x "$T/b.st" >"$T/b.tsv"
		dm-info -p -t x "$T/s.st" >"$T/s.tsv"
		check "rows do not depend on N ($m)" "cmp -s '$T/b.tsv' '$T/s.tsv' && [ \$(wc -l <'$T/s.tsv') -eq 11 ]"
	done
	dm-noise -t 0.4 --seed 4 "$T/small.st" -o "$T/s4.st"
	dm-info -p -t x "$T/s4.st" >"$T/s4.tsv"
	dm-noise -t 0.4 --seed 3 "$T/small.st" -o "$T/s.st"
	dm-info -p -t x "$T/s.st" >"$T/s.tsv"
	check "another seed, other noise" "! cmp -s '$T/s4.tsv' '$T/s.tsv'"

	# the chain and the one-shot formula agree in mean and variance
	# (x0 = 2 everywhere, 4000 x 1 samples, 5 standard errors)
	mkdata "$T/c.st" 4000 1 2
	for sched in linear:0.3 linear:0.8 cosine:0.5; do
		s=${sched%:*} t=${sched#*:}
		for how in "" "--chain"; do
			dm-noise $how --schedule "$s" -t "$t" "$T/c.st" -o "$T/c.out"
			run dm-info -s -t x "$T/c.out"
			check "$s t=$t $how: mean and std" "awk -v s=$s -v t=$t 'BEGIN {
				if (s == \"linear\") { p = 1; for (i = 1; i <= t*1000+0.5; i++) p *= 1 - (1e-4 + (i-1)/999*(0.02-1e-4)) }
				else { pi = atan2(0, -1); c = cos((t+0.008)/1.008*pi/2); c0 = cos(0.008/1.008*pi/2); p = c*c/(c0*c0) }
				a = sqrt(p); sg = sqrt(1-p); n = 4000 }
				\$1 == \"x\" { m = \$(NF-3); sd = \$(NF-2); dm = m - 2*a; ds = sd - sg
				if (dm < 0) dm = -dm; if (ds < 0) ds = -ds
				ok = dm <= 5*sg/sqrt(n) && ds <= 5*sg/sqrt(2*n) }
				END { exit !ok }' '$T/out'"
		done
	done
fi

# sweep: x [K+1, N, 2], t = 0, 0.25, ..., 1, kind trajectory, row 0 the data
run dm-noise --sweep 4 -o "$T/sw.st" "$D"
t_out "sweep shape" 'x +F32 +\[5, 8, 2\]' dm-info "$T/sw.st"
t_out "sweep kind" 'kind: trajectory' dm-info "$T/sw.st"
run dm-info -p -t t "$T/sw.st"
check "sweep times" "[ \"\$(tail -n +2 '$T/out' | tr '\n' ' ')\" = '0 0.25 0.5 0.75 1 ' ]"
run dm-noise --chain --sweep 4 -o "$T/swc.st" "$D"
t_out "chain sweep" 'x +F32 +\[5, 8, 2\]' dm-info "$T/swc.st"

# a t file, and uniform t
run dm-noise --sweep 4 --with-eps -o "$T/tt.st" "$D"
dm-noise --t-uniform --with-eps -o "$T/u.st" "$D"
t_exit "--t-file FILE:NAME" 0 dm-noise --t-file "$T/u.st:t" -o "$T/f.st" "$D"
run dm-info -p -t x "$T/u.st"; cp "$T/out" "$T/u.tsv"
run dm-info -p -t x "$T/f.st"
check "same t, same noise" "cmp -s '$T/out' '$T/u.tsv'"

# errors
t_err "t out of range" 2 'out of range' dm-noise -t 1.5 "$D"
t_err "t not a number" 2 "not a number" dm-noise -t 0.5x "$D"
t_exit "no time" 2 dm-noise "$D"
t_exit "two time modes" 2 dm-noise -t 0.5 --sweep 3 "$D"
t_exit "no file" 2 dm-noise -t 0.5
t_err "bad schedule" 2 'unknown schedule' dm-noise --schedule nope -t 0.5 "$D"
t_err "chain off the grid" 2 'not on the chain' dm-noise --chain --schedule linear:T=10 -t 0.55 "$D"
t_err "missing file" 1 'nothere' dm-noise -t 0.5 "$T/nothere.st"
t_err "t file of the wrong length" 1 'elements' dm-noise --t-file "$T/tt.st" "$D"
if "$PY" -c 'import json' 2>/dev/null; then
	"$PY" - "$T/nan.st" <<'PYEOF'
import json, struct, sys
v = [0.0] * 20; v[13] = float('nan')
x = struct.pack('<20f', *v)
h = json.dumps({'x': {'dtype': 'F32', 'shape': [10, 2], 'data_offsets': [0, 80]}}).encode()
h += b' ' * (-len(h) % 8)
open(sys.argv[1], 'wb').write(struct.pack('<Q', len(h)) + h + x)
PYEOF
	t_err "NaN in the data" 1 'x: row 6 has NaN' dm-noise -t 0.5 "$T/nan.st" -o "$T/n.st"
	check "nothing written" "[ ! -e '$T/n.st' ]"
fi
finish
