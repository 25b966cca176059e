# lib.sh — helpers for the command-line tests (sourced by tests/cli/test-*.sh).
#
#   run EXPECTED_EXIT CMD...    run CMD, keep stdout in $T/out, stderr in $T/err
#   ok  "description"           record a pass
#   bad "description"           record a failure (prints what was seen)
#   t_exit NAME CODE CMD...     pass if CMD exits CODE
#   t_err NAME CODE REGEX CMD...   ... and its stderr is ONE line matching REGEX
#   t_out NAME REGEX CMD...     pass if CMD exits 0 and stdout matches REGEX
#   finish                      print "name: N passed, N failed", exit status
set -u
T=$(mktemp -d "${TMPDIR:-/tmp}/dm-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
PASS=0 FAIL=0
SUITE=$(basename "$0" .sh)
FIX=$(cd "$(dirname "$0")/../fixtures" && pwd)

run() {
	"$@" >"$T/out" 2>"$T/err"
	RC=$?
}
ok() { PASS=$((PASS + 1)); }
bad() {
	FAIL=$((FAIL + 1))
	echo "FAIL $SUITE: $1"
	echo "  exit $RC; stderr:"; sed -n '1,5s/^/    /p' "$T/err"
	echo "  stdout:"; sed -n '1,5s/^/    /p' "$T/out"
}
t_exit() {
	name=$1 code=$2; shift 2
	run "$@"
	if [ "$RC" -eq "$code" ]; then ok; else bad "$name (want exit $code)"; fi
}
t_err() {
	name=$1 code=$2 re=$3; shift 3
	run "$@"
	if [ "$RC" -eq "$code" ] && [ "$(wc -l <"$T/err")" -eq 1 ] &&
	    grep -Eq -- "$re" "$T/err"; then ok
	else bad "$name (want exit $code and one stderr line /$re/)"; fi
}
t_out() {
	name=$1 re=$2; shift 2
	run "$@"
	if [ "$RC" -eq 0 ] && grep -Eq -- "$re" "$T/out"; then ok
	else bad "$name (want exit 0 and stdout /$re/)"; fi
}
check() {	# check NAME SHELL-CONDITION
	if eval "$2"; then ok; else RC=-; bad "$1 ($2)"; fi
}
finish() {
	echo "$SUITE: $PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
}
t_usage() {	# t_usage NAME REGEX CMD...: exit 2, first stderr line matches
	name=$1 re=$2; shift 2
	run "$@"
	if [ "$RC" -eq 2 ] && head -n 1 "$T/err" | grep -Eq -- "$re"; then ok
	else bad "$name (want exit 2 and a first stderr line /$re/)"; fi
}
