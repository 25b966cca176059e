#!/bin/sh
# deps.sh — install what the dm toolkit needs to build and test, if missing.
#
#   sh scripts/deps.sh          build and test dependencies
#   sh scripts/deps.sh --fuzz   also clang with libFuzzer
#   sh scripts/deps.sh --check  only report; exit 1 if something is missing
#
# As root it runs apt-get; otherwise it prints the command to run and fails.
set -u
mode=${1:-}
missing=""

need() {	# need PACKAGE TEST...
	pkg=$1; shift
	if ! "$@" >/dev/null 2>&1; then
		missing="$missing $pkg"
	fi
}
have() { command -v "$1"; }
hdr() { [ -e "/usr/include/$1" ] || [ -e "/usr/include/x86_64-linux-gnu/$1" ] \
	|| pkg-config --exists "$2"; }

need gcc have cc
need make have make
need pkg-config have pkg-config
ma=$(cc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
need libopenblas-openmp-dev test -e "/usr/lib/$ma/openblas-openmp/libopenblas.so"
need liblapacke-dev hdr lapacke.h lapacke
need libpng-dev pkg-config --exists libpng
need zlib1g-dev pkg-config --exists zlib
need mandoc have mandoc
need python3-numpy /usr/bin/python3 -c 'import numpy'
if [ "$mode" = --fuzz ]; then
	need clang have clang
	need libclang-rt-dev sh -c 'clang -print-file-name=libclang_rt.fuzzer-x86_64.a | grep -q /'
fi

[ -z "$missing" ] && exit 0
if [ "$mode" = --check ]; then
	echo "deps.sh: missing:$missing" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing:$missing" >&2
	echo "deps.sh: run: sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "deps.sh: installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2 &&
apt-get install -y -qq --no-install-recommends$missing >&2 || {
	echo "deps.sh: apt-get install failed" >&2
	exit 1
}
