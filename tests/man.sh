#!/bin/sh
# man.sh — lint every man page (mandoc -Tlint -W warning) and run every
# command of their EXAMPLES sections in a scratch directory that holds copies
# of tests/fixtures.  Tools come from $PATH (tests/run.sh puts build/bin first).
set -u
pass=0 fail=0
top=$(pwd)
for m in man/man*/*.[157]; do
	[ -e "$m" ] || continue
	if out=$(mandoc -Tlint -W warning "$m" 2>&1) && [ -z "$out" ]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1)); echo "FAIL man lint: $m"; echo "$out" | sed 's/^/    /'
	fi
	# EXAMPLES: each ".Dl $ command" line, run in order in one scratch dir
	d=$(mktemp -d "${TMPDIR:-/tmp}/dm-ex-XXXXXX")
	cp -R "$top/tests/fixtures/." "$d/" 2>/dev/null
	sed -n '/^\.Sh EXAMPLES/,/^\.Sh /p' "$m" | sed -n 's/^\.Dl \$ //p' |
	    sed 's/\\e/\\/g; s/\\(aq/'"'"'/g; s/\\-/-/g; s/\\&//g' >"$d/.examples"
	while IFS= read -r cmd; do
		if (cd "$d" && sh -c "$cmd" >/dev/null 2>"$d/.err" </dev/null); then
			pass=$((pass + 1))
		else
			fail=$((fail + 1)); echo "FAIL example in $m: $cmd"
			sed 's/^/    /' "$d/.err"
		fi
	done <"$d/.examples"
	rm -rf "$d"
done
echo "man: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
