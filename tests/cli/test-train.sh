#!/bin/sh
# test-train.sh — dm-train: resume bit-identity (--until and SIGINT),
# thread determinism, logs, bad input, the OT coupling.
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1
# small networks keep this quick; OpenMP threads sleep rather than spin
export OMP_WAIT_POLICY=PASSIVE
N="--arch-opts width=32,depth=1"

dm-data moons -n 2000 -o moons.st 2>/dev/null
dm-data moons -n 300 --seed 7 -o val.st 2>/dev/null
A="$N --steps 200 --batch 64 --warmup 20 --val-every 50 --threads 2 -q"

# straight run, then the same run stopped at 100 and resumed
t_exit "straight 200 steps" 0 dm-train $A -o a.st moons.st
t_exit "stop at 100" 0 dm-train $A --until 100 --ckpt b.ckpt -o b.st moons.st
check "no model before the end" "[ ! -e b.st ]"
check "checkpoint written" "[ -s b.ckpt ]"
t_exit "resume to 200" 0 dm-train $A --resume b.ckpt -o b.st moons.st
check "resumed model is bit-identical" "cmp -s a.st b.st"

# a second straight run is identical (same --threads)
t_exit "again" 0 dm-train $A -o a2.st moons.st
check "same seed, same bytes" "cmp -s a.st a2.st"
t_exit "other seed" 0 dm-train $A --seed 1 -o a3.st moons.st
check "other seed, other bytes" "! cmp -s a.st a3.st"

# SIGINT mid-run: exit 130 and a checkpoint; resuming gives the same model
L="$N --steps 20000 --batch 16 --warmup 20 --threads 2 -q"
t_exit "long straight" 0 dm-train $L -o l.st moons.st
dm-train $L --ckpt s.ckpt -o s.st moons.st 2>s.err &
pid=$!
sleep 1
kill -INT $pid
wait $pid
RC=$?
if [ "$RC" -eq 130 ]; then ok; else bad "SIGINT exits 130"; fi
check "SIGINT wrote the checkpoint" "[ -s s.ckpt ] && [ ! -e s.st ]"
check "SIGINT message" "grep -q 'interrupted at step' s.err"
t_exit "resume after SIGINT" 0 dm-train $L --resume s.ckpt -o s.st moons.st
check "SIGINT + resume is bit-identical" "cmp -s l.st s.st"

# --resume refuses another configuration, other data
t_err "resume other lr" 1 "other options" \
    dm-train $A --lr 0.001 --resume b.ckpt -o x.st moons.st
t_err "resume other data" 1 "other options" \
    dm-train $A --resume b.ckpt -o x.st val.st
t_err "resume a model file" 1 "not a checkpoint" \
    dm-train $A --resume a.st -o x.st moons.st

# the model file and the log
t_out "model metadata" "dm.train.objective = flow" dm-info a.st
t_exit "log with validation" 0 dm-train $A --val val.st --log log.tsv \
    -o v.st moons.st
check "log header" "head -n 1 log.tsv | grep -q '^step	loss	val_loss	lr	grad_norm	seconds$'"
check "log rows" "[ \$(wc -l <log.tsv) -eq 5 ]"
check "val loss recorded" "dm-info v.st | grep -q dm.train.val_loss"
t_exit "dm-view plots the log" 0 dm-view --curve -o log.png log.tsv
t_exit "val-frac" 0 dm-train $A --val-frac 0.1 -o vf.st moons.st

# the objectives, weightings and t samplings run
for ob in eps x0 v score; do
	t_exit "objective $ob" 0 dm-train --objective $ob $N --steps 20 \
	    --batch 32 -q -o o.st moons.st
done
t_exit "classifier" 0 dm-train --objective classifier $N --steps 20 \
    --batch 32 -q -o c.st moons.st
t_out "classifier head" "head=classifier" dm-info c.st
t_exit "conditional" 0 dm-train --classes auto --cfg-drop 0.2 $N --steps 20 \
    --batch 32 -q -o cond.st moons.st
t_out "conditional classes" "dm.classes = 2" dm-info cond.st
for w in uniform snr min-snr:2 trunc-snr sigma2; do
	t_exit "weighting $w" 0 dm-train --objective v --schedule cosine \
	    --weighting $w $N --steps 10 --batch 32 -q -o w.st moons.st
done
for ts in discrete logit-normal logit-normal:0.5,1.5; do
	t_exit "t-sampling $ts" 0 dm-train --t-sampling $ts $N --steps 10 \
	    --batch 32 -q -o w.st moons.st
done
dm-data gauss -n 500 --seed 3 -o src.st 2>/dev/null
t_exit "flow from a source file" 0 dm-train --source src.st $N --steps 20 \
    --batch 32 -q -o sf.st moons.st
t_exit "init from a model" 0 dm-train --init a.st $N --steps 10 --batch 32 \
    -q -o i.st moons.st

# bad input: one line, exit 1 or 2
t_err "lr 0" 2 "lr" dm-train --lr 0 -o x.st moons.st
t_err "lr negative" 2 "lr" dm-train --lr -1 -o x.st moons.st
t_err "unknown objective" 2 "unknown objective" \
    dm-train --objective velocity -o x.st moons.st
t_err "unknown arch" 2 "arch" dm-train --arch resnet -o x.st moons.st
t_err "unknown weighting" 2 "weighting" dm-train --weighting foo -o x.st moons.st
t_err "bad arch-opts" 2 "arch-opts" dm-train --arch-opts wide=3 -o x.st moons.st
t_err "unet on vectors" 1 "unet takes images" \
    dm-train --arch unet -o x.st moons.st
t_err "missing file" 1 "nope.st" dm-train -o x.st nope.st
dm-data gauss --dim 3 -n 10 -o g3.st 2>/dev/null
t_err "source of another size" 1 "elements" \
    dm-train --source g3.st -o x.st moons.st
t_err "labels absent" 1 "no tensor 'y'" dm-train --classes 2 -o x.st src.st
t_err "one class" 2 "not 0, 2 or more" dm-train --classes 1 -o x.st moons.st
python3 - <<'EOF' 2>/dev/null
import struct, json
def st(path, tensors):
    hdr = {}; off = 0; blobs = b''
    for name, (dt, shape, data) in tensors.items():
        hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data); blobs += data
    h = json.dumps(hdr).encode(); h += b' ' * (-len(h) % 8)
    open(path, 'wb').write(struct.pack('<Q', len(h)) + h + blobs)
x = struct.pack('<8f', 0, 0, 1, 1, 2, 2, 3, 3)
st('ylab.st', {"x": ("F32", [4, 2], x), "y": ("I64", [4], struct.pack('<4q', 0, 1, 5, 1))})
st('nan.st', {"x": ("F32", [4, 2], struct.pack('<8f', 0, 0, float('nan'), 1, 2, 2, 3, 3))})
EOF
t_err "label above --classes" 1 "outside 0..1" \
    dm-train --classes 2 -o x.st ylab.st
t_err "NaN in data" 1 "NaN" dm-train -o x.st nan.st
t_err "divergence stops" 1 "NaN|Inf" \
    dm-train $N --lr 1e30 --clip 0 --warmup 0 --steps 50 --batch 32 \
    --ckpt keep.ckpt -o div.st moons.st
check "divergence writes nothing" "[ ! -e div.st ] && [ ! -e keep.ckpt ]"
t_err "source without flow" 2 "need --objective flow" \
    dm-train --objective eps --source src.st -o x.st moons.st
t_exit "two data files" 2 dm-train -o x.st a.st b.st

# --coupling ot: reproducible by seed, resumable bit-identically, recorded
O="$A --coupling ot"
t_exit "ot coupling" 0 dm-train $O -o ot1.st moons.st
t_exit "ot coupling again" 0 dm-train $O -o ot2.st moons.st
check "ot: same seed, same bytes" "cmp -s ot1.st ot2.st"
dm-sample -q -n 64 -o s-ind.st a.st 2>/dev/null
dm-sample -q -n 64 -o s-ot.st ot1.st 2>/dev/null
check "ot: not the independent model" "[ -s s-ot.st ] && ! cmp -s s-ind.st s-ot.st"
t_exit "ot stop at 100" 0 dm-train $O --until 100 --ckpt ot.ckpt -o ot3.st \
    moons.st
t_exit "ot resume to 200" 0 dm-train $O --resume ot.ckpt -o ot3.st moons.st
check "ot: resumed model is bit-identical" "cmp -s ot1.st ot3.st"
t_err "ot resume of an independent run" 1 "other options" \
    dm-train $O --resume b.ckpt -o x.st moons.st
t_out "ot recorded" "coupling=ot" dm-info ot1.st
t_exit "ot from a source file, by class" 0 dm-train --coupling ot \
    --source src.st --classes auto $N --steps 20 --batch 32 -q -o x.st \
    moons.st
t_err "ot needs flow" 2 "coupling ot needs --objective flow" \
    dm-train --coupling ot --objective eps -o x.st moons.st
t_err "ot with pairs" 2 "coupling ot: --pairs" \
    dm-train --coupling ot --pairs -o x.st moons.st
t_err "unknown coupling" 2 "not independent or ot" \
    dm-train --coupling sinkhorn -o x.st moons.st

finish
