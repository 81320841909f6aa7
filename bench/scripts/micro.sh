#!/bin/sh
# Go micro-benchmarks of the hot-path packages, saved for benchstat.
# Usage: bench/scripts/micro.sh [extra go test flags]
#   COUNT=6       runs of each benchmark (benchstat wants several)
#   BENCHTIME=1s  go test -benchtime
#   PKGS="proxy balance aggregate"  packages; missing ones are skipped
# Output: bench/results/micro/<timestamp>.txt and latest.txt. Compare two runs:
#   go run golang.org/x/perf/cmd/benchstat@latest old.txt new.txt
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
COUNT=${COUNT:-6}
BENCHTIME=${BENCHTIME:-1s}
PKGS=${PKGS:-"proxy balance aggregate"}

pkgs=""
for p in $PKGS; do
	if ls "$p"/*_test.go >/dev/null 2>&1; then
		pkgs="$pkgs ./$p"
	else
		echo "bench-micro: skipping $p (no package or no tests yet)" >&2
	fi
done
if [ -z "$pkgs" ]; then
	echo "bench-micro: none of $PKGS has tests" >&2
	exit 1
fi

out="$root/bench/results/micro"
mkdir -p "$out"
file="$out/$(date -u +%Y%m%d-%H%M%S).txt"
echo "bench-micro: go test -run='^\$' -bench=. -benchmem -count=$COUNT -benchtime=$BENCHTIME$pkgs" >&2
rc="$file.rc"
# shellcheck disable=SC2086
{
	status=0
	go test -run='^$' -bench=. -benchmem -count="$COUNT" -benchtime="$BENCHTIME" "$@" $pkgs || status=$?
	echo "$status" >"$rc"
} | tee "$file"
status=$(cat "$rc")
rm -f "$rc"
if [ "$status" != 0 ]; then
	echo "bench-micro: go test failed (exit $status); output in $file" >&2
	exit "$status"
fi
cp "$file" "$out/latest.txt"
echo "bench-micro: wrote $file (and latest.txt); compare runs with benchstat" >&2
