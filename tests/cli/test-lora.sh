#!/bin/sh
# test-lora.sh — dm-train --lora, dm-lora-merge, dm-sample --lora: frozen
# base, adapter files, merge = on-the-fly, unmerge, sums of dW, SVD
# re-factoring and extraction (Eckart-Young, checked with NumPy), kohya and
# PEFT names, bad input.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
LP="$PY $(cd "$(dirname "$0")" && pwd)/lora.py"
cd "$T" || exit 1
export OMP_WAIT_POLICY=PASSIVE
Q="--threads 2 -q"
S="--steps 4 -n 300 --threads 2"
LR="--lr 1e-2 --warmup 5 --ema 0.9"

dm-data moons -n 1000 -o moons.st 2>/dev/null
dm-data circles -n 1000 -o circles.st 2>/dev/null
t_exit "base model" 0 dm-train $Q --arch-opts width=32,depth=2 --steps 40 \
    --batch 64 -o base.st moons.st
cp base.st base.orig

# adapter training: only the factors, base untouched
run dm-train --threads 2 --lora 2 --base base.st --steps 40 --batch 64 $LR \
    -o ad.st circles.st
check "dm-train --lora" "[ $RC -eq 0 ]"
check "trainable fraction reported" \
    "grep -Eq 'rank 2 on 6 layers: 768 of 9826 parameters trainable \(7.82%\)' $T/err"
check "base file unchanged" "cmp -s base.st base.orig"
have_np=0
$PY -c 'import numpy' 2>/dev/null && have_np=1
if [ $have_np -eq 1 ]; then
	t_out "adapter holds only A, B, alpha and the base hash" '^ok' \
	    $LP only-adapter ad.st
fi
t_exit "second adapter" 0 dm-train $Q --lora 2 --lora-alpha 4 --base base.st \
    --steps 40 --batch 64 $LR --seed 1 -o ad2.st circles.st
t_exit "resume an adapter run" 0 dm-train $Q --lora 2 --base base.st \
    --steps 40 --batch 64 $LR --until 20 --ckpt r.ckpt -o r.st circles.st
t_exit "resumed" 0 dm-train $Q --lora 2 --base base.st --steps 40 \
    --batch 64 $LR --resume r.ckpt -o r.st circles.st
check "resumed adapter is bit-identical" "cmp -s r.st ad.st"

# merge vs on the fly
t_exit "merge" 0 dm-lora-merge -o merged.st base.st ad.st:0.8
t_exit "sample merged" 0 dm-sample $S -o s1.st merged.st
t_exit "sample with --lora" 0 dm-sample $S --lora ad.st:0.8 -o s2.st base.st
t_exit "sample base" 0 dm-sample $S -o s0.st base.st
if [ $have_np -eq 1 ]; then
	t_out "merged = base + 0.8 dW (NumPy)" '^ok' $LP merged base.st \
	    merged.st ad.st:0.8
	t_out "on the fly = merged to 1e-5" '^ok' $LP samples s2.st s1.st 1e-5
	run $LP samples s0.st s1.st 1e-3
	check "the adapter changes the samples" "[ $RC -ne 0 ]"
fi

# unmerge
t_exit "unmerge" 0 dm-lora-merge --unmerge -o back.st merged.st ad.st:0.8
[ $have_np -eq 1 ] &&
    t_out "merge then unmerge restores the base" '^ok' $LP same back.st \
    base.st 1e-6

# two adapters: the sum of their dW, not of their factors
t_exit "merge two" 0 dm-lora-merge -o two.st base.st ad.st:0.5 ad2.st:1.5
t_exit "on the fly, two" 0 dm-sample $S --lora ad.st:0.5 --lora ad2.st:1.5 \
    -o s3.st base.st
t_exit "sample two merged" 0 dm-sample $S -o s4.st two.st
if [ $have_np -eq 1 ]; then
	t_out "two merged = sum of dW" '^ok' $LP merged base.st two.st \
	    ad.st:0.5 ad2.st:1.5
	t_out "... not the sum of the factors" '^ok' $LP not-factor-sum \
	    base.st two.st ad.st:0.5 ad2.st:1.5
	t_out "two on the fly = merged" '^ok' $LP samples s3.st s4.st 1e-5
fi

# --svd-rank: rank 2 + rank 2 is exactly rank 4
t_exit "svd-rank 4" 0 dm-lora-merge $Q --svd-rank 4 -o one.st base.st \
    ad.st:0.5 ad2.st:1.5
t_exit "merge the re-factored" 0 dm-lora-merge -o one-m.st base.st one.st
[ $have_np -eq 1 ] &&
    t_out "svd-rank 4 of two rank-2 adapters is exact" '^ok' $LP same \
    one-m.st two.st 1e-5

# extraction: full rank reproduces, rank r errs by the SVD tail
t_exit "extract full rank" 0 dm-lora-merge $Q --extract 2 --tuned merged.st \
    -o x.st base.st
[ $have_np -eq 1 ] &&
    t_out "extracted dW = tuned - base" '^ok' $LP delta x.st base.st \
    merged.st 1e-5
t_exit "full fine-tune" 0 dm-train $Q --init base.st --steps 40 --batch 64 \
    --arch-opts width=32,depth=2 -o tuned.st circles.st
run dm-lora-merge --extract 3 --tuned tuned.st -o x3.st base.st
cp "$T/err" report.tsv
check "extract rank 3" "[ $RC -eq 0 ]"
check "report lists layers and a total" \
    "grep -q '^total	3	' report.tsv && grep -q '^blocks.0.fc1	3	' report.tsv"
check "warns about biases left out" "grep -q 'outside the adapted' report.tsv"
[ $have_np -eq 1 ] &&
    t_out "relative errors = Eckart-Young tail (NumPy SVD)" '^ok' \
    $LP eckart-young base.st tuned.st 3 report.tsv
run dm-lora-merge --extract 32 --tuned tuned.st -o x32.st base.st
check "extract at full rank" "[ $RC -eq 0 ]"
check "full rank: relative errors ~ 0" \
    "awk -F'\t' 'NR>1 && \$3+0 > 1e-5 {bad=1} END {exit bad}' $T/err"

# ecosystem names
if [ $have_np -eq 1 ]; then
	$LP kohya ad.st kohya.st >/dev/null
	$LP peft ad.st peft.st >/dev/null
	t_exit "kohya-named adapter" 0 dm-sample $S --lora kohya.st:0.8 \
	    -o s5.st base.st
	t_out "kohya = own naming" '^ok' $LP samples s5.st s2.st 1e-6
	t_exit "PEFT-named adapter" 0 dm-lora-merge -o peft-m.st base.st \
	    peft.st:0.8
	t_out "PEFT = own naming" '^ok' $LP same peft-m.st merged.st 1e-6
	$LP drop ad.st noB.st blocks.1.fc2.lora_B.weight >/dev/null
	t_err "missing tensor" 1 'noB.st: blocks.1.fc2.weight: lora_B.*missing' \
	    dm-sample $S --lora noB.st base.st
	$LP bad-shape ad.st shape.st blocks.0.emb.lora_A.weight >/dev/null
	t_err "mismatched shape" 1 'shape.st: blocks.0.emb.weight: factors .* do not fit' \
	    dm-lora-merge -o z.st base.st shape.st
fi

# bad input
t_err "another base" 1 'ad.st: the adapter was made for another base' \
    dm-lora-merge -o z.st tuned.st ad.st
t_exit "... unless --force" 0 dm-lora-merge -f -o z.st tuned.st ad.st
rm -f z.st
t_err "another base, sampling" 1 'another base' dm-sample $S --lora ad.st \
    tuned.st
t_usage "rank 0" '--lora' dm-train --lora 0 --base base.st circles.st
t_err "rank too large" 1 'rank 40 is larger than layer blocks.0.fc1 allows' \
    dm-train $Q --lora 40 --base base.st -o z.st circles.st
t_err "no matching layer" 1 'no linear or conv layer matches' \
    dm-train $Q --lora 2 --lora-targets 'nope*' --base base.st -o z.st \
    circles.st
t_usage "--lora without --base" 'go together' dm-train --lora 2 circles.st
dm-data moons -n 200 -o m3.st 2>/dev/null
t_exit "a wider model" 0 dm-train $Q --arch-opts width=16,depth=1 --steps 2 \
    -o other.st moons.st
t_err "adapter for another architecture" 1 'ad.st: .*(names no linear or conv|do not fit)' \
    dm-lora-merge -f -o z.st other.st ad.st
t_err "not an adapter" 1 'base.st: the file holds model, not an adapter' \
    dm-lora-merge -o z.st base.st base.st
t_usage "--extract without --tuned" 'needs --tuned' dm-lora-merge \
    --extract 2 base.st
t_err "nothing differs" 1 'no adapted layer differs' dm-lora-merge \
    --extract 2 --tuned base.st -o z.st base.st
check "nothing written on errors" "[ ! -e z.st ]"
finish
