#!/bin/sh
# test-data.sh — dm-data: generators (prefix property, labels, sources),
# gmm files, IDX and PNG import, split, bad input and exit codes.
. "$(dirname "$0")/lib.sh"
cd "$T" || exit 1
cp "$FIX"/data.st "$FIX"/special.st .

# be32 N: N as 4 big-endian bytes.
be32() {
	printf "\\$(printf '%03o' $(($1 >> 24 & 255)))\\$(printf '%03o' $(($1 >> 16 & 255)))\\$(printf '%03o' $(($1 >> 8 & 255)))\\$(printf '%03o' $(($1 & 255)))"
}
rows() { dm-info -p -t "$1" "$2"; }

# ---- generators ----
t_exit "moons -n 10" 0 dm-data moons -n 10 -o m10.st
t_exit "moons -n 1000" 0 dm-data moons -n 1000 -o m1000.st
check "first 10 rows do not depend on -n" \
    "[ \"\$(rows x m10.st)\" = \"\$(dm-info -p -t x --rows 0:10 m1000.st)\" ]"
check "labels too" \
    "[ \"\$(rows y m10.st)\" = \"\$(dm-info -p -t y --rows 0:10 m1000.st)\" ]"
dm-data moons -n 10 >m10b.st 2>/dev/null
check "same seed, same bytes (stdout)" "cmp -s m10.st m10b.st"
dm-data moons -n 10 --seed 1 -o m10s.st
check "another seed, other points" "[ \"\$(rows x m10.st)\" != \"\$(rows x m10s.st)\" ]"
t_out "moons source" 'dm\.source = moons:noise=0\.05$' dm-info m10.st
t_out "moons kind" 'kind: data$' dm-info m10.st
for s in circles 8gaussians 25gaussians checkerboard 2spirals pinwheel rings; do
	run dm-data "$s" -n 50 -o "$s.st"
	t_out "$s: x [50, 2], y [50]" '^  y +I64 +\[50\] ' dm-info "$s.st"
done
run dm-data swissroll -n 20 -o sr.st
t_out "swissroll has no labels" '1 tensors?,' dm-info sr.st
t_out "pinwheel --arms" 'pinwheel:arms=3,noise=0\.1' sh -c \
    'dm-data pinwheel --arms 3 -n 5 | dm-info -'
run dm-data rings --classes 2 -n 400 -o r2.st
t_out "rings --classes 2: labels 0..1" '^  y +I64 +\[400\] .* 0 +1 ' dm-info -s r2.st
t_out "circles --factor" 'circles:factor=0\.3,noise=0' sh -c \
    'dm-data circles --factor 0.3 --noise 0 -n 5 | dm-info -'
t_out "gauss --dim" '^  x +F32 +\[7, 5\] ' sh -c 'dm-data gauss -n 7 --dim 5 | dm-info -'
t_out "gauss --shape" '^  x +F32 +\[3, 1, 4, 4\] ' sh -c \
    'dm-data gauss -n 3 --shape 1,4,4 | dm-info -'

# ---- gmm ----
run dm-data gmm --k 4 --dim 2 --radius 2 --std 0.1 -n 100 -o g.st
t_out "gmm data: samples" '^  x +F32 +\[100, 2\] ' dm-info g.st
t_out "gmm data: means recorded" '^  gmm\.means +F64 +\[4, 2\] ' dm-info g.st
t_out "gmm data: covs recorded" '^  gmm\.covs +F64 +\[4, 2, 2\] ' dm-info g.st
t_out "gmm data: kind data" 'kind: data$' dm-info g.st
t_out "gmm data: source" 'gmm:k=4,dim=2,radius=2,std=0\.1' dm-info g.st
printf '# two blobs\ndim 2\n1  -2 0  0.5\n3   2 0  0.25 0.5\n' >mix.txt
run dm-data gmm --spec mix.txt -n 50 -o gs.st
t_out "gmm --spec" '^  gmm\.weights +F64 +\[2\] ' dm-info gs.st
run dm-data gmm --model --schedule rf --spec mix.txt -o gm.st
t_out "gmm --model: kind model" 'kind: model$' dm-info gm.st
check "gmm --model: no samples" "! dm-info gm.st | grep -q '^  x '"
t_out "gmm --model: schedule" 'dm\.schedule = rf' dm-info gm.st
printf 'dim 2\n1 0\n' >badmix.txt
t_err "gmm bad spec" 1 '^dm-data: badmix\.txt: .*line' dm-data gmm --spec badmix.txt -o x.st
t_exit "gmm needs --spec or --k/--dim" 2 dm-data gmm -o x.st
t_exit "gmm --model without --schedule" 2 dm-data gmm --model --k 2 --dim 2 -o x.st

# ---- IDX import ----
{ be32 2051; be32 2; be32 2; be32 3; printf '\000\377\200\001\002\003\004\005\006\007\010\011'; } >img.idx
{ be32 2049; be32 2; printf '\011\000'; } >lab.idx
{ be32 2049; be32 3; printf '\011\000\001'; } >lab3.idx
gzip -c img.idx >img.idx.gz
t_exit "import IDX (gzip) with labels" 0 dm-data import --labels lab.idx -o i.st img.idx.gz
t_out "import: x [N, 1, H, W]" '^  x +F32 +\[2, 1, 2, 3\] ' dm-info i.st
check "import: 0 -> -1, 255 -> 1" "[ \"\$(dm-info -p -t x --rows 0:1 i.st | sed -n 2p | cut -f1-2)\" = \"\$(printf '%s\t%s' -1 1)\" ]"
t_out "import: labels" '^9$' dm-info -p -t y i.st
t_err "labels count mismatch" 1 '^dm-data: lab3\.idx: 3 labels for 2 images$' \
    dm-data import --labels lab3.idx -o x.st img.idx
{ be32 3331; be32 1; be32 1; be32 1; printf 'x'; } >magic.idx
t_err "wrong magic" 1 '^dm-data: magic\.idx: bad IDX magic 0x00000d03' dm-data import -o x.st magic.idx
head -c 20 img.idx >short.idx
t_err "truncated IDX" 1 '^dm-data: short\.idx: IDX data is 4 bytes, expected 12' dm-data import -o x.st short.idx
t_err "missing file" 1 '^dm-data: nothere\.idx: cannot open' dm-data import -o x.st nothere.idx
t_exit "import without input" 2 dm-data import -o x.st
F=/usr/share/datasets/fashion-mnist
if [ -r "$F/t10k-images-idx3-ubyte.gz" ]; then
	run dm-data import --labels "$F/t10k-labels-idx1-ubyte.gz" -o fm.st \
	    "$F/t10k-images-idx3-ubyte.gz"
	t_out "Fashion-MNIST t10k" '^  x +F32 +\[10000, 1, 28, 28\] ' dm-info fm.st
	t_out "Fashion-MNIST labels 0..9" '^  y +I64 +\[10000\] .* 0 +9 +4\.5 ' dm-info -s fm.st
fi

# ---- PNG import ----
if command -v python3 >/dev/null 2>&1; then
python3 - <<'EOF'
import struct, zlib, os
def png(path, w, h, ctype, rows):
    def chunk(t, d):
        c = struct.pack('>I', len(d)) + t + d
        return c + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
    raw = b''.join(b'\0' + bytes(r) for r in rows)
    with open(path, 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, ctype, 0, 0, 0))
                + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))
os.makedirs('imgs/cat', exist_ok=True)
os.makedirs('imgs/dog', exist_ok=True)
png('a.png', 2, 2, 0, [[0, 255], [51, 102]])
png('b.png', 3, 3, 2, [[1] * 9] * 3)
png('imgs/cat/1.png', 2, 2, 0, [[0, 0], [0, 0]])
png('imgs/cat/2.png', 2, 2, 0, [[255, 255], [255, 255]])
png('imgs/dog/1.png', 2, 2, 0, [[0, 255], [0, 255]])
EOF
t_exit "import PNG files" 0 dm-data import -o p.st a.png imgs/cat/1.png
t_out "PNG: x [2, 1, 2, 2]" '^  x +F32 +\[2, 1, 2, 2\] ' dm-info p.st
check "PNG: values scaled to [-1, 1]" "dm-info -p -t x --rows 0:1 p.st | awk -F'\t' 'NR==2 {
	split(\"-1 1 -0.6 -0.2\", w, \" \"); for (i = 1; i <= 4; i++) { d = \$i - w[i]; if (d > 1e-6 || d < -1e-6) bad = 1 }; ok = 1 }
	END {exit bad || !ok}'"
t_err "PNG sizes differ" 1 '^dm-data: b\.png: 3x3 RGB, expected 2x2 gray \(from a\.png\)$' \
    dm-data import -o x.st a.png b.png
t_out "PNG --rgb" '^  x +F32 +\[2, 3, 2, 2\] ' sh -c 'dm-data import --rgb a.png imgs/cat/2.png | dm-info -'
t_exit "PNG directory with classes" 0 dm-data import --labels-from-dirs -o d.st imgs
t_out "classes: x [3, 1, 2, 2]" '^  x +F32 +\[3, 1, 2, 2\] ' dm-info d.st
check "classes by sorted directory" "[ \"\$(dm-info -p -t y d.st | tr '\n' ' ')\" = 'y 0 0 1 ' ]"
t_out "PNG directory" '^  x +F32 +\[2, 1, 2, 2\] ' sh -c 'dm-data import imgs/cat | dm-info -'
t_err "empty directory" 1 'no PNG files' dm-data import -o x.st imgs
fi

# ---- split ----
t_exit "split --test-n" 0 dm-data split --test-n 3 -o tr.st -O te.st data.st
t_out "split: train rows" '^  x +F32 +\[5, 2\] ' dm-info tr.st
t_out "split: test rows" '^  y +I64 +\[3\] ' dm-info te.st
check "split: test is the last rows" "[ \"\$(rows y te.st | tr '\n' ' ')\" = 'y 2 0 1 ' ]"
t_out "split keeps metadata" 'kind: data$' dm-info te.st
t_exit "split --shuffle" 0 dm-data split --shuffle --seed 3 --test 0.5 -o tr2.st -O te2.st data.st
check "shuffled split: every row once" "[ \"\$( (rows x tr2.st; rows x te2.st) | grep -v x | sort | tr '\n' ' ')\" = \"\$(rows x data.st | grep -v x | sort | tr '\n' ' ')\" ]"
run dm-data gmm --k 3 --dim 2 -n 20 -o g20.st
run dm-data split --test-n 5 -o gtr.st -O gte.st g20.st
t_out "split copies the mixture to both" '^  gmm\.means +F64 +\[3, 2\] ' dm-info gte.st
dm-info convert --rename v=x -o nan.st special.st
t_err "split refuses NaN" 1 '^dm-data: nan\.st: x: row 1 has NaN$' dm-data split -o a.st -O b.st nan.st
t_exit "split needs -O" 2 dm-data split -o a.st data.st
t_exit "split: both --test and --test-n" 2 dm-data split --test 0.1 --test-n 2 -o a.st -O b.st data.st
t_err "split: too many test rows" 1 'more than the 8 rows' dm-data split --test-n 9 -o a.st -O b.st data.st

# ---- usage and errors ----
t_err "unknown set" 2 "unknown data set or command 'blobs'" dm-data blobs
t_exit "no set" 2 dm-data
t_exit "bad -n" 2 dm-data moons -n 0
t_exit "bad -n text" 2 dm-data moons -n 1x
t_exit "--classes on moons" 2 dm-data moons --classes 3 -o x.st
t_exit "--noise on gauss" 2 dm-data gauss --noise 1 -o x.st
t_exit "--labels on a generator" 2 dm-data moons --labels x -o x.st
t_exit "bad --shape" 2 dm-data gauss --shape 1,2 -o x.st
t_exit "operand after a set" 2 dm-data moons extra -o x.st
t_err "full disk" 1 '^dm-data: /dev/full: ' dm-data moons -n 5 -o /dev/full
t_out "version" '^dm-data \(dm toolkit\) ' dm-data --version
t_out "help" '^usage: dm-data' dm-data --help
finish
