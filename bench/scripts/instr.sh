#!/usr/bin/env bash
# instr.sh: user-space instructions per proxied GET (proxy-small's request),
# counted by valgrind's cachegrind for the gateway and, when installed, for
# nginx (one worker, the same two stubs), each with the config the bench
# suite generates (go run ./bench -write-config). Unlike req/s or CPU time, the
# count barely moves with the machine's load (the same binary gives the same
# count within about 1%), so it shows what a change to the hot path is worth
# on a noisy box. Kernel time (the system calls) is not in it.
#
# Each target runs twice under cachegrind, with wrk for SHORT and LONG
# seconds; the difference of the two totals over the difference of the
# request counts cancels start-up and shutdown.
#
# Usage: bench/scripts/instr.sh            (needs valgrind and wrk)
#        SHORT=2 LONG=6 TARGETS="gateway nginx" bench/scripts/instr.sh
#        KEEP=DIR bench/scripts/instr.sh   (keeps cachegrind's outputs,
#        cg.TARGET.SECONDS.out, in DIR: cg_diff LONG SHORT, then cg_annotate)
set -euo pipefail

SHORT=${SHORT:-2}
LONG=${LONG:-6}
TARGETS=${TARGETS:-gateway nginx}
root=$(cd "$(dirname "$0")/../.." && pwd)
for tool in valgrind wrk; do
	command -v "$tool" >/dev/null || { echo "instr.sh: $tool not found (apt-get install valgrind; make bench-deps)" >&2; exit 1; }
done
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$work"/cg.*.out "$KEEP"/ 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

(cd "$root" && go build -o "$work/fastgate" . && go build -o "$work/bench" ./bench)
mkfifo "$work/stubs.in"
"$work/bench" -stubs 2 -stub-body 256 <"$work/stubs.in" >"$work/stubs.out" &
pids+=($!)
exec 3>"$work/stubs.in" # keeps the stubs' stdin open
for _ in $(seq 50); do [ -s "$work/stubs.out" ] && break; sleep 0.1; done
read -r _ a b <"$work/stubs.out"
port=18199

# The suite's own proxy-small configs (nginx with one worker, as the
# instructions of one process are counted).
mkdir -p "$work/gateway" "$work/nginx"
gwconf=$("$work/bench" -write-config gateway -config-dir "$work/gateway" -listen "127.0.0.1:$port" -upstream-addrs "$a,$b")
ngconf=$("$work/bench" -write-config nginx -workers 1 -config-dir "$work/nginx" -listen "127.0.0.1:$port" -upstream-addrs "$a,$b")

# run TARGET SECONDS: prints "instructions requests".
run() {
	local out="$work/cg.$1.$2.out" cmd
	case $1 in
	gateway) cmd=("$work/fastgate" -config "$gwconf") ;;
	nginx) cmd=(nginx -p "$work/nginx" -c "$ngconf" -g "daemon off; master_process off;") ;;
	esac
	rm -f "$out"
	# Go's signal-based preemption confuses valgrind; the gateway runs without it.
	GODEBUG=asyncpreemptoff=1 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$out" \
		"${cmd[@]}" >"$work/$1.log" 2>&1 &
	local vp=$!
	for _ in $(seq 100); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && break
		sleep 0.3
	done
	local n
	n=$(wrk -t1 -c8 -d"${2}s" "http://127.0.0.1:$port/x" | awk '/requests in/ {print $1}')
	case $1 in
	gateway) kill -INT "$vp" ;;
	nginx) kill -QUIT "$vp" ;;
	esac
	wait "$vp" 2>/dev/null || true
	echo "$(awk '/^summary:/ {print $2}' "$out") $n"
}

for t in $TARGETS; do
	if [ "$t" = nginx ] && ! command -v nginx >/dev/null; then
		echo "nginx: not installed, skipped"
		continue
	fi
	read -r i1 n1 < <(run "$t" "$SHORT")
	read -r i2 n2 < <(run "$t" "$LONG")
	echo "$t: $(( (i2 - i1) / (n2 - n1) )) instructions per request ($((n2 - n1)) requests apart)"
done
