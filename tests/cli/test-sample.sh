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
# ddim is deterministic by default (eta 0), ddpm and --eta 1 are not
dm-sample -q --x1 x1.st --sampler ddim --steps 8 -o y1.st g4.st
dm-sample -q --x1 x1.st --sampler ddim --steps 8 --seed 7 -o y2.st g4.st
dm-info -pq y1.st >y1.tsv; dm-info -pq y2.st >y2.tsv
check "--x1 with ddim is a map" 'cmp -s y1.tsv y2.tsv'
dm-sample -q --x1 x1.st --sampler ddim --eta 1 --steps 8 -o y3.st g4.st
dm-sample -q --x1 x1.st --sampler ddim --eta 1 --steps 8 --seed 7 -o y4.st g4.st
dm-info -pq y3.st >y3.tsv; dm-info -pq y4.st >y4.tsv
check "ddim --eta 1 draws noise" '! cmp -s y3.tsv y4.tsv'
dm-sample -q --x1 x1.st --sampler ddpm --steps 8 -o y5.st g4.st
dm-info -pq y5.st >y5.tsv
check "... as ddpm does (to float rounding)" '! cmp -s y1.tsv y5.tsv && paste y3.tsv y5.tsv | awk "{ d = \$1 - \$3; e = \$2 - \$4; if (d * d + e * e > 1e-8) bad = 1 } END { exit bad }"'
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

# guidance on an exact two-class mixture, N((-0.5, 0), I) and N((0.5, 0),
# I) with weights 1/2 (written here with its classes: gmm.classes):
# the class-0 conditional has P(x_1 < 0) = Phi(0.5) = 0.6915
python3 - gc.st gu.st <<'PY'
import json, struct, sys
def write(path, classes):
    t = {"gmm.weights": ("F64", [2], [0.5, 0.5]),
         "gmm.means": ("F64", [2, 2], [-0.5, 0, 0.5, 0]),
         "gmm.covs": ("F64", [2, 2, 2], [1, 0, 0, 1, 1, 0, 0, 1])}
    if classes:
        t["gmm.classes"] = ("I64", [2], [0, 1])
    head = {"__metadata__": {"dm.kind": "model", "dm.arch": "gmm",
            "dm.prediction": "x0", "dm.schedule": "linear",
            "dm.shape": "[2]"}}
    data = b""
    for name, (dt, shape, v) in t.items():
        b = struct.pack("<%d%s" % (len(v), "d" if dt == "F64" else "q"), *v)
        head[name] = {"dtype": dt, "shape": shape,
                      "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    h = json.dumps(head).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + data)
write(sys.argv[1], True)
write(sys.argv[2], False)
PY
left() {	# left FILE: the fraction of samples with x_1 < 0
	dm-info -pq -t x "$1" | awk '{n++; if ($1 < 0) l++} END {printf "%.4f\n", l / n}'
}
near() {	# near VALUE WANT TOL
	awk -v v="$1" -v w="$2" -v t="$3" 'BEGIN {exit !(v - w < t && w - v < t)}'
}
G="-q -n 4000 --threads 1 --sampler ddpm --steps 50"
dm-sample $G --label 0 -o c1.st gc.st
check "conditional (w = 1): P(x < 0) = 0.6915" "near $(left c1.st) 0.6915 0.037"
dm-sample $G --label 0 --guidance 0 -o c0.st gc.st
check "w = 0: unconditional, 1/2" "near $(left c0.st) 0.5 0.04"
dm-sample $G --label 0 --guidance 3 -o c3.st gc.st
check "w = 3 sharpens toward the class" "awk 'BEGIN {exit !($(left c3.st) > 0.75)}'"
dm-sample $G --label 1 --guidance 3 --negative 0 -o cn.st gc.st
check "negative label pushes away from it" "awk 'BEGIN {exit !($(left cn.st) < 0.2)}'"
dm-sample $G --classifier gc.st --label 0 -o k1.st gu.st
check "classifier guidance, scale 1: the conditional" "near $(left k1.st) 0.6915 0.037"
dm-sample $G --classifier gc.st --classifier-scale 3 --label 0 -o k3.st gu.st
check "classifier scale 3 sharpens" "awk 'BEGIN {exit !($(left k3.st) > 0.75)}'"

dm-info -pq -t x k1.st >k1.tsv
dm-data gauss --dim 1 -n 4000 -o zeros.st
python3 - <<'PY'
import json, struct
def labels(path, v):
    n = len(v)
    h = json.dumps({"y": {"dtype": "I64", "shape": [n],
                          "data_offsets": [0, 8 * n]}}).encode()
    h += b" " * (-len(h) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h +
                           struct.pack("<%dq" % n, *v))
labels("y0.st", [0] * 4000)
labels("y3.st", [0, 1, 3, 0, 1])
labels("y01.st", [0, 1] * 50)
PY
dm-sample $G --classifier gc.st --labels y0.st -o k1b.st gu.st
dm-info -pq -t x k1b.st >k1b.tsv
check "--labels all 0 equals --label 0" 'cmp -s k1.tsv k1b.tsv'
dm-sample $G -n 100 --guidance 2 --labels y01.st -o la.st gc.st
dm-sample $G -n 100 --guidance 2 --label all -o lb.st gc.st
check "--label all: classes 0, 1, 0, 1, ... (x and y)" 'cmp -s la.st lb.st'
t_usage "--label all and --labels" 'not both' dm-sample --label all --labels y01.st gc.st
t_err "--label all on an unconditional model" 1 'unconditional' dm-sample -n 5 --label all -o o.st gu.st
t_err "label outside the classes" 1 'model has 2 classes' dm-sample -n 5 --label 2 -o o.st gc.st
t_err "negative label outside the classes" 1 'model has 2 classes' dm-sample -n 5 --label 0 --negative 7 -o o.st gc.st
t_err "labels file outside the classes" 1 'label 3 out of range 0\.\.1' dm-sample -n 5 --labels y3.st -o o.st gc.st
t_err "x1 of the wrong shape" 1 'rows of the model' dm-sample --x1 zeros.st -o o.st gc.st

# a tiny trained classifier of the 2-component mixture (means (3, 0) and
# (-3, 0), labels = components) guides the exact unconditional denoiser
dm-data gmm --k 2 --dim 2 -n 1000 -o d2.st
dm-data gmm --k 2 --dim 2 --model --schedule linear -o g2.st
dm-data gmm --k 2 --dim 3 --model --schedule linear -o g3.st
dm-train -q --threads 1 --objective classifier --schedule linear \
    --arch-opts width=32,depth=1 --steps 200 --batch 64 -o clf.st d2.st
dm-sample $G -n 500 --sampler euler --steps 20 --classifier clf.st \
    --classifier-scale 3 --label 1 -o t1.st g2.st
check "trained classifier: label 1 (x < 0) wins" "awk 'BEGIN {exit !($(left t1.st) > 0.75)}'"
t_err "classifier label out of range" 1 'classifier has 2 classes' dm-sample -n 5 --classifier clf.st --label 2 -o o.st g2.st
t_err "a denoiser is not a classifier" 1 'not a classifier' dm-sample -n 5 --classifier gu.st --label 0 -o o.st g2.st
t_err "classifier of another shape" 1 'data shape differs' dm-sample -n 5 --classifier clf.st --label 0 -o o.st g3.st
t_usage "classifier without a label" 'needs a target class' dm-sample --classifier clf.st g2.st
t_err "classifier of another schedule" 1 'schedule .* differs' dm-sample -n 5 --classifier clf.st --label 0 -o o.st g4.st

# score distillation: points from N(0, I) end at the modes of 4 narrow
# components (std 0.2) on the circle of radius 3
dm-data gmm --k 4 --dim 2 --std 0.2 --model --schedule rf -o g4s.st
dm-data gauss --dim 2 -n 40 --seed 3 -o init.st
dm-sample -q --threads 1 --sds init.st --sds-t 0.02,0.3 -o sds.st g4s.st
t_out "sds keeps the shape" '\[40, 2\]' dm-info sds.st
dm-info -pq -t x sds.st >sds.tsv
check "sds: every point within 0.1 of a mean" "awk '{a = (\$1 < 0 ? -\$1 : \$1); b = (\$2 < 0 ? -\$2 : \$2); if (a < b) {t = a; a = b; b = t}; if ((a - 3)^2 + b^2 > 0.01) bad++} END {exit bad > 0}' sds.tsv"
t_usage "sds with --x1" 'no --x1' dm-sample --sds init.st --x1 init.st g4.st
t_usage "bad --sds-t" 'sds-t' dm-sample --sds init.st --sds-t 0.5,0.2 g4.st
t_err "sds start of the wrong shape" 1 'rows of the model' dm-sample --sds data.st -o o.st g3.st

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
