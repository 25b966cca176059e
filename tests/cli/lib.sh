# lib.sh — helpers for the command-line tests (sourced by tests/cli/test-*.sh).
#
#   run CMD...                  run CMD, keep stdout in $T/out, stderr in $T/err
#   run_failing CMD...          the same for a command expected to fail (no leak check)
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
# run_failing CMD...: run, for a command expected to fail.  A tool that
# fails exits through err(3) and leaves its memory to the system; the
# pointers to it are dead at that noreturn call, so LeakSanitizer (make
# check SANITIZE=1) reports it in some runs and not in others, by where
# the stack happens to lie.  Leak detection is off for these commands
# only; every other sanitizer check stays on.
run_failing() {
	_old=${ASAN_OPTIONS-} _set=${ASAN_OPTIONS+x}
	ASAN_OPTIONS=${_old:+$_old:}detect_leaks=0
	export ASAN_OPTIONS
	run "$@"
	if [ -n "$_set" ]; then ASAN_OPTIONS=$_old; else unset ASAN_OPTIONS; fi
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
	if [ "$code" -eq 0 ]; then run "$@"; else run_failing "$@"; fi
	if [ "$RC" -eq "$code" ]; then ok; else bad "$name (want exit $code)"; fi
}
t_err() {
	name=$1 code=$2 re=$3; shift 3
	run_failing "$@"
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
	run_failing "$@"
	if [ "$RC" -eq 2 ] && head -n 1 "$T/err" | grep -Eq -- "$re"; then ok
	else bad "$name (want exit 2 and a first stderr line /$re/)"; fi
}
