#!/bin/sh
# test-view.sh — dm-view: every mode writes a PNG of the expected size,
# grid pixels decoded independently (tests/cli/pngpix.py, zlib only),
# deterministic bytes, exit codes and one-line errors, atomic output.
. "$(dirname "$0")/lib.sh"
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$T" || exit 1
cp "$FIX"/data.st "$FIX"/x.npy "$FIX"/images.st "$FIX"/traj.st "$FIX"/special.st .

# pngsig FILE: true if FILE starts with the PNG signature
pngsig() { [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }
# pix FILE X Y ...: "W H" then "R G B" per pixel, one line each, in $T/pix
pix() { "$PY" "$HERE/pngpix.py" "$@" >"$T/pix" 2>&1; }
printf 'step\tloss\tlr\n0\t2.0\t0.001\n100\t1.0\t0.001\n200\t0.5\t0.0005\n' >log.tsv

# ---- every mode makes a PNG ----
t_exit "grid" 0 dm-view --grid -o g.png images.st
check "grid: png" 'pngsig g.png'
t_exit "scatter" 0 dm-view --scatter -o s.png data.st
check "scatter: png" 'pngsig s.png'
t_exit "scatter: labels, two files, dims" 0 \
    dm-view --scatter --labels --dims 1,0 --size 300x200 -o s2.png data.st data.st
t_exit "density" 0 dm-view --density --bins 8 --lim 0:8 -o d.png data.st
t_exit "density linear" 0 dm-view --density --linear -o d2.png data.st
t_exit "trajectory" 0 dm-view --trajectory -o tr.png traj.st
t_exit "curve" 0 dm-view --curve -o c.png log.tsv
t_exit "curve: logy, columns" 0 dm-view --curve --logy --x step --y loss,lr -o c2.png log.tsv
t_exit "curve: stdin" 0 sh -c 'dm-view --curve -o c3.png - <log.tsv'
check "curve: stdin = file" 'cmp -s c.png c3.png'
t_exit "stdout when not a tty" 0 sh -c 'dm-view --scatter -o - data.st >so.png'
check "stdout: same bytes as a file" 'cmp -s s.png so.png'

# ---- deterministic ----
dm-view --grid -o g2.png images.st
check "grid: same bytes twice" 'cmp -s g.png g2.png'
dm-view --trajectory -o tr2.png traj.st
check "trajectory: same bytes twice" 'cmp -s tr.png tr2.png'

# ---- pixels and sizes, decoded without libpng ----
if "$PY" -c 'import zlib' >/dev/null 2>&1; then
	# 4 pictures 8x8, 2 to a row, pad 1, scale 1: 19x19; picture i has
	# column 2i (rows 1..6) white on black; padding white
	dm-view --grid --nrow 2 --pad 1 --scale 1 -o g3.png images.st
	pix g3.png 0 0 1 1 1 2 2 2 12 2 12 1 11 11 16 12
	check "grid: layout and pixels" \
	    '[ "$(tr "\n" "|" <"$T/pix")" = "19 19|255 255 255|0 0 0|255 255 255|0 0 0|255 255 255|0 0 0|0 0 0|255 255 255|" ]'
	# default scale: 64/8 = 8, default pad 2, default 8 to a row
	pix g.png
	check "grid: default size" '[ "$(cat "$T/pix")" = "266 68" ]'
	# --range 0:1 maps -1 to 0 and +1 to 255; --pad-value
	dm-view --grid --range -3:1 --pad 1 --pad-value 7 --scale 1 -o g4.png images.st
	pix g4.png 0 0 1 1 1 2
	check "grid: range and pad value" \
	    '[ "$(tr "\n" "|" <"$T/pix")" = "37 10|7 7 7|128 128 128|255 255 255|" ]'
	# -n 3: three pictures
	dm-view --grid -n 3 --scale 1 --pad 0 -o g5.png images.st
	pix g5.png
	check "grid: -n" '[ "$(cat "$T/pix")" = "24 8" ]'
	pix s2.png
	check "scatter: --size" '[ "$(cat "$T/pix")" = "300 200" ]'
	pix c.png
	check "curve: default size" '[ "$(cat "$T/pix")" = "640 400" ]'
fi

# ---- curves with missing values, markers, a log x axis ----
# A missing value ("-", empty, nan, NaN) leaves a point out: the column
# draws the same bytes as the table without it (x limits come from the
# points drawn); a line joins the points on either side of it.
printf 'nfe\teuler\n1\t9\n-\t7\n2\t8\n4\t\n6\t4\n7\t-\n8\tNaN\n9\tnan\n' >gaps.tsv
printf 'nfe\teuler\n1\t9\n2\t8\n6\t4\n' >nogaps.tsv
t_exit "curve: missing values" 0 dm-view --curve -o gaps.png gaps.tsv
dm-view --curve -o nogaps.png nogaps.tsv
check "curve: missing points left out, not zero" 'cmp -s gaps.png nogaps.png'
dm-view --curve -o gaps2.png gaps.tsv
check "curve: same bytes twice" 'cmp -s gaps.png gaps2.png'
# Two sampler columns, each with values at its own NFE.  577x549 with
# --lim 0:10 puts the frame at x 62..562, y 12..512, so that pixel
# (62 + 50 x, 512 - 50 y) is the point (x, y).  euler: (1,9) (2,8) (6,4),
# one 45-degree line through the missing row at x = 4; heun: (4,5) (6,3)
# (8,1), nothing left of x = 4.
printf 'nfe\teuler\theun\n1\t9\t-\n2\t8\t-\n4\t-\t5\n6\t4\t3\n8\t-\t1\n' >nfe.tsv
SZ="--size 577x549 --lim 0:10"
t_exit "curve: sparse columns" 0 dm-view --curve $SZ -o sp.png nfe.tsv
t_exit "curve: --points" 0 dm-view --curve --points $SZ -o spp.png nfe.tsv
# x = 10, 10^0.5 and 100 fall on columns 62, 312 and 562 with --logx
printf 'nfe\tq\n1\t8\n10\t5\n100\t2\n' >logx.tsv
t_exit "curve: --logx" 0 dm-view --curve --logx --points --size 577x549 \
    --lim 1:100,0:10 -o lx.png logx.tsv
t_exit "curve: --logx --logy, unsorted x" 0 \
    sh -c 'printf "n\tq\n4\t0.1\n1\t2\n16\t-\n2\t0.5\n" | dm-view --curve --logx --logy -o lxy.png -'
printf 'nfe\tq\n0\t-\n1\t2\n2\t3\n' >x0gap.tsv
t_exit "curve: --logx ignores x <= 0 where nothing is drawn" 0 \
    dm-view --curve --logx -o x0g.png x0gap.tsv
printf 'a\tb\tc\n1\t2\t-\n2\t3\t5\n3\t4\t\n' >lone.tsv
t_exit "curve: a column with one point" 0 dm-view --curve $SZ -o lone.png lone.tsv
if "$PY" -c 'import zlib' >/dev/null 2>&1; then
	EU="0 114 178" HE="213 94 0"    # palette colours 0 and 1
	pix sp.png 262 212 114 60
	check "curve: line joins across a missing row; no marker by default" \
	    '[ "$(tr "\n" "|" <"$T/pix")" = "577 549|$EU|255 255 255|" ]'
	count() { "$PY" "$HERE/pngpix.py" --count "$@"; }
	check "curve: the missing row is not a point of its own" \
	    '[ "$(count $EU sp.png 262 13 262 511)" = 1 ]'
	check "curve: no colour where a column has no points (left)" \
	    '[ "$(count $HE sp.png 63 13 255 511)" = 0 ]'
	check "curve: no colour where a column has no points (right)" \
	    '[ "$(count $EU sp.png 370 50 561 511)" = 0 ]'
	check "curve: heun drawn where it has points" \
	    '[ "$(count $HE sp.png 262 262 462 462)" -ge 200 ]'
	# --points: a 5x5 square at (1,9) = pixel (112,62), corner (114,60)
	pix spp.png 114 60 110 64 115 60 462 462
	check "curve: --points draws 5x5 markers in the line colour" \
	    '[ "$(tr "\n" "|" <"$T/pix")" = "577 549|$EU|$EU|255 255 255|$HE|" ]'
	check "curve: markers of every present point" \
	    '[ "$(count $EU spp.png 110 60 114 64)" = 25 ] &&
	     [ "$(count $HE spp.png 460 460 464 464)" = 25 ]'
	# --logx: the point (10, 5) at pixel (312, 262), marker corner (314, 260)
	pix lx.png 314 260 109 260
	check "curve: --logx puts x = 10 mid-way between 1 and 100" \
	    '[ "$(tr "\n" "|" <"$T/pix")" = "577 549|$EU|255 255 255|" ]'
	# a lone point is drawn as a marker even without --points: c at (2,5)
	check "curve: a lone point gets a marker" \
	    '[ "$(count $HE lone.png 160 260 164 264)" = 25 ]'
fi

# ---- a trajectory as a grid: rows of time ----
"$PY" - <<'PYEOF' 2>/dev/null
import json, struct
x = [float(k) / 2 - 1 for k in range(3) for i in range(2) for p in range(4)]
h = json.dumps({'x': {'dtype': 'F32', 'shape': [3, 2, 1, 2, 2],
                      'data_offsets': [0, 4 * len(x)]}}).encode()
h += b' ' * (-len(h) % 8)
open('tgrid.st', 'wb').write(struct.pack('<Q', len(h)) + h +
                             struct.pack('<%df' % len(x), *x))
PYEOF
if [ -f tgrid.st ]; then
	dm-view --grid --scale 1 --pad 0 -o tg.png tgrid.st
	pix tg.png 0 0 3 0 0 1 0 2 3 5
	check "grid: trajectory rows of time" \
	    '[ "$(tr "\n" "|" <"$T/pix")" = "4 6|0 0 0|0 0 0|0 0 0|64 64 64|128 128 128|" ]'
fi

# ---- usage errors: exit 2 ----
t_exit "no mode" 2 dm-view -o x.png data.st
t_exit "two modes" 2 dm-view --grid --scatter -o x.png data.st
t_exit "no -o" 2 dm-view --scatter data.st
t_exit "no file" 2 dm-view --scatter -o x.png
t_exit "two files for grid" 2 dm-view --grid -o x.png images.st images.st
t_exit "bad --lim" 2 dm-view --scatter --lim 4:-4 -o x.png data.st
t_exit "bad --lim text" 2 dm-view --scatter --lim 1:2,3 -o x.png data.st
t_exit "bad --lim nan" 2 dm-view --scatter --lim nan:1 -o x.png data.st
t_exit "bad --range" 2 dm-view --grid --range 1:1 -o x.png images.st
t_exit "bad --range text" 2 dm-view --grid --range 1 -o x.png images.st
t_exit "bad --nrow" 2 dm-view --grid --nrow 0 -o x.png images.st
t_exit "bad --nrow text" 2 dm-view --grid --nrow 2x -o x.png images.st
t_exit "bad --size" 2 dm-view --scatter --size 10x10 -o x.png data.st
t_exit "bad --bins" 2 dm-view --density --bins 1 -o x.png data.st
t_exit "bad --scale" 2 dm-view --grid --scale 0 -o x.png images.st
t_exit "bad -n" 2 dm-view --grid -n -3 -o x.png images.st
t_err "--logx with x limits <= 0" 2 '^dm-view: --lim: x limits must be positive with --logx$' \
    dm-view --curve --logx --lim 0:10,1:2 -o x.png log.tsv
t_err "--logy with y limits <= 0" 2 '^dm-view: --lim: y limits must be positive with --logy$' \
    dm-view --curve --logy --lim -1:10 -o x.png log.tsv
t_exit "unknown option" 2 dm-view --grid --frobnicate -o x.png images.st
check "no output after usage errors" '[ ! -e x.png ]'

# ---- data errors: exit 1, one line "dm-view: FILE: reason" ----
t_err "missing file" 1 '^dm-view: nope\.st: ' dm-view --scatter -o x.png nope.st
t_err "missing tensor" 1 "^dm-view: data\.st: no tensor 'z'" \
    dm-view --scatter -t z -o x.png data.st
t_err "grid: wrong shape" 1 "^dm-view: data\.st: tensor 'x' has shape \[8, 2\]" \
    dm-view --grid -o x.png data.st
t_err "scatter: wrong shape" 1 "^dm-view: images\.st: tensor 'x' has shape \[4, 1, 8, 8\]" \
    dm-view --scatter -o x.png images.st
t_err "scatter: --dims out of range" 1 '^dm-view: data\.st: --dims' \
    dm-view --scatter --dims 0,2 -o x.png data.st
t_err "trajectory: wrong shape" 1 "^dm-view: data\.st: tensor 'x' has shape" \
    dm-view --trajectory -o x.png data.st
t_err "labels: no y" 1 "^dm-view: x\.npy: --labels: no tensor 'y'" \
    dm-view --scatter --labels -o x.png x.npy
t_err "NaN refused" 1 "^dm-view: special\.st: tensor 'v' holds NaN" \
    dm-view --grid -t v -o x.png special.st
for f in abc 1x NA inf -Inf infinity; do
	printf 'a\tb\n1\t2\n3\t%s\n' "$f" >bad.tsv
	t_err "curve: field '$f' refused" 1 \
	    "^dm-view: bad\\.tsv: line 3: column b: '$f' is not (a number|finite)" \
	    dm-view --curve -o x.png bad.tsv
done
printf 'a\tb\tc\n1\t2\t-\n2\t3\tnan\n3\t4\t\n' >nocol.tsv
t_err "curve: a column with no values" 1 '^dm-view: nocol\.tsv: column c has no values$' \
    dm-view --curve -o x.png nocol.tsv
t_err "curve: --y names a column with no values" 1 \
    '^dm-view: nocol\.tsv: column c has no values$' \
    dm-view --curve --y b,c -o x.png nocol.tsv
printf 'a\tb\n-\t2\n2\t-\n' >apart.tsv
t_err "curve: x and y never on one row" 1 \
    '^dm-view: apart\.tsv: column b has no values on rows where a has one' \
    dm-view --curve -o x.png apart.tsv
printf 'a\t\tb\n1\t2\t3\n' >noname.tsv
t_err "curve: header field empty" 1 '^dm-view: noname\.tsv: line 1: column 2 has no name' \
    dm-view --curve -o x.png noname.tsv
printf 'nfe\tq\n0\t1\n1\t2\n' >x0.tsv
t_err "curve: --logx refuses x = 0" 1 \
    '^dm-view: x0\.tsv: row 1: column nfe: 0 is not positive \(--logx\)$' \
    dm-view --curve --logx -o x.png x0.tsv
printf 'nfe\tq\n-2\t1\n1\t2\n' >xneg.tsv
t_err "curve: --logx refuses x < 0" 1 \
    '^dm-view: xneg\.tsv: row 1: column nfe: -2 is not positive \(--logx\)$' \
    dm-view --curve --logx -o x.png xneg.tsv
printf 'a\tb\n1\t2\t3\n' >ragged.tsv
t_err "curve: ragged" 1 '^dm-view: ragged\.tsv: line 2: 3 fields' \
    dm-view --curve -o x.png ragged.tsv
t_err "curve: no column" 1 "^dm-view: log\.tsv: no column 'acc'" \
    dm-view --curve --y acc -o x.png log.tsv
printf 'a\tb\n1\t0\n2\t1\n' >zero.tsv
t_err "curve: logy needs positive" 1 '^dm-view: zero\.tsv: row 1: column b' \
    dm-view --curve --logy -o x.png zero.tsv
t_err "curve: empty" 1 '^dm-view: /dev/null: no header' \
    dm-view --curve -o x.png /dev/null
check "no output after data errors" '[ ! -e x.png ]'

# ---- output: atomic, special files, existing file kept on failure ----
t_err "/dev/full" 1 '^dm-view: /dev/full: ' dm-view --scatter --lim 0:8 -o /dev/full data.st
t_err "no such directory" 1 '^dm-view: no/such\.png: ' \
    dm-view --scatter --lim 0:8 -o no/such.png data.st
t_exit "directory" 1 dm-view --scatter -o . data.st
cp s.png keep.png
t_exit "failed input keeps the old output" 1 dm-view --scatter -o keep.png nope.st
check "old output intact" 'cmp -s s.png keep.png'
check "no temporaries left" '[ -z "$(ls -A | grep "^\.")" ]'
t_exit "overwrite" 0 dm-view --grid -o keep.png images.st
check "overwritten" 'cmp -s g.png keep.png'

# ---- help and version ----
t_out "--help" '^usage: dm-view' dm-view --help
t_out "--version" '^dm-view \(dm toolkit\) ' dm-view --version

finish
