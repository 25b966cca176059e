#!/bin/sh
# test-info.sh — dm-info: listing, statistics, printing, convert, bad input.
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1
cp "$FIX"/data.st "$FIX"/model.st "$FIX"/special.st "$FIX"/x.npy \
    "$FIX"/xf.npy .

# le64 N: N as 8 little-endian bytes (0 <= N < 2^63).
le64() {
	n=$1 fmt=
	for i in 0 1 2 3 4 5 6 7; do
		fmt="$fmt\\$(printf '%03o' $((n >> (8 * i) & 255)))"
	done
	printf "$fmt"
}
# mkst FILE JSON NBYTES: a safetensors file with that header and NBYTES
# bytes of data (0x01 each).
mkst() {
	{ le64 ${#2}; printf '%s' "$2"; head -c "$3" /dev/zero | tr '\0' '\1'; } >"$1"
}
lines() { wc -l <"$1" | tr -d ' '; }

# ---- listing ----
t_out "list: first line" '^data\.st: safetensors, 2 tensors, 288 B' dm-info data.st
t_out "list: kind" '^  kind: data$' dm-info data.st
t_out "list: x row" '^  x +F32 +\[8, 2\] +16 +64 B$' dm-info data.st
t_out "list: y row" '^  y +I64 +\[8\] +8 +64 B$' dm-info data.st
t_out "list: header row" '^  name +dtype +shape +elements +bytes$' dm-info data.st
t_out "list: metadata" '^  dm\.config = \{"hidden":4,"depth":1\}$' dm-info model.st
t_out "list: scalar" '^  step +I64 +\[\] +1 +8 B$' dm-info model.st
t_out "list: npy" '^x\.npy: npy, 1 tensor, 248 B' dm-info x.npy
run dm-info -q data.st
check "list -q: no header row" '! grep -q "name.*dtype" "$T/out" && [ "$(lines "$T/out")" -eq 4 ]'
run dm-info -t y data.st
check "list -t: only y" '[ $RC -eq 0 ] && grep -q "^  y " "$T/out" && ! grep -q "^  x " "$T/out"'
run dm-info data.st model.st
check "list: two files, blank line between" '[ $RC -eq 0 ] && [ "$(grep -c "^$" "$T/out")" -eq 1 ] && grep -q "^model.st:" "$T/out"'
run dm-info data.st missing.st model.st
check "list: a missing file is reported, the rest listed" \
    '[ $RC -eq 1 ] && [ "$(lines "$T/err")" -eq 1 ] && grep -q "^dm-info: missing.st: " "$T/err" && grep -q "^model.st:" "$T/out"'
t_err "list: unknown -t name" 1 "^dm-info: data\.st: no tensor 'z'$" dm-info -t z data.st
dm-info convert -o data.st.gz data.st
t_out "list: gzip input" '^data\.st\.gz: safetensors, 2 tensors, .*, gzip' dm-info data.st.gz
t_out "list: stdin" '^stdin: safetensors, 2 tensors' sh -c 'dm-info - <data.st'

# ---- statistics ----
# x = 0, 0.5, ..., 7.5: mean 3.75, population std 0.5 * sqrt(255 / 12)
t_out "stats: x closed form" '^  x +F32 +\[8, 2\] +16 +64 B +0 +7\.5 +3\.75 +2\.30489 +0 +0$' dm-info -s data.st
# v = 1 NaN Inf -Inf 3 NaN: finite 1 and 3
t_out "stats: nan and inf counted" '^  v +F32 +\[6\] +6 +24 B +1 +3 +2 +1 +2 +2$' dm-info -s special.st
t_out "stats: bool" '^  b +BOOL +\[3\] +3 +3 B +0 +1 +0\.666667 +0\.471405 +0 +0$' dm-info -s special.st
# y against awk over the printed values
dm-info -pq -t y data.st >y.tsv
want=$(awk '{ s += $1; q += $1 * $1; n++; if (NR == 1 || $1 < lo) lo = $1; if (NR == 1 || $1 > hi) hi = $1 }
    END { m = s / n; printf "%.6g %.6g %.6g %.6g", lo, hi, m, sqrt(q / n - m * m) }' y.tsv)
got=$(dm-info -s -t y data.st | awk '$1 == "y" { print $7, $8, $9, $10 }')
check "stats: y matches awk ($want)" '[ "$got" = "$want" ]'
# a larger tensor with several chunks: the same answer for 1 and 2 threads
awk 'BEGIN { for (i = 0; i < 30000; i++) print (i * 7919) % 1000 / 10 }' >big.tsv
want=$(awk '{ s += $1; q += $1 * $1; n++ } END { m = s / n; printf "%.6g %.6g", m, sqrt(q / n - m * m) }' big.tsv)
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
	/usr/bin/python3 -c 'import numpy as np; np.save("big.npy", np.loadtxt("big.tsv", dtype=np.float64))'
	got1=$(dm-info -s --threads 1 big.npy | awk '$1 == "x" { print $9, $10 }')
	got2=$(dm-info -s --threads 2 big.npy | awk '$1 == "x" { print $9, $10 }')
	check "stats: 30000 values match awk ($want / $got1)" '[ "$got1" = "$want" ] && [ "$got1" = "$got2" ]'
fi

# ---- printing values ----
dm-info -p data.st >p.tsv
printf 'x.0\tx.1\ty\n' >want.tsv
awk 'BEGIN { split("0 1 2 0 1 2 0 1", y, " "); for (i = 0; i < 8; i++) printf "%g\t%g\t%d\n", i, i + 0.5, y[i + 1] }' >>want.tsv
check "print: x and y side by side" 'cmp -s p.tsv want.tsv'
run dm-info -p -q --rows 2:4 data.st
check "print --rows 2:4" '[ "$(cat "$T/out")" = "$(printf "2\t2.5\t2\n3\t3.5\t0")" ]'
run dm-info -p -q --rows -1 -t y data.st
check "print --rows -1" '[ "$(cat "$T/out")" = "1" ]'
run dm-info -pq --rows=-3: -t x data.st
check "print --rows -3:" '[ "$(cat "$T/out")" = "$(printf "5\t5.5\n6\t6.5\n7\t7.5")" ]'
run dm-info -pq --rows 5:2 data.st
check "print --rows 5:2 is empty" '[ $RC -eq 0 ] && [ ! -s "$T/out" ]'
t_err "print --rows 9 out of range" 1 '^dm-info: data\.st: row 9 out of range' dm-info -p --rows 9 data.st
t_out "print: scalar" '^1000$' dm-info -pq -t step model.st
t_out "print: F64 with %.17g" '^0\.10000000000000001$' dm-info -pq -t d special.st
run dm-info -pq -t v special.st
check "print: nan and inf" '[ "$(tr "\n" " " <"$T/out")" = "1 nan inf -inf 3 nan " ]'
t_out "print: F16 header" '^net\.2\.weight\.0	net\.2\.weight\.1	' dm-info -p -t net.2.weight model.st
t_out "print: F16 values" '^-0\.75	-0\.5	-0\.25	0$' dm-info -p -t net.2.weight model.st
run dm-info -pq xf.npy
check "print: big-endian Fortran npy" '[ "$(cat "$T/out")" = "$(printf "0\t0.25\n1\t1.25\n2\t2.25")" ]'
t_err "print: rows differ" 1 "^dm-info: model\.st: cannot print 'net\.0\.weight' \(4 rows\) beside 'net\.2\.weight' \(2 rows\)" dm-info -p model.st

# ---- convert ----
dm-info convert -t x -o x8.npy data.st
run dm-info -pq x8.npy
dm-info -pq -t x data.st >x.tsv
check "convert: st -> npy keeps values" 'cmp -s "$T/out" x.tsv'
check "convert: npy magic" '[ "$(head -c 6 x8.npy | tail -c 5)" = "NUMPY" ]'
dm-info convert -o x8.st x8.npy
run dm-info -pq x8.st
check "convert: npy -> st keeps values" 'cmp -s "$T/out" x.tsv'
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
	t_out "convert: numpy reads our npy" '^60\.0$' /usr/bin/python3 -c 'import numpy; print(numpy.load("x8.npy").sum())'
fi
dm-info convert --float f16 -o m16.st model.st
t_out "convert --float f16: weights" '^  net\.0\.weight +F16 ' dm-info m16.st
t_out "convert --float f16: I64 kept" '^  step +I64 ' dm-info m16.st
dm-info convert --f16 -o m16b.st model.st
check "--f16 is --float f16" 'cmp -s m16.st m16b.st'
t_exit "--f16 with --dtype" 2 dm-info convert --f16 --dtype f64 -o x.st model.st
run dm-info -pq -t net.0.weight m16.st
dm-info -pq -t net.0.weight model.st >w.tsv
check "convert --float f16: exact values kept" 'cmp -s "$T/out" w.tsv'
dm-info convert --dtype f64 -o d64.st data.st
t_out "convert --dtype: every tensor" '^  y +F64 ' dm-info d64.st
t_err "convert --dtype i8 refuses NaN" 1 "^dm-info: special\.st: tensor 'v': cannot convert NaN" dm-info convert --dtype i8 -o bad.st special.st
check "convert: failure writes nothing" '[ ! -e bad.st ]'
dm-info convert --gz -o plain.st data.st
check "convert --gz: gzip magic" '[ "$(od -An -tx1 -N2 plain.st | tr -d " ")" = "1f8b" ]'
check "convert: .gz name compresses" 'gzip -t data.st.gz'
run dm-info -p data.st.gz
check "convert: gz round trip" 'cmp -s "$T/out" p.tsv'
dm-info convert --rename x=pts --set note=hello --set dm.kind=pairs --unset dm.kind -o meta.st data.st
t_out "convert --rename" '^  pts +F32 ' dm-info meta.st
t_out "convert --set" '^  note = hello$' dm-info meta.st
t_out "convert --set after --unset" '^  kind: pairs$' dm-info meta.st
dm-info convert --unset dm.kind -o nokind.st data.st
run dm-info nokind.st
check "convert --unset" '[ $RC -eq 0 ] && ! grep -q "kind:" "$T/out"'
dm-info convert -t y -t x -o yx.st data.st
run dm-info -q yx.st
check "convert -t: order of -t" '[ "$(awk "NR > 2 { printf \"%s \", \$1 }" "$T/out")" = "y x " ]'
t_err "convert --rename onto an existing name" 1 "already" dm-info convert --rename x=y -o r.st data.st
t_err "convert --rename of a missing tensor" 1 "no tensor 'q'" dm-info convert --rename q=r -o r.st data.st
t_err "convert --npy with two tensors" 1 '^dm-info: data\.st: a \.npy file holds exactly one tensor' dm-info convert -o two.npy data.st
run sh -c 'dm-info convert data.st | dm-info -p -'
check "convert: to stdout and back from stdin" '[ $RC -eq 0 ] && cmp -s "$T/out" p.tsv'
t_err "convert -o /dev/full" 1 '^dm-info: /dev/full: ' dm-info convert -o /dev/full data.st
mkdir w
# the error line goes through a pipe: a file would hit the limit too
run sh -c '{ (trap "" XFSZ; ulimit -f 0; exec dm-info convert -o w/out.st data.st); echo "rc=$?"; } 2>&1 | cat'
check "convert: failed write leaves no file and no temporary" \
    '[ -z "$(ls -A w)" ] && [ "$(lines "$T/out")" -eq 2 ] && grep -q "^dm-info: w/out.st: " "$T/out" && grep -q "^rc=1$" "$T/out"'
if command -v script >/dev/null 2>&1; then
	run script -qec "dm-info convert $T/data.st" /dev/null
	check "convert: binary output to a terminal refused" '[ $RC -eq 1 ] && grep -q "terminal" "$T/out"'
fi

# ---- usage and write errors ----
t_exit "unknown option" 2 dm-info -Z data.st
t_exit "unknown convert option" 2 dm-info convert -Z data.st
t_err "--rows x" 2 "rows" sh -c 'dm-info --rows x data.st 2>&1 >/dev/null | head -n 1 >&2; exit 2'
t_exit "--rows x exit" 2 dm-info --rows x data.st
t_exit "--rows 1:2:3" 2 dm-info --rows 1:2:3 data.st
t_exit "--threads 0" 2 dm-info --threads 0 data.st
t_exit "--threads x" 2 dm-info -s --threads x data.st
t_exit "no file" 2 dm-info
t_exit "-p with -s" 2 dm-info -p -s data.st
t_exit "convert: two files" 2 dm-info convert data.st model.st
t_exit "convert: bad --rename" 2 dm-info convert --rename x -o r.st data.st
t_exit "convert: bad --dtype" 2 dm-info convert --dtype f8 -o r.st data.st
t_out "--help" '^usage: dm-info ' dm-info --help
t_out "--version" '^dm-info \(dm toolkit\) [0-9]' dm-info --version
t_err "stdout write error" 1 '^dm-info: stdout: ' sh -c 'dm-info data.st >/dev/full'
t_err "print write error" 1 '^dm-info: stdout: ' sh -c 'dm-info -p data.st >/dev/full'

# ---- bad input: exit 1 and one line "dm-info: FILE: reason" ----
bad_file() {	# bad_file NAME FILE
	t_err "bad input: $1" 1 "^dm-info: $2: [^ ]" dm-info "$2"
	t_err "bad input (-s): $1" 1 "^dm-info: $2: [^ ]" dm-info -s "$2"
}
size=$(wc -c <data.st)
for n in 0 3 8 9 100 159 160 200 $((size - 1)); do
	head -c "$n" data.st >cut$n.st
	bad_file "truncated at $n" cut$n.st
done
{ le64 5000; tail -c +9 data.st; } >hlen.st
bad_file "header length beyond the file" hlen.st
{ le64 4611686018427387904; tail -c +9 data.st; } >huge.st
bad_file "huge header length" huge.st
mkst json.st '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]' 8
bad_file "invalid JSON" json.st
mkst json2.st '{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}}' 8
bad_file "trailing garbage in JSON" json2.st
mkst dtype.st '{"x":{"dtype":"F8","shape":[2],"data_offsets":[0,2]}}' 2
bad_file "unknown dtype" dtype.st
mkst size.st '{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}' 8
bad_file "shape/size mismatch" size.st
mkst outside.st '{"x":{"dtype":"F32","shape":[16],"data_offsets":[0,64]}}' 16
bad_file "offsets outside the file" outside.st
mkst overlap.st '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}' 12
bad_file "overlapping offsets" overlap.st
mkst reversed.st '{"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}' 8
bad_file "reversed offsets" reversed.st
mkst overflow.st '{"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,0]}}' 0
bad_file "shape product overflow" overflow.st
mkst negative.st '{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}' 8
bad_file "negative dimension" negative.st
mkst dims.st '{"x":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}' 1
bad_file "nine dimensions" dims.st
mkst dup.st '{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"x":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}' 2
bad_file "duplicate name" dup.st
head -c 40 data.st.gz >cutgz.st.gz
bad_file "truncated gzip" cutgz.st.gz
{ head -c 20 data.st.gz; printf 'garbagegarbagegarbage'; tail -c +42 data.st.gz; } >corrupt.st.gz
bad_file "corrupt gzip" corrupt.st.gz
printf 'not a tensor file at all\n' >text.st
bad_file "not a tensor file" text.st
{ printf '\223NUMPY\001\000\030\000'; printf "{'descr': '<f4', 'fort"; } >npycut.npy
bad_file "truncated npy header" npycut.npy
mkdir dir.st
bad_file "a directory" dir.st
bad_file "a missing file" missing.st
if [ "$(id -u)" -ne 0 ]; then
	cp data.st locked.st && chmod 000 locked.st
	bad_file "an unreadable file" locked.st
fi
run dm-info -s hlen.st data.st
check "bad input: the good file is still listed" '[ $RC -eq 1 ] && grep -q "^data.st:" "$T/out" && [ "$(lines "$T/err")" -eq 1 ]'

# The tools run with OMP_WAIT_POLICY=passive unless the user set a policy
# (dm_tool_init): one re-execution with it, none when it is set.
if command -v strace >/dev/null 2>&1 &&
    strace -f -qq -e trace=none true 2>/dev/null; then
	env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT strace -f -qq -v -s 64 \
	    -e trace=execve -o trace.txt dm-info data.st >/dev/null 2>&1
	check "re-executed with OMP_WAIT_POLICY=passive" \
	    '[ "$(grep -c execve trace.txt)" -eq 2 ] && grep "proc/self/exe" trace.txt | grep -q "OMP_WAIT_POLICY=passive"'
	OMP_WAIT_POLICY=active strace -f -qq -e trace=execve -o trace.txt \
	    dm-info data.st >/dev/null 2>&1
	check "a policy of the user's is kept" '[ "$(grep -c execve trace.txt)" -eq 1 ]'
	GOMP_SPINCOUNT=1000 strace -f -qq -e trace=execve -o trace.txt \
	    dm-info data.st >/dev/null 2>&1
	check "... also a spin count" '[ "$(grep -c execve trace.txt)" -eq 1 ]'
fi

finish
