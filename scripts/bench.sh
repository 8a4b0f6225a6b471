#!/usr/bin/env bash
# The overhead benchmark: an open/close loop, a fork+exec loop and a loopback
# connect loop (corral_bench_loops), each run
#   (a) without corral,
#   (b) outside a session while `corral run` watches an idle session,
#   (c) inside a session (`corral run -- corral_bench_loops MODE SECONDS`),
#   (f) while only a no-op program sits on the sys_exit raw tracepoint
#       (corral_bench_floor): f/a is what the kernel charges for any program
#       there, the floor under b/a that no corral code can win back,
# (b) and (c) with the shipped default policy enforced (no --policy) and the
# agent running as BENCH_USER (nobody: what corral can cache for a non-root
# agent, it does). The connect loop's listener is the loop's own, which the
# default egress policy allows on loopback.
# Prints ops/s of each, the time ratios b/a, f/a and c/a (cost per operation
# relative to (a); >1 means slower), the events per second corral delivered
# in (c) and the events the kernel ring buffer dropped in (c).
#
# Then the open() latency table (corral_bench_ops open-lat / open-distinct:
# each open() timed alone), p50 and p99 in µs, (a) (b) (c) as above, for
#   same      N opens of /etc/hostname: in a session only its first open goes
#             to the supervisor, then the allow is cached in the kernel
#             (a fanotify ignore mark: the agent cannot write the file);
#   distinct  one open of each of N files (root's, 0644): in a session every
#             one is a first open, a permission decision in the supervisor —
#             the uncached cost;
#   own       N opens of a file the agent owns: an allow is never cached for
#             a file the agent can write, so every open is decided.
#
# Goals: b/a <= 1.02 on all three; c/a <= 1.5 on open; zero drops on exec at
# the default ring size; open() p99 added by the guard <= 50 µs. A benchmark,
# not a test: a missed goal is only printed. The exit status is non-zero only
# when something breaks.
#
# Builds nothing. Run as root:   sudo scripts/bench.sh
# Environment:
#   BUILD          build directory (default: <repo>/build)
#   CORRAL         corral binary (default: $BUILD/agent/corral)
#   BENCH_LOOPS    loop binary (default: $BUILD/tests/bench/corral_bench_loops)
#   BENCH_OPS      latency probe (default: $BUILD/tests/bench/corral_bench_ops)
#   BENCH_FLOOR    no-op sys_exit program (default: $BUILD/tests/bench/corral_bench_floor)
#   BENCH_SECONDS  seconds per loop run (default 3)
#   BENCH_REPS     (a),(f),(b) runs per mode, interleaved a,f,b,a,f,b; best kept (default 2)
#   BENCH_MODES    modes to run (default "open exec connect")
#   BENCH_KEEP     1 to keep the audit files (their directory is printed)
#   BENCH_USER     the agent's user in (b) and (c) (default nobody; root runs
#                  it with --allow-root, and then nothing is ever cached)
#   BENCH_LAT_OPS  opens per latency run, rows same and own (default 200000;
#                  0 skips the latency table)
#   BENCH_LAT_FILES distinct files, row distinct (default 5000)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
CORRAL=${CORRAL:-$BUILD/agent/corral}
LOOPS=${BENCH_LOOPS:-$BUILD/tests/bench/corral_bench_loops}
SECS=${BENCH_SECONDS:-3}
REPS=${BENCH_REPS:-2}
MODES=${BENCH_MODES:-open exec connect}
KEEP=${BENCH_KEEP:-0}
OPS=${BENCH_OPS:-$BUILD/tests/bench/corral_bench_ops}
FLOOR=${BENCH_FLOOR:-$BUILD/tests/bench/corral_bench_floor}
AGENT_USER=${BENCH_USER:-nobody}
LAT_OPS=${BENCH_LAT_OPS:-200000}
LAT_FILES=${BENCH_LAT_FILES:-5000}

fail() {
	echo "bench: $*" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] || fail "corral needs root; run as root"
[[ -x $CORRAL ]] || fail "no corral binary at $CORRAL (build first, or set BUILD/CORRAL)"
[[ -x $LOOPS ]] || fail "no corral_bench_loops at $LOOPS (build first, or set BUILD/BENCH_LOOPS)"
[[ -x $FLOOR ]] || fail "no corral_bench_floor at $FLOOR (build first, or set BUILD/BENCH_FLOOR)"
[[ $SECS =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "BENCH_SECONDS '$SECS' is not a number"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || fail "BENCH_REPS '$REPS' is not a positive integer"
for mode in $MODES; do
	case $mode in open | exec | connect) ;; *) fail "unknown mode '$mode'" ;; esac
done
[[ $LAT_OPS =~ ^[0-9]+$ ]] || fail "BENCH_LAT_OPS '$LAT_OPS' is not a number"
[[ $LAT_FILES =~ ^[1-9][0-9]*$ ]] || fail "BENCH_LAT_FILES '$LAT_FILES' is not a positive integer"
if [[ $LAT_OPS != 0 ]]; then
	[[ -x $OPS ]] || fail "no corral_bench_ops at $OPS (build first, or set BUILD/BENCH_OPS)"
fi
id "$AGENT_USER" >/dev/null 2>&1 || fail "no user '$AGENT_USER' (BENCH_USER)"

# How the agent runs: as BENCH_USER, which must be able to run the programs.
if [[ $(id -u "$AGENT_USER") == 0 ]]; then
	AGENT_OPTS=(--allow-root)
else
	AGENT_OPTS=(--user "$AGENT_USER")
	for bin in "$LOOPS" $([[ $LAT_OPS != 0 ]] && echo "$OPS"); do
		runuser -u "$AGENT_USER" -- test -x "$bin" ||
			fail "$AGENT_USER cannot run $bin (a directory on its path is not searchable?);" \
				"make it so, or set BENCH_USER=root"
	done
fi

TMP=$(mktemp -d /tmp/corral-bench.XXXXXX)
# The agent reads the latency files in here; corral runs from here, so the
# session's project (its cwd, which the `**/` globs of the policy walk) is
# this small directory.
chmod 755 "$TMP"
cd "$TMP"
IDLE_PID=

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
	[[ -z ${FLOOR_PID:-} ]] || kill "$FLOOR_PID" 2>/dev/null || true
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

. "$ROOT/scripts/bench_lib.sh"


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
	wait_quiet
	rm -f "$audit"
	"$CORRAL" run --quiet "${AGENT_OPTS[@]}" --audit "$audit" -- sleep 3600 \
		>"$TMP/$1-idle.out" 2>"$TMP/$1-idle.err" &
	IDLE_PID=$!
	# a policy's hosts are resolved before the session starts: allow for DNS
	for ((i = 0; i < 1200; i++)); do
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
	fail "no session_start in $audit after 60 s"
}

# (f): holds the no-op sys_exit program (corral_bench_floor keeps it
# attached until its stdin closes).
start_floor() {
	local line
	coproc FLOOR_PROC { exec "$FLOOR"; }
	FLOOR_PID=$FLOOR_PROC_PID
	read -r line <&"${FLOOR_PROC[0]}" || fail "corral_bench_floor did not start"
	[[ $line == attached ]] || fail "corral_bench_floor said '$line'"
}

stop_floor() {
	eval "exec ${FLOOR_PROC[1]}>&-"
	wait "$FLOOR_PID" || fail "corral_bench_floor failed"
	FLOOR_PID=
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

# events FILE KIND: the number of KIND records in an audit file and its
# rotated files (FILE.<seq>). A quote
# inside a JSON string is escaped, so "KIND":{ only matches the event key.
events() { cat "$1".* "$1" 2>/dev/null | grep -c "\"$2\":{" || true; }  # rotated files too

# lost FILE FIELD: the sum of FIELD over the "lost" records of an audit file
# and its rotated files.
lost() {
	awk -v f="$2" '
		/"lost":[{]/ {
			if (match($0, "\"" f "\":\"?[0-9]+")) {
				s = substr($0, RSTART, RLENGTH)
				sub(/^"[a-z_]*":"?/, "", s)
				n += s
			}
		}
		END { printf "%.0f\n", n }' "$1" "$1".* 2>/dev/null || true
}

echo "# corral overhead benchmark: kernel $(uname -r), $(nproc) cpus," \
	"${SECS}s per run, best of $REPS for (a) and (b); agent: ${AGENT_OPTS[*]}," \
	"default policy" >&2

declare -A A B C F EV EVOP DROP OTHER
for mode in $MODES; do
	best_a=0 best_b=0 best_f=0
	for ((r = 1; r <= REPS; r++)); do
		wait_quiet
		a=$(run_plain "$mode")
		echo "#   $mode (a) run $r: $a ops/s" >&2
		after_run
		start_floor
		f=$(run_plain "$mode")
		stop_floor
		echo "#   $mode (f) run $r: $f ops/s" >&2
		best_f=$(max "$best_f" "$f")
		start_idle "$mode"
		b=$(run_plain "$mode")
		after_run "$IDLE_PID"
		stop_idle "$mode"
		echo "#   $mode (b) run $r: $b ops/s" >&2
		best_a=$(max "$best_a" "$a")
		best_b=$(max "$best_b" "$b")
	done

	audit=$TMP/$mode-session.jsonl
	rm -f "$audit"
	wait_quiet
	out=$("$CORRAL" run --quiet "${AGENT_OPTS[@]}" --audit "$audit" -- "$LOOPS" "$mode" "$SECS" \
		2>"$TMP/$mode-session.err") || {
		cat "$TMP/$mode-session.err" >&2
		fail "corral run -- corral_bench_loops $mode failed"
	}
	check_line "$mode" "$out"
	c=$(field ops_per_sec "$out")
	c_ops=$(field ops "$out")
	c_secs=$(field seconds "$out")
	echo "#   $mode (c): $c ops/s" >&2
	after_run
	grep -q '"session_end"' "$audit" || fail "no session_end in $audit"
	if [[ -z ${POLICY_SUMMARY:-} ]]; then
		# the session's first records may be in a rotated file (PATH.<seq>)
		POLICY_SUMMARY=$(cat "$audit".* "$audit" 2>/dev/null | grep -o '"summary":"[^"]*"' | head -n1 | cut -d'"' -f4 || true)
		echo "#   policy in force: ${POLICY_SUMMARY:-unknown}" >&2
	fi

	n=$(events "$audit" "$mode")
	A[$mode]=$best_a
	B[$mode]=$best_b
	F[$mode]=$best_f
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
printf '%-8s %12s %12s %12s %7s %7s %7s %12s %7s %10s\n' \
	mode "a ops/s" "b ops/s" "c ops/s" "b/a" "f/a" "c/a" "c events/s" "ev/op" "c drops"
for mode in $MODES; do
	awk -v m="$mode" -v a="${A[$mode]}" -v b="${B[$mode]}" -v c="${C[$mode]}" -v f="${F[$mode]}" \
		-v ev="${EV[$mode]}" -v evop="${EVOP[$mode]}" -v d="${DROP[$mode]}" 'BEGIN {
		printf "%-8s %12.0f %12.0f %12.0f %7.3f %7.3f %7.3f %12s %7s %10s\n",
			m, a, b, c, a / b, a / f, a / c, ev, evop, d
	}'
done
echo
echo "ratios are time per operation relative to (a): >1 is slower; f/a: a no-op sys_exit" \
	"program alone, the floor under b/a. Goals: b/a <= 1.02 on all; c/a <= 1.5 on open; 0 drops on exec (default ring)."
echo "c events/s: \"open\"/\"exec\"/\"connect\" records of the session per second of the loop;" \
	"ev/op: those records per loop operation."
for mode in $MODES; do
	if [[ ${OTHER[$mode]} != 0 ]]; then
		echo "$mode (c) also lost:${OTHER[$mode]#0}"
	fi
done
if ((SUSPECT)); then
	echo "warning: other corral processes ran around $SUSPECT of the throughput runs: those figures are suspect."
fi
# ---- open() latency ----------------------------------------------------------

# lat_line LINE: fail unless LINE is a complete latency result.
lat_check() {
	[[ $2 =~ ^$1\ ops=[0-9]+\ .*p50_us=[0-9.]+\ .*p99_us=[0-9.]+ ]] ||
		fail "unexpected output from corral_bench_ops $1: '$2'"
}

# The smaller of two numbers (empty: the other).
min() { awk -v x="$1" -v y="$2" 'BEGIN { if (x == "") print y; else if (y == "") print x; else print (y < x ? y : x) }'; }

# lat_args ROW: the corral_bench_ops arguments of a latency row.
lat_args() {
	case $1 in
	same) echo "open-lat $LAT_OPS /etc/hostname" ;;
	distinct) echo "open-distinct $LAT_FILES $TMP/files" ;;
	own) echo "open-lat $LAT_OPS $TMP/own" ;;
	esac
}

# lat_run WHERE ROW: one latency run, "p50 p99" on stdout. WHERE is plain
# (a, b) or session (c: a fresh session, so nothing of it is cached yet).
lat_run() {
	local where=$1 row=$2 out audit
	# shellcheck disable=SC2046  # lat_args gives words
	if [[ $where == plain ]]; then
		out=$("$OPS" $(lat_args "$row")) || fail "corral_bench_ops $(lat_args "$row") failed"
	else
		audit=$TMP/lat-$row-session.jsonl
		rm -f "$audit"
		out=$("$CORRAL" run --quiet "${AGENT_OPTS[@]}" --audit "$audit" -- "$OPS" $(lat_args "$row") \
			2>"$TMP/lat-$row-session.err") || {
			cat "$TMP/lat-$row-session.err" >&2
			fail "corral run -- corral_bench_ops $(lat_args "$row") failed"
		}
	fi
	lat_check "${out%% *}" "$out"
	echo "$(field p50_us "$out") $(field p99_us "$out")"
}

ROWS="same distinct own"
if [[ $LAT_OPS != 0 ]]; then
	mkdir "$TMP/files"
	"$OPS" mkfiles "$LAT_FILES" "$TMP/files" || fail "corral_bench_ops mkfiles failed"
	: >"$TMP/own"
	chmod 644 "$TMP/own"
	chown "$AGENT_USER" "$TMP/own"
	echo "# open() latency: $LAT_OPS opens (same, own), $LAT_FILES files (distinct)," \
		"best of $REPS per cell" >&2
	declare -A L
	for ((r = 1; r <= REPS; r++)); do
		for row in $ROWS; do
			wait_quiet
			res=$(lat_run plain "$row")
			read -r p50 p99 <<<"$res"
			L[a50 $row]=$(min "${L[a50 $row]:-}" "$p50")
			L[a99 $row]=$(min "${L[a99 $row]:-}" "$p99")
			echo "#   $row (a) run $r: p50 $p50 p99 $p99 µs" >&2
			after_run
		done
		start_idle lat
		for row in $ROWS; do
			res=$(lat_run plain "$row")
			read -r p50 p99 <<<"$res"
			L[b50 $row]=$(min "${L[b50 $row]:-}" "$p50")
			L[b99 $row]=$(min "${L[b99 $row]:-}" "$p99")
			echo "#   $row (b) run $r: p50 $p50 p99 $p99 µs" >&2
			after_run "$IDLE_PID"
		done
		stop_idle lat
		for row in $ROWS; do
			wait_quiet
			res=$(lat_run session "$row")
			read -r p50 p99 <<<"$res"
			L[c50 $row]=$(min "${L[c50 $row]:-}" "$p50")
			L[c99 $row]=$(min "${L[c99 $row]:-}" "$p99")
			echo "#   $row (c) run $r: p50 $p50 p99 $p99 µs" >&2
			after_run
		done
	done

	echo
	printf '%-9s %8s %8s %8s %8s %8s %8s %9s %9s\n' \
		"open()" "a p50" "a p99" "b p50" "b p99" "c p50" "c p99" "b-a p99" "c-a p99"
	for row in $ROWS; do
		awk -v m="$row" -v a5="${L[a50 $row]}" -v a9="${L[a99 $row]}" -v b5="${L[b50 $row]}" \
			-v b9="${L[b99 $row]}" -v c5="${L[c50 $row]}" -v c9="${L[c99 $row]}" 'BEGIN {
			printf "%-9s %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %9.2f %9.2f\n",
				m, a5, a9, b5, b9, c5, c9, b9 - a9, c9 - a9
		}'
	done
	echo
	echo "open() latency in µs (the open() call alone), best of $REPS. same: /etc/hostname," \
		"$LAT_OPS opens (in a session: cached in the kernel after the first);" \
		"distinct: $LAT_FILES files opened once each (in a session: every open a supervisor" \
		"decision, nothing cached yet); own: a file the agent owns, $LAT_OPS opens (never" \
		"cached: every open a decision). Goal: c-a p99 <= 50 µs."
	for row in distinct own; do
		awk -v m="$row" -v a9="${L[a99 $row]}" -v c9="${L[c99 $row]}" 'BEGIN {
			d = c9 - a9
			printf "%s: guard adds %.2f µs at p99 inside a session: goal %s\n", m, d, d <= 50 ? "met" : "NOT met"
		}'
	done
	if ((SUSPECT)); then
		echo "warning: other corral processes ran around $SUSPECT runs in all: figures are suspect."
	fi
fi
exit 0
