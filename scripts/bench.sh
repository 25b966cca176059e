#!/bin/sh
# bench.sh BUILD — throughput figures of `make bench` (not part of check).
# Prints TSV lines: what, size, setting, figure.
set -eu
B=${1:-build}
PATH="$(pwd)/$B/bin:$PATH"
W=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/dm-bench-XXXXXX")}
trap 'rm -rf "$W"' EXIT
MIB=${BENCH_FILE_MIB:-1024}

echo "# machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
"$B/bench/bench_core" sgemm 1024
"$B/bench/bench_core" sgemm 2048
"$B/bench/bench_core" rng 50000000

# dm-info -s on a large F32 file vs cat from the page cache.  Peak anonymous
# memory (RssAnon) shows whether the file was copied into memory: a mapped
# file shows up as file-backed pages, not anonymous ones.
f="$W/big.st"
"$B/bench/bench_core" mkfile "$f" "$MIB"
cat "$f" >/dev/null; cat "$f" >/dev/null
/usr/bin/python3 - "$f" "$MIB" <<'PY'
import subprocess, sys, time
f, mib = sys.argv[1], sys.argv[2]
def timed(cmd, reps=3):
    best, peak = 1e9, 0
    for _ in range(reps):
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        while p.poll() is None:
            try:
                for line in open(f"/proc/{p.pid}/status"):
                    if line.startswith("RssAnon:"):
                        peak = max(peak, int(line.split()[1]))
            except OSError:
                pass
            time.sleep(0.005)
        best = min(best, time.perf_counter() - t0)
        if p.returncode != 0:
            sys.exit(f"bench: {cmd} failed")
    return best, peak
tc, _ = timed(["cat", f])
ti, peak = timed(["dm-info", "-s", f])
print(f"read\t{mib} MiB F32\tcat\t{tc:.3f} s")
print(f"read\t{mib} MiB F32\tdm-info -s\t{ti:.3f} s\t{ti / tc:.2f}x cat\tpeak RssAnon {peak / 1024:.1f} MiB")
PY

# Convolution and attention on the unet's shapes: GFLOP/s and the fraction
# of the sgemm rate, batch 64 (training) and 1 (sampling).
"$B/bench/bench_nn" 64 1

# Sampling with the default mlp (width 256): batch-1 Euler NFE/s and
# 10 000 points x 100 Euler steps against the sgemm rate; the same in
# PyTorch when Debian's python3-torch imports, side by side.  Threads: 2
# (BENCH_THREADS); both sides use the same count.
TH=${BENCH_THREADS:-2}
"$B/bench/bench_sample" -t "$TH" | tee "$W/sample.tsv"
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
	/usr/bin/python3 scripts/torch_sample.py -t "$TH" "$W/sample.tsv"
else
	echo "# torch: python3-torch does not import; no comparison"
fi

# Sinkhorn (bench_ot): iterations/s and points^2/s (n m cost entries per
# half-iteration) on 2-D Gaussian clouds at epsilon = reg x the largest
# cost, tol 1e-9; then dm-sinkhorn as a whole process against POT's
# ot.sinkhorn, ot.sinkhorn_log and ot.emd2 on the same problems when
# /usr/bin/python3 imports ot (scripts/pot_bench.py).
"$B/bench/bench_ot" -t "$TH" 1000:0.05 1000:0.01 5000:0.05 5000:0.01 \
    20000:0.01
if /usr/bin/python3 -c 'import ot' 2>/dev/null; then
	/usr/bin/python3 scripts/pot_bench.py "$B"
else
	echo "# pot: python3 cannot import ot (POT); no comparison"
fi

# Training and sampling (bench_train), each workload in its own process, and
# the same workloads in PyTorch (scripts/torch_bench.py) run right after it
# when /usr/bin/python3 has torch, so each ratio compares back-to-back runs.
# GFLOP/s counts the GEMM and convolution FLOPs (backward = weight and
# input gradients); "of sgemm" divides by the 1024^3 sgemm rate measured
# in the same process.  Memory: peak RSS of the process, and above its
# start (PyTorch's start holds the torch runtime).  BENCH_SECS: seconds of
# timing per workload and side (default 3).
# Both sides with OpenMP threads that sleep at barriers, as the dm tools
# run (dm_tool_init): with other jobs on the cores a spinning thread takes
# the time slice of the one it waits for, and either side slows several
# fold (unless OMP_WAIT_POLICY is set already).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
/usr/bin/python3 - "$B" "${BENCH_SECS:-3}" <<'PY'
import subprocess, sys
b, secs = sys.argv[1], sys.argv[2]
try:
    subprocess.run(["/usr/bin/python3", "-c", "import torch"], check=True,
                   stderr=subprocess.DEVNULL)
    torch = True
except (OSError, subprocess.CalledProcessError):
    torch = False
rows = [("mlp256", "train mlp w256 B1024 flow"),
        ("mlp1024", "train mlp w1024 B1024 flow"),
        ("unet", "train unet 28x28 ch32 B64 eps"),
        ("unet-nfe1", "sample unet B1"),
        ("unet-nfe256", "sample unet B256"),
        ("mlp-nfe1", "sample mlp w256 B1")]
def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out.stdout.split("\t")
print("workload\tdm rate\tunit\tGFLOP/s\tof sgemm\tsgemm GFLOP/s\t"
      "peak MiB (above start)" + ("\ttorch rate\tdm/torch\ttorch peak MiB "
      "(above start)" if torch else ""))
for w, what in rows:
    d = run([b + "/bench/bench_train", "-s", secs, w])
    line = "%s\t%.4g\t%s\t%s\t%.0f%%\t%s\t%.0f (%.0f)" % (
        what, float(d[1]), d[2], d[3], 100 * float(d[4]), d[5],
        float(d[6]), float(d[6]) - float(d[7]))
    if w == "unet-nfe1":
        line += "  [%.2f ms/NFE]" % (1e3 / float(d[1]))
    if torch:
        p = run(["/usr/bin/python3", "scripts/torch_bench.py", "-s", secs,
                 w])
        line += "\t%.4g\t%.2fx\t%.0f (%.0f)" % (
            float(p[1]), float(d[1]) / float(p[1]), float(p[6]),
            float(p[6]) - float(p[7]))
    print(line, flush=True)
PY

# Exact OT: the assignment (dm_ot_assign: cost rows and solver, the whole
# call) on 2-D Gaussian clouds of n = 1000 and 2000 points, and right after
# each the same clouds in POT (ot.dist + ot.emd2, the network simplex)
# when /usr/bin/python3 imports ot.  Both print the mean cost: they agree.
for n in 1000 2000; do
	"$B/bench/bench_lap" "$n" "$W"
	if /usr/bin/python3 -c 'import ot' 2>/dev/null; then
		/usr/bin/python3 scripts/pot_emd_bench.py "$W"
	else
		echo "# POT: python3 does not import ot; no comparison"
	fi
done
