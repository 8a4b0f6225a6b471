#!/usr/bin/env bash
# The overhead benchmark: an open/close loop, a fork+exec loop and a loopback
# connect loop (corral_bench_loops), each run
#   (a) without corral,
#   (b) outside a session while `corral run` watches an idle session,
#   (c) inside a session (`corral run -- corral_bench_loops MODE SECONDS`).
# Prints ops/s of each, the time ratios b/a and c/a (cost per operation
# relative to (a); >1 means slower), the events per second corral delivered
# in (c) and the events the kernel ring buffer dropped in (c).
#
# Goals: b/a <= 1.02 on all three; c/a <= 1.5 on open; zero drops on exec at
# the default ring size. A benchmark, not a test: a missed goal is only
# printed. The exit status is non-zero only when something breaks.
#
# Builds nothing. Run as root:   sudo scripts/bench.sh
# Environment:
#   BUILD          build directory (default: <repo>/build)
#   CORRAL         corral binary (default: $BUILD/agent/corral)
#   BENCH_LOOPS    loop binary (default: $BUILD/tests/bench/corral_bench_loops)
#   BENCH_SECONDS  seconds per loop run (default 3)
#   BENCH_REPS     (a),(b) pairs per mode, interleaved a,b,a,b; best kept (default 2)
#   BENCH_MODES    modes to run (default "open exec connect")
#   BENCH_KEEP     1 to keep the audit files (their directory is printed)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
CORRAL=${CORRAL:-$BUILD/agent/corral}
LOOPS=${BENCH_LOOPS:-$BUILD/tests/bench/corral_bench_loops}
SECS=${BENCH_SECONDS:-3}
REPS=${BENCH_REPS:-2}
MODES=${BENCH_MODES:-open exec connect}
KEEP=${BENCH_KEEP:-0}

fail() {
	echo "bench: $*" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] || fail "corral needs root; run as root"
[[ -x $CORRAL ]] || fail "no corral binary at $CORRAL (build first, or set BUILD/CORRAL)"
[[ -x $LOOPS ]] || fail "no corral_bench_loops at $LOOPS (build first, or set BUILD/BENCH_LOOPS)"
[[ $SECS =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "BENCH_SECONDS '$SECS' is not a number"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || fail "BENCH_REPS '$REPS' is not a positive integer"
for mode in $MODES; do
	case $mode in open | exec | connect) ;; *) fail "unknown mode '$mode'" ;; esac
done

TMP=$(mktemp -d /tmp/corral-bench.XXXXXX)
IDLE_PID=

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
	if [[ -n $IDLE_PID ]]; then
		kill -TERM "$IDLE_PID" 2>/dev/null || true
		wait "$IDLE_PID" 2>/dev/null || true
	fi
	if [[ $KEEP == 1 ]]; then
		echo "bench: audit files kept in $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# field KEY LINE: the value of KEY=VALUE in a corral_bench_loops output line.
field() {
	awk -v key="$1" '{ for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) { print substr($i, length(key) + 2); exit } }' <<<"$2"
}

# check_line MODE LINE: fail unless LINE is a complete loop result.
check_line() {
	[[ $2 =~ ^$1\ ops=[0-9]+\ seconds=[0-9.]+\ ops_per_sec=[0-9.]+$ ]] ||
		fail "unexpected output from corral_bench_loops $1: '$2'"
}

# The larger of two numbers.
max() { awk -v x="$1" -v y="$2" 'BEGIN { print (y > x ? y : x) }'; }

# (a) and (b): one loop run, ops/s on stdout.
run_plain() {
	local mode=$1 out
	out=$("$LOOPS" "$mode" "$SECS") || fail "corral_bench_loops $mode failed"
	check_line "$mode" "$out"
	field ops_per_sec "$out"
}

# Starts `corral run` of an idle session in the background and waits until
# its session has started.
start_idle() {
	local audit=$TMP/$1-idle.jsonl i
	rm -f "$audit"
	"$CORRAL" run --quiet --allow-root --audit "$audit" -- sleep 3600 \
		>"$TMP/$1-idle.out" 2>"$TMP/$1-idle.err" &
	IDLE_PID=$!
	for ((i = 0; i < 200; i++)); do
		if grep -q '"session_start"' "$audit" 2>/dev/null; then
			return 0
		fi
		if ! kill -0 "$IDLE_PID" 2>/dev/null; then
			cat "$TMP/$1-idle.err" >&2
			IDLE_PID=
			fail "the idle corral run ended before its session started"
		fi
		sleep 0.05
	done
	cat "$TMP/$1-idle.err" >&2
	fail "no session_start in $audit after 10 s"
}

stop_idle() {
	local rc=0
	kill -TERM "$IDLE_PID" 2>/dev/null || true
	wait "$IDLE_PID" || rc=$?
	IDLE_PID=
	# corral passes SIGTERM to sleep and exits as it did: 128 + 15.
	if [[ $rc -ne 143 && $rc -ne 0 ]]; then
		cat "$TMP/$1-idle.err" >&2
		fail "the idle corral run exited with status $rc"
	fi
}

# events FILE KIND: the number of KIND records in an audit file. A quote
# inside a JSON string is escaped, so "KIND":{ only matches the event key.
events() { grep -c "\"$2\":{" "$1" || true; }

# lost FILE FIELD: the sum of FIELD over the "lost" records of an audit file.
lost() {
	awk -v f="$2" '
		/"lost":[{]/ {
			if (match($0, "\"" f "\":\"?[0-9]+")) {
				s = substr($0, RSTART, RLENGTH)
				sub(/^"[a-z_]*":"?/, "", s)
				n += s
			}
		}
		END { printf "%.0f\n", n }' "$1"
}

echo "# corral overhead benchmark: kernel $(uname -r), $(nproc) cpus," \
	"${SECS}s per run, best of $REPS for (a) and (b)" >&2

declare -A A B C EV EVOP DROP OTHER
for mode in $MODES; do
	best_a=0 best_b=0
	for ((r = 1; r <= REPS; r++)); do
		a=$(run_plain "$mode")
		echo "#   $mode (a) run $r: $a ops/s" >&2
		start_idle "$mode"
		b=$(run_plain "$mode")
		stop_idle "$mode"
		echo "#   $mode (b) run $r: $b ops/s" >&2
		best_a=$(max "$best_a" "$a")
		best_b=$(max "$best_b" "$b")
	done

	audit=$TMP/$mode-session.jsonl
	rm -f "$audit"
	out=$("$CORRAL" run --quiet --allow-root --audit "$audit" -- "$LOOPS" "$mode" "$SECS" \
		2>"$TMP/$mode-session.err") || {
		cat "$TMP/$mode-session.err" >&2
		fail "corral run -- corral_bench_loops $mode failed"
	}
	check_line "$mode" "$out"
	c=$(field ops_per_sec "$out")
	c_ops=$(field ops "$out")
	c_secs=$(field seconds "$out")
	echo "#   $mode (c): $c ops/s" >&2
	grep -q '"session_end"' "$audit" || fail "no session_end in $audit"

	n=$(events "$audit" "$mode")
	A[$mode]=$best_a
	B[$mode]=$best_b
	C[$mode]=$c
	EV[$mode]=$(awk -v n="$n" -v s="$c_secs" 'BEGIN { printf "%.0f", n / s }')
	EVOP[$mode]=$(awk -v n="$n" -v o="$c_ops" 'BEGIN { printf "%.3f", n / o }')
	DROP[$mode]=$(lost "$audit" ringbuf_dropped)
	other=0
	for f in pending_full session_map_full read_errors undecodable; do
		k=$(lost "$audit" "$f")
		[[ $k == 0 ]] || other="$other $f=$k"
	done
	OTHER[$mode]=$other
done

echo
printf '%-8s %12s %12s %12s %7s %7s %12s %7s %10s\n' \
	mode "a ops/s" "b ops/s" "c ops/s" "b/a" "c/a" "c events/s" "ev/op" "c drops"
for mode in $MODES; do
	awk -v m="$mode" -v a="${A[$mode]}" -v b="${B[$mode]}" -v c="${C[$mode]}" \
		-v ev="${EV[$mode]}" -v evop="${EVOP[$mode]}" -v d="${DROP[$mode]}" 'BEGIN {
		printf "%-8s %12.0f %12.0f %12.0f %7.3f %7.3f %12s %7s %10s\n",
			m, a, b, c, a / b, a / c, ev, evop, d
	}'
done
echo
echo "ratios are time per operation relative to (a): >1 is slower." \
	"Goals: b/a <= 1.02 on all; c/a <= 1.5 on open; 0 drops on exec (default ring)."
echo "c events/s: \"open\"/\"exec\"/\"connect\" records of the session per second of the loop;" \
	"ev/op: those records per loop operation."
for mode in $MODES; do
	if [[ ${OTHER[$mode]} != 0 ]]; then
		echo "$mode (c) also lost:${OTHER[$mode]#0}"
	fi
done
exit 0
