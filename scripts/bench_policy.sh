#!/usr/bin/env bash
# How corral's cost grows with the policy and with the number of sessions.
#
# 1. Policies of N = 10, 1,000 and 10,000 secret globs, exec rules and egress
#    CIDRs each (generated; no hosts, so no DNS), next to an empty policy and
#    the shipped default (both with one rule that allows the benchmark's
#    listener, 127.0.0.2). For each:
#      check ms   `corral policy check` (parse + validate), best of 3
#      start ms   from `corral run` being started to the agent's main()
#                 (corral_bench_ops stamp), minus the same without corral;
#                 median of BENCH_STARTS
#      stop ms    from the agent's main() to `corral run` having exited (the
#                 agent exits at once: linger, teardown, BPF detach)
#      open p50/p99 µs
#                 open() of BENCH_FILES distinct files of the session's
#                 project, each once: every one a fanotify permission
#                 decision through the secret and protected RE2::Sets
#                 (BENCH_REPS passes over as many sets of files in one
#                 session; the smallest p50 and p99 kept)
#      exec/s     fork+exec(/bin/true) in a session: the kernel looks the
#                 names up in the exec rule maps (/bin/true is not named);
#                 BENCH_REPS runs in one session, the best kept (also below)
#      connect/s  TCP connects to a listener outside the session on
#                 127.0.0.2, which the policy allows: every connect is an
#                 LPM-trie lookup among the N CIDRs (the session's own
#                 loopback listeners skip the trie, so the listener is not
#                 the session's)
#    and, with kernel.bpf_stats_enabled=1 during those two loops, the run
#    time per call of the kernel programs that decide them (corral_exec,
#    corral_connect4). A second table breaks the load down, timed in-process
#    by corral_bench_policy (same code as the supervisor).
# 2. 1, 10 and 50 concurrent `corral run` (each its own supervisor, embedded
#    mode) with idle agents: start time per session, the open/close loop
#    outside every session while they idle (b/a), BPF run time per outside
#    open, memory (supervisor RSS, BPF maps and programs, MemAvailable) and
#    the time to stop them all.
#
# A benchmark, not a test: only printed. Non-zero exit only when something
# breaks. Builds nothing. Run as root:   sudo scripts/bench_policy.sh
# Environment:
#   BUILD           build directory (default: <repo>/build)
#   CORRAL          corral binary (default: $BUILD/agent/corral)
#   BENCH_LOOPS     corral_bench_loops (default: $BUILD/tests/bench/corral_bench_loops)
#   BENCH_OPS       corral_bench_ops (default: $BUILD/tests/bench/corral_bench_ops)
#   BENCH_PROBE     corral_bench_policy (default: $BUILD/tests/bench/corral_bench_policy)
#   BENCH_SECONDS   seconds per loop run (default 2)
#   BENCH_REPS      runs per cell, best kept (default 2): loops in and outside
#                   sessions, passes of the open probe
#   BENCH_SIZES     policy sizes (default "10 1000 10000")
#   BENCH_SESSIONS  concurrent session counts (default "1 10 50")
#   BENCH_FILES     files of the session's project, each opened once (default 2000)
#   BENCH_STARTS    start time runs per policy (default 3)
#   BENCH_CONC_POLICY  policy of the concurrent sessions (default: the
#                   generated N=10 policy; "default" for the shipped one,
#                   which resolves its hosts at every start)
#   BENCH_USER      the agent's user (default nobody)
#   BENCH_KEEP      1 to keep the scratch directory (its path is printed)
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
CORRAL=${CORRAL:-$BUILD/agent/corral}
LOOPS=${BENCH_LOOPS:-$BUILD/tests/bench/corral_bench_loops}
OPS=${BENCH_OPS:-$BUILD/tests/bench/corral_bench_ops}
PROBE=${BENCH_PROBE:-$BUILD/tests/bench/corral_bench_policy}
SECS=${BENCH_SECONDS:-2}
REPS=${BENCH_REPS:-2}
SIZES=${BENCH_SIZES:-10 1000 10000}
SESSIONS=${BENCH_SESSIONS:-1 10 50}
FILES=${BENCH_FILES:-2000}
STARTS=${BENCH_STARTS:-3}
CONC_POLICY=${BENCH_CONC_POLICY:-}
AGENT_USER=${BENCH_USER:-nobody}
KEEP=${BENCH_KEEP:-0}

fail() {
	echo "bench_policy: $*" >&2
	exit 1
}
note() { echo "# $*" >&2; }

[[ $(id -u) -eq 0 ]] || fail "corral needs root; run as root"
for bin in "$CORRAL" "$LOOPS" "$OPS" "$PROBE"; do
	[[ -x $bin ]] || fail "no $bin (build first: make corral corral_bench_loops corral_bench_ops corral_bench_policy)"
done
[[ $SECS =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "BENCH_SECONDS '$SECS' is not a number"
for v in REPS FILES STARTS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || fail "BENCH_$v '${!v}' is not a positive integer"
done
for n in $SIZES $SESSIONS; do
	[[ $n =~ ^[1-9][0-9]*$ ]] || fail "'$n' in BENCH_SIZES/BENCH_SESSIONS is not a positive integer"
done
[[ ${BASH_VERSINFO[0]} -ge 5 ]] || fail "needs bash 5 (EPOCHREALTIME)"
id "$AGENT_USER" >/dev/null 2>&1 || fail "no user '$AGENT_USER' (BENCH_USER)"
if [[ $(id -u "$AGENT_USER") == 0 ]]; then
	AGENT_OPTS=(--allow-root)
else
	AGENT_OPTS=(--user "$AGENT_USER")
	for bin in "$LOOPS" "$OPS"; do
		runuser -u "$AGENT_USER" -- test -x "$bin" ||
			fail "$AGENT_USER cannot run $bin; make it so, or set BENCH_USER=root"
	done
fi
AGENT_HOME=$(getent passwd "$AGENT_USER" | cut -d: -f6)

# not under /tmp: a session has a private /tmp and would not see its project
TMP=$(mktemp -d /var/tmp/corral-bench-policy.XXXXXX)
chmod 755 "$TMP"
PROJ=$TMP/proj
LISTEN_PID=
STATS_OLD=$(sysctl -n kernel.bpf_stats_enabled 2>/dev/null || echo 0)
declare -a CONC_PIDS=()

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
	local p
	for p in "${CONC_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${CONC_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ -n $LISTEN_PID ]]; then
		exec 9>&- || true
		kill -TERM "$LISTEN_PID" 2>/dev/null || true
		wait "$LISTEN_PID" 2>/dev/null || true
	fi
	sysctl -qw kernel.bpf_stats_enabled="$STATS_OLD" 2>/dev/null || true
	if [[ $KEEP == 1 ]]; then
		echo "bench_policy: scratch kept in $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

. "$(dirname "${BASH_SOURCE[0]}")/bench_lib.sh"

# Microseconds since the epoch, without a fork: NOW=${EPOCHREALTIME/./}


# nap SECONDS: sleeps without starting a process (the polls below must not
# add execs to the exec program's counts): a read with a timeout on a FIFO
# nobody writes to.
nap() { read -rt "$1" -u 8 _ || true; }

# count_results FILE: the number of result lines (ops_per_sec=) in FILE.
count_results() {
	local l n=0
	[[ -r $1 ]] || { echo 0; return; }
	while IFS= read -r l; do
		[[ $l == *ops_per_sec=* ]] && n=$((n + 1))
	done <"$1"
	echo "$n"
}

# median / min of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR) printf "%.0f\n", (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
minimum() { sort -g | head -n1; }

# ---- BPF objects of a process, from /proc/PID/fdinfo -------------------------

# bpf_objects PID...: "map|prog ID MEMLOCK RUN_TIME_NS RUN_CNT" for every
# BPF map and program the processes hold (links left out).
bpf_objects() {
	local pid files=()
	for pid in "$@"; do
		files+=(/proc/"$pid"/fdinfo/*)
	done
	awk '
		function flush() { if (kind != "" && !link) print kind, id, mem + 0, rt + 0, rc + 0; kind = "" }
		FNR == 1 { flush(); mem = rt = rc = link = 0 }
		$1 == "link_id:" { link = 1 }
		$1 == "map_id:" { kind = "map"; id = $2 }
		$1 == "prog_id:" { kind = "prog"; id = $2 }
		$1 == "memlock:" { mem = $2 }
		$1 == "run_time_ns:" { rt = $2 }
		$1 == "run_cnt:" { rc = $2 }
		END { flush() }' "${files[@]}" 2>/dev/null | sort -u
}

# supervisor_pids PID...: the corral process of each `corral run` started
# as PID (PID itself, or its child when PID is a subshell).
supervisor_pids() {
	local p c
	for p in "$@"; do
		# `corral run` execs corral-core, the supervisor, in its place
		if [[ $(cat /proc/"$p"/comm 2>/dev/null) == corral-core ]]; then
			echo "$p"
		else
			for c in $(pgrep -P "$p" -x corral-core); do echo "$c"; done
		fi
	done | paste -sd' '
}

# prog_names: "ID NAME" of every loaded BPF program.
prog_names() { bpftool prog show 2>/dev/null | awk '/^[0-9]+: / { sub(":", "", $1); for (i = 2; i < NF; i++) if ($i == "name") print $1, $(i + 1) }'; }

# prog_stats NAME PID...: "RUN_TIME_NS RUN_CNT" summed over the programs
# called NAME that the processes hold.
prog_stats() {
	local name=$1
	shift
	awk -v want="$name" 'NR == FNR { name[$1] = $2; next }
		$1 == "prog" && name[$2] == want { t += $4; c += $5 }
		END { printf "%.0f %.0f\n", t, c }' <(prog_names) <(bpf_objects "$@")
}

# ---- setup ---------------------------------------------------------------------

note "corral policy benchmark: kernel $(uname -r), $(nproc) cpus, ${SECS}s per loop," \
	"agent ${AGENT_OPTS[*]}, $FILES project files"

# The session's project: its cwd, walked by the policy's `**/` globs when a
# session starts; the files opened once each by the open probe.
# BENCH_REPS sets of distinct files, one per pass of the open probe (a second
# pass over the same files in one session would find them cached): the
# project's, and copies outside it (the project keeps BENCH_FILES files).
mkdir -p "$PROJ/src"
"$OPS" mkfiles "$FILES" "$PROJ/src" || fail "corral_bench_ops mkfiles failed"
OPEN_DIRS=("$PROJ/src")
for ((r = 1; r < REPS; r++)); do
	mkdir -p "$TMP/more$r/src"
	"$OPS" mkfiles "$FILES" "$TMP/more$r/src" || fail "corral_bench_ops mkfiles failed"
	OPEN_DIRS+=("$TMP/more$r/src")
done

# The listener the sessions connect to: outside every session, on 127.0.0.2.
mkfifo "$TMP/listen.in" "$TMP/nap"
exec 8<>"$TMP/nap"
"$OPS" listen 127.0.0.2 <"$TMP/listen.in" >"$TMP/listen.out" 2>&1 &
LISTEN_PID=$!
exec 9>"$TMP/listen.in"
for ((i = 0; i < 100; i++)); do
	grep -q '^port=' "$TMP/listen.out" 2>/dev/null && break
	nap 0.05
done
PORT=$(sed -n 's/^port=//p' "$TMP/listen.out")
[[ -n $PORT ]] || fail "the listener on 127.0.0.2 did not start: $(cat "$TMP/listen.out")"

LISTENER_RULE='    - {id: bench-listener, cidr: 127.0.0.2/32}'

# gen_policy N FILE: N secret globs (10 per rule), N exec rules, N CIDRs (4
# per rule), plus the listener rule.
gen_policy() {
	awk -v n="$1" -v listener="$LISTENER_RULE" 'BEGIN {
		print "version: 1"
		print "secrets:"
		for (i = 0; i < n; i += 10) {
			line = "  - {id: s" i ", paths: ["
			for (j = i; j < i + 10 && j < n; j++) {
				if (j % 3 == 0) g = "**/name-" j ".key"
				else if (j % 3 == 1) g = "~/dir-" j "/**"
				else g = "/srv/proj/" j "/*.pem"
				line = line (j > i ? ", " : "") "\"" g "\""
			}
			print line "]}"
		}
		print "exec:"
		for (i = 0; i < n; i++) {
			k = i % 10
			if (k <= 5) print "  - {id: e" i ", binary: tool" i "}"
			else if (k <= 7) print "  - {id: e" i ", binary: tool" i ", args: [deploy]}"
			else if (k == 8) print "  - {id: e" i ", binary: tool" i ", args: [push, --force]}"
			else print "  - {id: e" i ", binary: /opt/bench/bin/tool" i "}"
		}
		print "egress:"
		print "  default: deny"
		print "  allow:"
		print listener
		for (i = 0; i < n; i += 4) {
			r = i / 4
			line = "    - {id: c" i ", cidr: ["
			for (j = i; j < i + 4 && j < n; j++) {
				k = int(j / 2)
				if (j % 2 == 0) c = "10." int(k / 256) "." (k % 256) ".0/24"
				else c = "10." (128 + int(k / 256)) "." (k % 256) ".1/32"
				line = line (j > i ? ", " : "") c
			}
			line = line "]"
			if (r % 4 == 0) line = line ", ports: [443]"
			else if (r % 4 == 1) line = line ", ports: [80, 443]"
			else if (r % 4 == 2) line = line ", ports: [\"8000-8100\"]"
			else line = line ", protocol: any"
			print line "}"
		}
	}' >"$2"
}

printf 'version: 1\negress:\n  allow:\n%s\n' "$LISTENER_RULE" >"$TMP/policy-empty.yaml"
printf 'version: 1\nextends: default\negress:\n  allow:\n%s\n' "$LISTENER_RULE" >"$TMP/policy-default.yaml"
LABELS="empty default"
for n in $SIZES; do
	gen_policy "$n" "$TMP/policy-$n.yaml"
	LABELS="$LABELS $n"
done
chmod 644 "$TMP"/policy-*.yaml

# ---- measurements ----------------------------------------------------------------

# corral_run POLICY OUT ERR AUDIT CMD...: `corral run` of CMD as the agent,
# from the project directory; stdout to OUT.
corral_run() {
	local policy=$1 out=$2 err=$3 audit=$4
	shift 4
	wait_quiet
	(cd "$PROJ" && exec "$CORRAL" run --quiet "${AGENT_OPTS[@]}" --policy "$policy" --audit "$audit" \
		-- "$@" >"$out" 2>"$err")
}

# in_session LABEL NAME CMD...: runs CMD in a session under policy LABEL;
# prints its output, fails with corral's stderr.
in_session() {
	local label=$1 name=$2
	shift 2
	local base=$TMP/$label-$name
	corral_run "$TMP/policy-$label.yaml" "$base.out" "$base.err" "$base.jsonl" "$@" || {
		cat "$base.err" >&2
		fail "corral run ($label policy) -- $* failed"
	}
	cat "$base.out"
}

# in_session_stats LABEL NAME PROG CMD...: runs CMD BENCH_REPS times in one
# session under policy LABEL and prints the best of its result lines
# (highest ops_per_sec), then "bpf_ns_per_op=X bpf_runs=N": the run time of
# the supervisor's BPF program PROG over the session divided by the
# operations of the runs (an upper bound per operation: the program also
# ran for the session's few other calls and, for exec, the host's other
# execs meanwhile). The agent stays 1 s after the last run so that the
# programs are still loaded when read.
in_session_stats() {
	local label=$1 name=$2 prog=$3
	shift 3
	local base=$TMP/$label-$name pid i n=0 stats sup ops
	# shellcheck disable=SC2016  # for the agent's shell
	corral_run "$TMP/policy-$label.yaml" "$base.out" "$base.err" "$base.jsonl" \
		/bin/sh -c 'r=$1; shift; while [ "$r" -gt 0 ]; do "$@" || exit; r=$((r - 1)); done; sleep 1' \
		sh "$REPS" "$@" &
	pid=$!
	for ((i = 0; i < 15000; i++)); do
		n=$(count_results "$base.out")
		((n >= REPS)) && break
		kill -0 "$pid" 2>/dev/null || break
		nap 0.02
	done
	sup=$(supervisor_pids "$pid")
	# shellcheck disable=SC2086  # a pid list
	stats=$(prog_stats "$prog" ${sup:-0})
	wait "$pid" || {
		cat "$base.err" >&2
		fail "corral run ($label policy) -- $* failed"
	}
	((n >= REPS)) || fail "no result from $* in a session: $(cat "$base.out")"
	best_line <"$base.out"
	ops=$(awk '{ for (i = 1; i <= NF; i++) if (index($i, "ops=") == 1) s += substr($i, 5) } END { print s + 0 }' "$base.out")
	awk -v ops="$ops" '{ printf "bpf_ns_per_op=%.0f bpf_runs=%d\n", ops ? $1 / ops : 0, $2 }' <<<"$stats"
}

# best_line: of the result lines on stdin, the one with the highest
# ops_per_sec.
best_line() {
	awk '{ for (i = 1; i <= NF; i++) if (index($i, "ops_per_sec=") == 1) v = substr($i, 13) + 0 }
		v > best { best = v; line = $0 } END { print line }'
}

# best_lat: "p50 p99" from the latency lines on stdin, the smallest of each.
best_lat() {
	awk '{ for (i = 1; i <= NF; i++) {
			if (index($i, "p50_us=") == 1) a = substr($i, 8) + 0
			if (index($i, "p99_us=") == 1) b = substr($i, 8) + 0 }
		if (NR == 1 || a < p50) p50 = a
		if (NR == 1 || b < p99) p99 = b }
		END { print p50, p99 }'
}

# start_run POLICY: "start_us stop_us" of one `corral run -- OPS stamp`.
start_run() {
	local t0 t1 out
	t0=${EPOCHREALTIME/./}
	corral_run "$1" "$TMP/start.out" "$TMP/start.err" "$TMP/start.jsonl" "$OPS" stamp || {
		cat "$TMP/start.err" >&2
		fail "corral run --policy $1 -- corral_bench_ops stamp failed"
	}
	t1=${EPOCHREALTIME/./}
	out=$(field stamp_us "$(cat "$TMP/start.out")")
	[[ -n $out ]] || fail "no stamp from the agent"
	echo "$((out - t0)) $((t1 - out))"
}

# Baselines without corral.
note "baseline (no corral)"
base_starts=()
wait_quiet
for ((r = 0; r < STARTS; r++)); do
	t0=${EPOCHREALTIME/./}
	s=$(field stamp_us "$(cd "$PROJ" && "$OPS" stamp)")
	base_starts+=($((s - t0)))
done
BASE_START=$(printf '%s\n' "${base_starts[@]}" | median)
declare -A R
wait_quiet
for d in "${OPEN_DIRS[@]}"; do
	"$OPS" open-distinct "$FILES" "$d" || fail "open-distinct failed"
done >"$TMP/none-open.out"
read -r p50 p99 < <(best_lat <"$TMP/none-open.out")
R[none open50]=$p50
R[none open99]=$p99
for ((r = 0; r < REPS; r++)); do
	wait_quiet
	"$LOOPS" exec "$SECS" || fail "exec loop failed"
done >"$TMP/none-exec.out"
R[none exec]=$(field ops_per_sec "$(best_line <"$TMP/none-exec.out")")
for ((r = 0; r < REPS; r++)); do
	wait_quiet
	"$OPS" connect-to 127.0.0.2 "$PORT" "$SECS" || fail "connect-to failed"
done >"$TMP/none-connect.out"
R[none connect]=$(field ops_per_sec "$(best_line <"$TMP/none-connect.out")")
after_run
note "  start ${BASE_START} µs, open p50 ${R[none open50]} p99 ${R[none open99]} µs," \
	"exec ${R[none exec]}/s, connect ${R[none connect]}/s"

for label in $LABELS; do
	policy=$TMP/policy-$label.yaml
	note "policy $label ($(wc -c <"$policy") bytes)"

	checks=()
	wait_quiet
	for ((r = 0; r < 3; r++)); do
		t0=${EPOCHREALTIME/./}
		"$CORRAL" policy check "$policy" >"$TMP/check.out" 2>&1 || {
			cat "$TMP/check.out" >&2
			fail "corral policy check $policy failed"
		}
		t1=${EPOCHREALTIME/./}
		checks+=($((t1 - t0)))
	done
	R[$label check]=$(printf '%s\n' "${checks[@]}" | minimum)
	note "  $(cat "$TMP/check.out")"

	R[$label probe]=$("$PROBE" compile "$policy" "$AGENT_HOME" "$PROJ" "$PROJ/src" "$FILES") ||
		fail "corral_bench_policy compile $policy failed"

	starts=() stops=()
	for ((r = 0; r < STARTS; r++)); do
		wait_quiet
		read -r s e <<<"$(start_run "$policy")"
		starts+=("$s")
		stops+=("$e")
	done
	R[$label start]=$(printf '%s\n' "${starts[@]}" | median)
	R[$label stop]=$(printf '%s\n' "${stops[@]}" | median)
	note "  start ${starts[*]} µs (baseline $BASE_START), stop ${stops[*]} µs"

	wait_quiet
	# shellcheck disable=SC2016  # for the agent's shell
	out=$(in_session "$label" open /bin/sh -c 'o=$1 n=$2; shift 2; for d; do "$o" open-distinct "$n" "$d" || exit; done' \
		sh "$OPS" "$FILES" "${OPEN_DIRS[@]}")
	read -r p50 p99 < <(best_lat <<<"$out")
	R[$label open50]=$p50
	R[$label open99]=$p99

	sysctl -qw kernel.bpf_stats_enabled=1
	wait_quiet
	out=$(in_session_stats "$label" exec corral_exec "$LOOPS" exec "$SECS")
	R[$label exec]=$(field ops_per_sec "$out")
	R[$label execns]=$(field bpf_ns_per_op "$out")
	wait_quiet
	out=$(in_session_stats "$label" connect corral_connect4 "$OPS" connect-to 127.0.0.2 "$PORT" "$SECS")
	R[$label connect]=$(field ops_per_sec "$out")
	R[$label connectns]=$(field bpf_ns_per_op "$out")
	sysctl -qw kernel.bpf_stats_enabled="$STATS_OLD"
	after_run
	note "  open p50 ${R[$label open50]} p99 ${R[$label open99]} µs, exec ${R[$label exec]}/s" \
		"(${R[$label execns]} ns/exec in corral_exec), connect ${R[$label connect]}/s" \
		"(${R[$label connectns]} ns/connect in corral_connect4)"
done

echo
printf '%-8s %8s %9s %8s %9s %9s %8s %10s %9s %11s\n' \
	policy "check ms" "start ms" "stop ms" "open p50" "open p99" exec/s "exec ns" connect/s "connect ns"
awk -v base="$BASE_START" -v o5="${R[none open50]}" -v o9="${R[none open99]}" \
	-v e="${R[none exec]}" -v c="${R[none connect]}" 'BEGIN {
	printf "%-8s %8s %9s %8s %9.2f %9.2f %8.0f %10s %9.0f %11s\n", "none", "-", "-", "-", o5, o9, e, "-", c, "-"
}'
for label in $LABELS; do
	awk -v l="$label" -v ck="${R[$label check]}" -v st="${R[$label start]}" -v base="$BASE_START" \
		-v sp="${R[$label stop]}" -v o5="${R[$label open50]}" -v o9="${R[$label open99]}" \
		-v e="${R[$label exec]}" -v en="${R[$label execns]}" -v c="${R[$label connect]}" \
		-v cn="${R[$label connectns]}" 'BEGIN {
		printf "%-8s %8.1f %9.1f %8.1f %9.2f %9.2f %8.0f %10.0f %9.0f %11.0f\n",
			l, ck / 1000, (st - base) / 1000, sp / 1000, o5, o9, e, en, c, cn
	}'
done
echo
echo "N secret globs + N exec rules + N CIDRs (+ the listener rule); empty: the listener rule" \
	"only; default: the shipped policy + the listener rule (its hosts resolved at each start)."
echo "none: no corral. start: corral run to the agent's main(), minus $((BASE_START)) µs" \
	"without corral, median of $STARTS; stop: agent's main() to corral exited."
echo "open: $FILES distinct files, each opened once (a supervisor decision each); best of $REPS;" \
	"exec/s, connect/s: best of $REPS ${SECS}s runs." \
	"exec ns / connect ns: kernel run time of corral_exec / corral_connect4 (bpf_stats) over" \
	"the session per loop operation (an upper bound: exec includes the host's other execs)."

echo
printf '%-8s %7s %7s %8s %8s %7s %7s %9s %7s %9s %9s %9s %9s\n' \
	policy globs "exec" prefixes "parse ms" "set ms" "walk ms" "exec ms" "egr ms" \
	"cold p50" "cold p99" "warm p50" "warm p99"
for label in $LABELS; do
	p=${R[$label probe]}
	printf '%-8s %7s %7s %8s %8s %7s %7s %9s %7s %9s %9s %9s %9s\n' "$label" \
		"$(field secret_globs "$p")" "$(field exec_names "$p")" "$(field egress_prefixes "$p")" \
		"$(field load_ms "$p")" "$(field secrets_set_ms "$p")" "$(field identities_ms "$p")" \
		"$(field exec_compile_ms "$p")" "$(field egress_compile_ms "$p")" \
		"$(field match_cold_p50_us "$p")" "$(field match_cold_p99_us "$p")" \
		"$(field match_warm_p50_us "$p")" "$(field match_warm_p99_us "$p")"
done
echo
echo "In-process (corral_bench_policy compile), what the supervisor does before the agent runs:" \
	"parse+validate; the secret RE2::Set; the identity walk (each \`**/\` glob walks the" \
	"project, $FILES files); exec and egress kernel map compilation (exec: names in the map)." \
	"cold/warm: µs per decision in the matchers (secret + protected sets) over the $FILES paths," \
	"first pass (lazy DFA) and second."

# ---- concurrent sessions ---------------------------------------------------------------

case $CONC_POLICY in
"") CONC_FILE=$TMP/policy-$(awk '{ print $1 }' <<<"$SIZES").yaml ;;
default) CONC_FILE=$TMP/policy-default.yaml ;;
*) CONC_FILE=$CONC_POLICY ;;
esac
[[ -r $CONC_FILE ]] || fail "cannot read $CONC_FILE (BENCH_CONC_POLICY)"

open_loop() {
	local out
	out=$("$LOOPS" open "$SECS") || fail "open loop failed"
	field ops_per_sec "$out"
}
mem_available_kib() { awk '$1 == "MemAvailable:" { print $2 }' /proc/meminfo; }

note "concurrent sessions, policy $CONC_FILE"
declare -A C
for k in $SESSIONS; do
	wait_quiet
	a=$(open_loop)
	after_run
	wait_quiet
	mem0=$(mem_available_kib)
	CONC_PIDS=()
	declare -a T0=()
	for ((i = 0; i < k; i++)); do
		T0[i]=${EPOCHREALTIME/./}
		(cd "$PROJ" && exec "$CORRAL" run --quiet "${AGENT_OPTS[@]}" --policy "$CONC_FILE" \
			--audit "$TMP/conc-$i.jsonl" -- "$OPS" stamp idle >"$TMP/conc-$i.out" 2>"$TMP/conc-$i.err") &
		CONC_PIDS[i]=$!
	done
	starts=()
	last=0
	for ((i = 0; i < k; i++)); do
		s=
		for ((w = 0; w < 6000; w++)); do
			s=$(sed -n 's/^stamp_us=//p' "$TMP/conc-$i.out" 2>/dev/null)
			[[ -n $s ]] && break
			if ! kill -0 "${CONC_PIDS[i]}" 2>/dev/null; then
				cat "$TMP/conc-$i.err" >&2
				fail "concurrent session $i of $k ended before its agent ran"
			fi
			nap 0.05
		done
		[[ -n $s ]] || fail "concurrent session $i of $k: no agent after 300 s"
		starts+=($((s - T0[i])))
		((s > last)) && last=$s
	done
	C[$k start50]=$(printf '%s\n' "${starts[@]}" | median)
	C[$k startmax]=$(printf '%s\n' "${starts[@]}" | sort -g | tail -n1)
	C[$k all]=$((last - T0[0]))
	sleep 1

	# memory: the supervisors (the corral processes, not their agents)
	read -ra sups <<<"$(supervisor_pids "${CONC_PIDS[@]}")"
	# RssAnon: RSS also counts the ring buffer, mapped twice (kernel memory, in BPF)
	C[$k rss]=$(for p in "${sups[@]}"; do cat /proc/"$p"/status; done |
		awk '$1 == "RssAnon:" { s += $2 } END { printf "%.0f", s / 1024 }')
	C[$k bpf]=$(bpf_objects "${sups[@]}" | awk '{ s += $3 } END { printf "%.0f", s / 1048576 }')
	C[$k mem]=$(((mem0 - $(mem_available_kib)) / 1024))
	C[$k progs]=$(bpf_objects "${sups[@]}" | awk '$1 == "prog"' | wc -l)

	best_b=0
	for ((r = 0; r < REPS; r++)); do
		wait_quiet "${sups[@]}"
		b=$(open_loop)
		after_run "${sups[@]}"
		best_b=$(awk -v x="$best_b" -v y="$b" 'BEGIN { print (y > x ? y : x) }')
	done
	# BPF time per outside open+close: every supervisor's sys_exit dispatcher
	sysctl -qw kernel.bpf_stats_enabled=1
	read -r t0ns _ <<<"$(prog_stats corral_sys_exit "${sups[@]}")"
	out=$("$LOOPS" open 1) || fail "open loop failed"
	read -r t1ns _ <<<"$(prog_stats corral_sys_exit "${sups[@]}")"
	sysctl -qw kernel.bpf_stats_enabled="$STATS_OLD"
	C[$k bpfns]=$(awk -v d="$((t1ns - t0ns))" -v n="$(field ops "$out")" 'BEGIN { printf "%.0f", d / n }')

	t0=${EPOCHREALTIME/./}
	for p in "${CONC_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${CONC_PIDS[@]}"; do
		rc=0
		wait "$p" || rc=$?
		[[ $rc == 143 || $rc == 0 ]] || note "  a concurrent corral run exited with $rc"
	done
	t1=${EPOCHREALTIME/./}
	C[$k stop]=$((t1 - t0))
	CONC_PIDS=()
	wait_quiet
	a2=$(open_loop)
	after_run
	best_a=$(awk -v x="$a" -v y="$a2" 'BEGIN { print (y > x ? y : x) }')
	C[$k a]=$best_a
	C[$k b]=$best_b
	note "  $k: start p50 ${C[$k start50]} max ${C[$k startmax]} µs; open a $best_a b $best_b ops/s;" \
		"anon RSS ${C[$k rss]} MiB, BPF ${C[$k bpf]} MiB, MemAvailable -${C[$k mem]} MiB"
done

echo
printf '%-8s %11s %11s %11s %10s %10s %6s %10s %9s %9s %9s %6s %8s\n' \
	sessions "start p50" "start max" "all up ms" "a open/s" "b open/s" "b/a" "bpf ns/op" \
	"anon MiB" "BPF MiB" "mem MiB" progs "stop ms"
for k in $SESSIONS; do
	awk -v k="$k" -v s5="${C[$k start50]}" -v sm="${C[$k startmax]}" -v al="${C[$k all]}" \
		-v a="${C[$k a]}" -v b="${C[$k b]}" -v bn="${C[$k bpfns]}" -v rss="${C[$k rss]}" \
		-v bpf="${C[$k bpf]}" -v mem="${C[$k mem]}" -v pr="${C[$k progs]}" -v sp="${C[$k stop]}" 'BEGIN {
		printf "%-8s %11.1f %11.1f %11.1f %10.0f %10.0f %6.3f %10s %9s %9s %9s %6s %8.0f\n",
			k, s5 / 1000, sm / 1000, al / 1000, a, b, a / b, bn, rss, bpf, mem, pr, sp / 1000
	}'
done
echo
echo "k concurrent \`corral run\` (own supervisors) with idle agents, policy $(basename "$CONC_FILE")." \
	"start: corral run to the agent's main() (all launched at once); all up: first launch to" \
	"last agent. a/b: open/close loop outside every session, without / while they idle (best" \
	"of the runs). bpf ns/op: kernel time of all supervisors' sys_exit dispatchers (every syscall) per" \
	"outside open. anon: the supervisors' anonymous RSS (their RSS also counts the mapped ring" \
	"buffer); BPF: memlock of their maps and programs (ring buffers included); mem:" \
	"MemAvailable drop; progs: BPF programs loaded; stop: SIGTERM to all exited."
if ((SUSPECT)); then
	echo "warning: other corral processes ran around $SUSPECT runs: those figures are suspect."
fi
exit 0
