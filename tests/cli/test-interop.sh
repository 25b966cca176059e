#!/bin/sh
# test-interop.sh — dm-info convert against NumPy (Debian's /usr/bin/python3
# with python3-numpy): safetensors written and read by a few lines of numpy,
# .npy files from np.save, .npy output read by np.load.  Skipped (0 tests)
# when numpy is not installed.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)

if ! "$PY" -c 'import numpy' >/dev/null 2>&1; then
	echo "$SUITE: skipped: $PY cannot import numpy"
	finish
	exit
fi

run "$PY" "$HERE/interop.py" gen "$T"
if [ "$RC" -ne 0 ]; then
	bad "interop.py gen"
	finish
	exit
fi

# (lib.sh uses $name itself)
while read -r kind cs; do
	case $kind in
	st)	# (a) a plain copy; (b) every tensor to F64
		t_exit "$cs: convert" 0 dm-info convert "$T/$cs.st" \
		    -o "$T/$cs.out.st"
		t_exit "$cs: convert --dtype f64" 0 dm-info convert \
		    --dtype f64 "$T/$cs.st" -o "$T/$cs.f64.st"
		;;
	stnpy)	# (d) one tensor to .npy, by the output name and by --npy
		t_exit "$cs: convert to .npy" 0 dm-info convert \
		    "$T/$cs.one.st" -o "$T/$cs.out.npy"
		t_exit "$cs: convert --npy" 0 dm-info convert --npy \
		    "$T/$cs.one.st" -o "$T/$cs.flag"
		check "$cs: --npy and .npy write the same bytes" \
		    "cmp -s '$T/$cs.out.npy' '$T/$cs.flag'"
		;;
	stnpy_bad)	# npy has no bfloat16
		t_err "$cs: BF16 to .npy refused" 1 'bfloat16' dm-info convert \
		    "$T/$cs.one.st" -o "$T/$cs.out.npy"
		check "$cs: no .npy left behind" "[ ! -e '$T/$cs.out.npy' ]"
		;;
	npy)	# (c) np.save files read
		t_exit "$cs: convert .npy" 0 dm-info convert "$T/$cs.npy" \
		    -o "$T/$cs.st"
		;;
	esac
done <"$T/cases"

# numpy checks what dm-info wrote: one "ok NAME" or "FAIL NAME: why" a line
run "$PY" "$HERE/interop.py" check "$T"
[ "$RC" -eq 0 ] && [ -s "$T/out" ] || bad "interop.py check"
cp "$T/out" "$T/results"
while read -r status rest; do
	if [ "$status" = ok ]; then
		ok
	else
		FAIL=$((FAIL + 1))
		echo "FAIL $SUITE: $rest"
	fi
done <"$T/results"

finish
