#!/bin/sh
# run.sh BUILD — every test of `make check`: unit tests, command-line tests,
# man page lint, man page EXAMPLES.  Ends with "N passed, N failed".
set -u
B=${1:-build}
top=$(pwd)
export PATH="$top/$B/bin:$PATH"
export DM_BUILD="$top/$B"
export LC_ALL=C
pass=0 fail=0
count() {	# count LOGFILE: add a runner's "N passed, N failed" line
	line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
	p=$(echo "$line" | sed -E 's/^(.*[^0-9])?([0-9]+) passed.*/\2/')
	f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) failed.*/\1/')
	[ -n "$line" ] || { p=0; f=1; }
	pass=$((pass + p)); fail=$((fail + f))
}
log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT

"$B/tests/unit/run" >"$log/unit" 2>"$log/unit.err"
rc=$?
cat "$log/unit.err" >&2; cat "$log/unit"
count "$log/unit"
[ $rc -eq 0 ] || grep -q ' [1-9][0-9]* failed' "$log/unit" || fail=$((fail + 1))

for t in tests/cli/test-*.sh; do
	[ -e "$t" ] || continue
	sh "$t" >"$log/cli" 2>&1
	rc=$?
	cat "$log/cli"
	count "$log/cli"
	[ $rc -eq 0 ] || grep -q ' [1-9][0-9]* failed' "$log/cli" || fail=$((fail + 1))
done

sh tests/man.sh >"$log/man" 2>&1
cat "$log/man"
count "$log/man"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
