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
printf 'a\tb\n1\tnan\n' >nan.tsv
t_err "curve: NaN refused" 1 '^dm-view: nan\.tsv: line 2: column b' \
    dm-view --curve -o x.png nan.tsv
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
