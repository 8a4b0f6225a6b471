#!/usr/bin/env bash
# The audit-trail throughput benchmark: how fast records go from the kernel
# into the hash-chained local log, and whether the sinks keep up with it.
#
# 1. ring   kernel ring buffer -> supervisor -> chained log: an open/close
#           loop (corral_bench_loops open) as a session's agent, with a
#           64 MiB ring: records in the log (checkpoints not counted) per
#           second of the session (its session_end duration_seconds), the
#           records the kernel dropped (the "lost" records' ringbuf_dropped),
#           and `corral audit verify` of the log. Baseline: the same loop
#           without corral, ops/s. Best of BENCH_REPS. The loop and the
#           supervisor share the CPUs, so the rate is bounded by the loop as
#           much as by the pipeline: also printed, the CPU time per record of
#           each side, and what one CPU of supervisor takes (1 / its time).
# 2. writer the log's writer alone, in-process (corral_bench_audit log):
#           AuditLog with the chain (checkpoint every 1000, fsync by
#           interval) against a plain writer of the same records (JSON, the
#           same 1 MiB batches, write(2), no hashing or signing); then
#           verify_audit_logs over the chained log.
# 3. sinks  an N-record log shipped from cursor 0 by the exporter's Shipper,
#           in-process: to a private rsyslogd over TCP (RFC 5424, replay
#           window 0; done when rsyslogd's output file holds every seq), and
#           to librdkafka's mock cluster (done when every record is acked).
# 4. storm  a session of about BENCH_STORM_RATE records/s for
#           BENCH_STORM_SECONDS (corral_actor opens, paced ten times a
#           second) while `corral export` ships the log to the rsyslogd, to
#           a mock Kafka cluster (hosted by corral_bench_audit kafka-mock,
#           which consumes the topic), then to both (BENCH_STORMS): the
#           session's actual rate, and for
#           each sink how long after the session's session_end record its
#           collector held every seq up to it, how many it never got, and
#           the latency from each record's event time to its arrival at the
#           collector; the CPU the exporter used per record and sink.
#
# Goals: >= 200,000 records/s from the kernel ring buffer into the local log
# with the chain on; the sinks keep up with a 20,000 records/s session storm
# (here: every seq at the collector within 1 s of its session_end record) with
# zero loss. A benchmark, not a test: a missed goal is only printed. The
# exit status is non-zero only when something breaks.
#
# The agent runs as BENCH_USER (default nobody, as in scripts/bench.sh): a
# root agent's opens are never cached, so each is a permission decision in
# the supervisor and the loop cannot produce more than ~10k records/s.
#
# Builds nothing. Run as root:   sudo scripts/bench_audit.sh
# Environment:
#   BUILD               build directory (default: <repo>/build)
#   CORRAL              corral binary (default: $BUILD/agent/corral)
#   BENCH_LOOPS         corral_bench_loops (default: $BUILD/tests/bench/corral_bench_loops)
#   BENCH_AUDIT         corral_bench_audit (default: $BUILD/tests/bench/corral_bench_audit)
#   BENCH_ACTOR         corral_actor (default: $BUILD/tests/corral_actor)
#   RSYSLOGD            rsyslogd (default: /usr/sbin/rsyslogd)
#   BENCH_STEPS         steps to run (default "ring writer sinks storm")
#   BENCH_SECONDS       seconds of the loop in step 1 (default 3)
#   BENCH_REPS          runs of step 1, best kept (default 2)
#   BENCH_LOG_RECORDS   records of step 2 (default 500000)
#   BENCH_SHIP_RECORDS  records of step 3 (default 200000)
#   BENCH_STORM_RATE    the storm's records/s (default 20000)
#   BENCH_STORM_SECONDS the storm's length (default 8)
#   BENCH_STORMS        the storms, each the sinks of its `corral export`
#                       (default "syslog kafka syslog,kafka": each alone,
#                       then both from one exporter)
#   BENCH_USER          the agent's user (default nobody; root runs it with
#                       --allow-root)
#   BENCH_KEEP          1 to keep the scratch directory (its path is printed)

# shellcheck disable=SC2119  # bench_lib.sh's wait_quiet takes optional pids
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
CORRAL=${CORRAL:-$BUILD/agent/corral}
LOOPS=${BENCH_LOOPS:-$BUILD/tests/bench/corral_bench_loops}
AUDIT=${BENCH_AUDIT:-$BUILD/tests/bench/corral_bench_audit}
ACTOR=${BENCH_ACTOR:-$BUILD/tests/corral_actor}
RSYSLOGD=${RSYSLOGD:-/usr/sbin/rsyslogd}
STEPS=${BENCH_STEPS:-ring writer sinks storm}
SECS=${BENCH_SECONDS:-3}
REPS=${BENCH_REPS:-2}
LOG_RECORDS=${BENCH_LOG_RECORDS:-500000}
SHIP_RECORDS=${BENCH_SHIP_RECORDS:-200000}
STORM_RATE=${BENCH_STORM_RATE:-20000}
STORM_SECS=${BENCH_STORM_SECONDS:-8}
STORMS=${BENCH_STORMS:-syslog kafka syslog,kafka}
AGENT_USER=${BENCH_USER:-nobody}
KEEP=${BENCH_KEEP:-0}

fail() {
	echo "bench_audit: $*" >&2
	exit 1
}

has_step() { [[ " $STEPS " == *" $1 "* ]]; }

[[ $(id -u) -eq 0 ]] || fail "corral needs root; run as root"
for step in $STEPS; do
	case $step in ring | writer | sinks | storm) ;; *) fail "unknown step '$step'" ;; esac
done
[[ -x $AUDIT ]] || fail "no corral_bench_audit at $AUDIT (build first, or set BUILD/BENCH_AUDIT)"
if has_step ring || has_step storm; then
	[[ -x $CORRAL ]] || fail "no corral binary at $CORRAL (build first, or set BUILD/CORRAL)"
fi
if has_step ring; then
	[[ -x $LOOPS ]] || fail "no corral_bench_loops at $LOOPS (build first, or set BENCH_LOOPS)"
fi
if has_step storm; then
	[[ -x $ACTOR ]] || fail "no corral_actor at $ACTOR (build first, or set BENCH_ACTOR)"
fi
if has_step sinks || has_step storm; then
	[[ -x $RSYSLOGD ]] || fail "no rsyslogd at $RSYSLOGD (apt-get install rsyslog, or set RSYSLOGD)"
fi
[[ $SECS =~ ^[0-9]+([.][0-9]+)?$ ]] || fail "BENCH_SECONDS '$SECS' is not a number"
for sinks in $STORMS; do
	[[ $sinks =~ ^(syslog|kafka)(,(syslog|kafka))?$ && $sinks != syslog,syslog &&
		$sinks != kafka,kafka ]] || fail "BENCH_STORMS: '$sinks' is not syslog, kafka or syslog,kafka"
done
for v in REPS LOG_RECORDS SHIP_RECORDS STORM_RATE STORM_SECS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || fail "$v '${!v}' is not a positive integer"
done
id "$AGENT_USER" >/dev/null 2>&1 || fail "no user '$AGENT_USER' (BENCH_USER)"
if [[ $(id -u "$AGENT_USER") == 0 ]]; then
	AGENT_OPTS=(--allow-root)
else
	AGENT_OPTS=(--user "$AGENT_USER")
	for bin in $(has_step ring && echo "$LOOPS") $(has_step storm && echo "$ACTOR"); do
		runuser -u "$AGENT_USER" -- test -x "$bin" ||
			fail "$AGENT_USER cannot run $bin (a directory on its path is not searchable?);" \
				"make it so, or set BENCH_USER=root"
	done
fi

TMP=$(mktemp -d /tmp/corral-bench-audit.XXXXXX)
chmod 755 "$TMP"
cd "$TMP"
KEY=$TMP/audit.key
RSYSLOG_PID='' EXPORT_PID='' SYSLOG_WATCH_PID='' KAFKA_WATCH_PID=''

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
	local pid
	for pid in $EXPORT_PID $SYSLOG_WATCH_PID $KAFKA_WATCH_PID $RSYSLOG_PID; do
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [[ $KEEP == 1 ]]; then
		echo "bench_audit: files kept in $TMP" >&2
	else
		rm -rf "$TMP"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

. "$ROOT/scripts/bench_lib.sh"

# calc EXPR [NAME=VALUE...]: awk arithmetic on decimals; integers print
# whole, anything else with 6 decimals.
calc() {
	local expr=$1 kv args=()
	shift
	for kv in "$@"; do args+=(-v "$kv"); done
	awk "${args[@]}" "BEGIN { v = ($expr); if (v == int(v)) printf \"%d\\n\", v;
		else printf \"%.6f\\n\", v }"
}

# ratio A B: A/B with 3 decimals.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }

# The files of the log at $1, oldest first, one a line (rotated files are
# named PATH.<first seq, 20 digits>: name order is seq order).
log_files() {
	local f
	for f in "$1".[0-9]*; do
		[[ -e $f ]] && echo "$f"
	done
	echo "$1"
}

# cat_log PATH: all of the log's records, in order.
cat_log() {
	local files
	mapfile -t files < <(log_files "$1")
	cat "${files[@]}"
}

# Records of the log at $1 other than checkpoints. A quote inside a JSON
# string is escaped, so "checkpoint":{ only matches the event key.
records_in() { cat_log "$1" | grep -vc '"checkpoint":{' || true; }

# The sum of ringbuf_dropped over the "lost" records of the log at $1.
dropped_in() {
	cat_log "$1" | awk '
		/"lost":[{]/ && match($0, /"ringbuf_dropped":"?[0-9]+/) {
			s = substr($0, RSTART, RLENGTH); sub(/^[^0-9]*/, "", s); n += s
		}
		END { printf "%.0f\n", n }'
}

# The last session_end record of the log at $1.
session_end_of() { cat_log "$1" | grep '"session_end":{' | tail -n1; }

# A field of the session_end record of the log at $1: duration_seconds, records.
session_end_field() {
	session_end_of "$1" | grep -o '"session_end":{[^}]*}' | grep -o "\"$2\":\"\?[0-9.]*" |
		grep -o '[0-9.]*$'
}

# `corral audit verify` of the log at $1: its "ok" line, or fail.
verify_log() {
	local out files
	mapfile -t files < <(log_files "$1")
	out=$("$CORRAL" audit verify --key "$KEY.pub" "${files[@]}" 2>&1) ||
		fail "corral audit verify failed on $1: $out"
	grep '^ok:' <<<"$out" || fail "corral audit verify said no ok: $out"
}

# The CPU seconds process $1 has used so far (user + system).
# (utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.)
proc_cpu() {
	awk -v tck="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); print ($12 + $13) / tck }' "/proc/$1/stat"
}

# A TCP port nothing listens on.
free_port() {
	local p
	for p in $(shuf -i 20000-59999 -n 50); do
		if [[ -z $(ss -Htln "sport = :$p") ]]; then
			echo "$p"
			return 0
		fi
	done
	fail "no free TCP port found"
}

# dec N X: X with N decimals.
dec() { awk -v v="$2" -v n="$1" 'BEGIN { printf "%." n "f", v }'; }

# A whole number with thousands separators.
fmt_int() {
	printf '%.0f' "$1" | sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta'
}
met() { if [[ $(calc "($1) ? 1 : 0" "${@:2}") == 1 ]]; then echo met; else echo "NOT met"; fi; }

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "# corral audit-trail benchmark: kernel $(uname -r), $(nproc) cpus (load $LOAD0)," \
	"agent: ${AGENT_OPTS[*]}, steps: $STEPS" >&2
declare -A R

# ---- 1. ring buffer -> chained log -----------------------------------------
# Both CPUs are busy during the session (the loop, slowed by the kernel's
# hooks, on one; the supervisor on the other), so the rate is the loop's as
# much as the pipeline's. What the pipeline could take is estimated from
# the supervisor's CPU time per record: corral run's CPU (children
# included, timed by bash) less the loop's (timed inside the session) and
# less that of an empty session (start and stop).
TIMEFORMAT='%3U %3S'
cpu_of() { awk '{ print $1 + $2 }' "$1"; }
if has_step ring; then
	wait_quiet
	{ time "$CORRAL" run --quiet "${AGENT_OPTS[@]}" --audit "$TMP/empty.jsonl" --audit-key "$KEY" \
		--ring-mib 64 -- /bin/true >/dev/null 2>"$TMP/empty.err"; } 2>"$TMP/empty.cpu" || {
		cat "$TMP/empty.err" >&2
		fail "corral run -- /bin/true failed"
	}
	empty_cpu=$(cpu_of "$TMP/empty.cpu")
	best=0
	for ((r = 1; r <= REPS; r++)); do
		wait_quiet
		out=$("$LOOPS" open "$SECS") || fail "corral_bench_loops open failed"
		after_run
		base=$(field ops_per_sec "$out")
		[[ -n $base ]] || fail "unexpected output from corral_bench_loops: '$out'"
		R[ring_base]=$(calc "x > y ? x : y" x="$base" y="${R[ring_base]:-0}")

		log=$TMP/ring$r.jsonl
		wait_quiet
		# shellcheck disable=SC2016  # expanded by the session's bash
		{ time "$CORRAL" run --quiet "${AGENT_OPTS[@]}" --audit "$log" --audit-key "$KEY" \
			--ring-mib 64 -- bash -c 'TIMEFORMAT="loop_cpu %3U %3S"; { time "$0" open "$1"; } 2>&1' \
			"$LOOPS" "$SECS" >"$TMP/ring$r.out" 2>"$TMP/ring$r.err"; } 2>"$TMP/ring$r.cpu" || {
			cat "$TMP/ring$r.err" >&2
			fail "corral run -- corral_bench_loops open failed"
		}
		after_run
		out=$(grep '^open ops=' "$TMP/ring$r.out") ||
			fail "unexpected output from corral_bench_loops in a session: $(cat "$TMP/ring$r.out")"
		loop_cpu=$(grep '^loop_cpu ' "$TMP/ring$r.out" | awk '{ print $2 + $3 }')
		duration=$(session_end_field "$log" duration_seconds)
		[[ -n $duration ]] || fail "no session_end in $log"
		records=$(records_in "$log")
		rate=$(calc "n / d" n="$records" d="$duration")
		us=$(calc "(c - l - e) * 1e6 / n" c="$(cpu_of "$TMP/ring$r.cpu")" l="$loop_cpu" \
			e="$empty_cpu" n="$records")
		drops=$(dropped_in "$log")
		ok=$(verify_log "$log")
		echo "#   ring run $r: loop alone $base ops/s; in a session $(field ops_per_sec "$out")" \
			"ops/s ($loop_cpu s of CPU), $records records in ${duration}s = $rate records/s," \
			"$drops dropped; supervisor $us µs of CPU per record" >&2
		echo "#   $ok" >&2
		if [[ $(calc "x > y" x="$rate" y="$best") == 1 ]]; then
			best=$rate
			R[ring_rate]=$rate R[ring_drops]=$drops R[ring_ok]=$ok R[ring_records]=$records
			R[ring_loop]=$(field ops_per_sec "$out") R[ring_us]=$us
			R[ring_loop_us]=$(calc "c * 1e6 / n" c="$loop_cpu" n="$(field ops "$out")")
			R[ring_loop_share]=$(calc "c * 100 / s" c="$loop_cpu" s="$(field seconds "$out")")
		fi
		[[ $KEEP == 1 ]] || log_files "$log" | xargs rm -f
	done
fi

# ---- 2. the writer alone ----------------------------------------------------
if has_step writer; then
	wait_quiet
	out=$("$AUDIT" log "$LOG_RECORDS" "$TMP/writer") || fail "corral_bench_audit log failed"
	after_run
	echo "#   $out" >&2
	for k in chain_per_sec plain_per_sec ratio chain_bytes plain_bytes verify_per_sec verified; do
		R[writer_$k]=$(field "$k" "$out")
	done
	[[ -n ${R[writer_verify_per_sec]} ]] ||
		fail "unexpected output from corral_bench_audit log: '$out'"
fi

# ---- the collector ------------------------------------------------------------
# A private rsyslogd on 127.0.0.1: one port for step 3, one for the storm,
# each writing the structured data (which holds seq="N") and the message
# of every record as one line of its own file.
if has_step sinks || has_step storm; then
	SHIP_PORT=$(free_port)
	STORM_PORT=$(free_port)
	[[ $SHIP_PORT != "$STORM_PORT" ]] || STORM_PORT=$(free_port)
	mkdir "$TMP/rsyslog"
	cat >"$TMP/rsyslog.conf" <<-EOF
		# Only imtcp is loaded: no /dev/log (imuxsock), no kernel log (imklog).
		global(workDirectory="$TMP/rsyslog" maxMessageSize="64k" net.enableDNS="off"
		       processInternalMessages="on")
		module(load="imtcp")
		template(name="corral_bench" type="string" string="%structured-data% %msg%\n")
		ruleset(name="ship" parser="rsyslog.rfc5424") {
		  action(type="omfile" file="$TMP/ship.out" template="corral_bench")
		}
		ruleset(name="storm" parser="rsyslog.rfc5424") {
		  action(type="omfile" file="$TMP/storm.out" template="corral_bench")
		}
		input(type="imtcp" port="$SHIP_PORT" address="127.0.0.1" ruleset="ship")
		input(type="imtcp" port="$STORM_PORT" address="127.0.0.1" ruleset="storm")
		# rsyslogd's own messages
		action(type="omfile" file="$TMP/rsyslogd.log")
	EOF
	env -u NOTIFY_SOCKET -u LISTEN_PID -u LISTEN_FDS -u LISTEN_FDNAMES \
		"$RSYSLOGD" -n -f "$TMP/rsyslog.conf" -i "$TMP/rsyslogd.pid" >"$TMP/rsyslogd.out" 2>&1 &
	RSYSLOG_PID=$!
	for ((i = 0; i < 100; i++)); do
		[[ -n $(ss -Htln "sport = :$SHIP_PORT") && -n $(ss -Htln "sport = :$STORM_PORT") ]] && break
		kill -0 "$RSYSLOG_PID" 2>/dev/null || {
			cat "$TMP/rsyslogd.out" >&2
			RSYSLOG_PID=
			fail "rsyslogd exited at start"
		}
		sleep 0.1
	done
	((i < 100)) || fail "rsyslogd does not listen on $SHIP_PORT and $STORM_PORT after 10 s"
fi

# ---- 3. sinks ---------------------------------------------------------------
if has_step sinks; then
	for sink in syslog kafka; do
		wait_quiet
		if [[ $sink == syslog ]]; then
			out=$("$AUDIT" ship-syslog "$SHIP_RECORDS" "$SHIP_PORT" "$TMP/ship.out") ||
				fail "corral_bench_audit ship-syslog failed"
		else
			out=$("$AUDIT" ship-kafka "$SHIP_RECORDS") || fail "corral_bench_audit ship-kafka failed"
		fi
		after_run
		echo "#   $out" >&2
		R[ship_$sink]=$(field records_per_sec "$out")
		R[ship_${sink}_resets]=$(field resets "$out")
		[[ -n ${R[ship_$sink]} ]] || fail "unexpected output from corral_bench_audit: '$out'"
	done
fi

# ---- 4. storm ---------------------------------------------------------------
# storm SINKS: one storm with `corral export` shipping to SINKS (syslog,
# kafka, or both: "syslog,kafka"); figures go to R[storm:SINKS:...].
storm() {
	local sinks=${1//,/ } key="storm:$1" sink fds=() i log per rounds script res target ended
	local end_line brokers='' rsyslog_cpu0 export_args=() duration records n
	wait_quiet
	# The watchers record when each seq arrives, from the start; the seq of
	# the session's session_end record reaches them on stdin once it has
	# ended, and they wait for every seq up to it.
	for sink in $sinks; do
		rm -f "$TMP/$sink.in"
		mkfifo "$TMP/$sink.in"
		if [[ $sink == syslog ]]; then
			"$AUDIT" watch-syslog "$TMP/storm.out" <"$TMP/syslog.in" >"$TMP/syslog.res" \
				2>"$TMP/syslog.err" &
			SYSLOG_WATCH_PID=$!
			exec {i}>"$TMP/syslog.in"
			export_args+=(--syslog "127.0.0.1:$STORM_PORT" --replay-window 0)
		else
			"$AUDIT" kafka-mock <"$TMP/kafka.in" >"$TMP/kafka.res" 2>"$TMP/kafka.err" &
			KAFKA_WATCH_PID=$!
			exec {i}>"$TMP/kafka.in"
			for ((n = 0; n < 300; n++)); do
				grep -q '^kafka-mock bootstraps=' "$TMP/kafka.res" && break
				kill -0 "$KAFKA_WATCH_PID" 2>/dev/null ||
					{ cat "$TMP/kafka.err" >&2; fail "kafka-mock exited"; }
				sleep 0.1
			done
			brokers=$(field bootstraps "$(head -n1 "$TMP/kafka.res")")
			[[ -n $brokers ]] || fail "kafka-mock printed no bootstraps"
			export_args+=(--kafka "$brokers")
		fi
		fds+=("$i")
	done

	log=$TMP/storm-$1.jsonl
	rm -rf "$TMP/state"
	"$CORRAL" export --audit "$log" --audit-key "$KEY" --state-dir "$TMP/state" "${export_args[@]}" \
		>"$TMP/export.out" 2>"$TMP/export.err" &
	EXPORT_PID=$!
	rsyslog_cpu0=$(proc_cpu "$RSYSLOG_PID")

	# Ten rounds a second, each of `per` opens plus the records of starting
	# corral_actor and sleep (about 30), paced against the clock.
	per=$((STORM_RATE / 10 - 30))
	((per > 0)) || per=1
	rounds=$((STORM_SECS * 10))
	# shellcheck disable=SC2016  # expanded by the session's bash
	script='t=${EPOCHREALTIME/./}
		for ((i = 1; i <= $2; i++)); do
			"$3" opens "$1" /etc/hostname
			d=$((t + i * 100000 - ${EPOCHREALTIME/./}))
			if ((d > 0)); then printf -v s "%d.%06d" $((d / 1000000)) $((d % 1000000)); sleep "$s"; fi
		done'
	"$CORRAL" run --quiet "${AGENT_OPTS[@]}" --audit "$log" --audit-key "$KEY" -- \
		bash -c "$script" storm "$per" "$rounds" "$ACTOR" >"$TMP/storm.run" 2>"$TMP/storm.err" || {
		cat "$TMP/storm.err" >&2
		fail "the storm session failed"
	}
	# The lag counts from the session's last record, session_end: up to it,
	# every seq must reach the collectors.
	end_line=$(session_end_of "$log")
	target=$(grep -o '^{"seq":"[0-9]*' <<<"$end_line" | grep -o '[0-9]*$') ||
		fail "no session_end in $log"
	ended=$(date -d "$(grep -o '"time":"[^"]*"' <<<"$end_line" | head -n1 | cut -d'"' -f4)" +%s.%N)
	for i in "${fds[@]}"; do
		echo "$target" >&"$i"
		exec {i}>&-
	done
	for sink in $sinks; do
		if [[ $sink == syslog ]]; then
			wait "$SYSLOG_WATCH_PID" || { cat "$TMP/syslog.err" >&2; fail "watch-syslog failed"; }
			SYSLOG_WATCH_PID=''
		else
			wait "$KAFKA_WATCH_PID" || { cat "$TMP/kafka.err" >&2; fail "kafka-mock failed"; }
			KAFKA_WATCH_PID=''
		fi
	done
	after_run "$EXPORT_PID"
	R[$key:export_cpu]=$(proc_cpu "$EXPORT_PID")
	R[$key:rsyslog_cpu]=$(calc "b - a" a="$rsyslog_cpu0" b="$(proc_cpu "$RSYSLOG_PID")")
	kill -TERM "$EXPORT_PID"
	wait "$EXPORT_PID" || { cat "$TMP/export.err" >&2; fail "corral export failed"; }
	EXPORT_PID=''

	duration=$(session_end_field "$log" duration_seconds)
	records=$(session_end_field "$log" records)
	[[ -n $duration && -n $records ]] || fail "no session_end in $log"
	R[$key:rate]=$(calc "n / d" n="$records" d="$duration")
	R[$key:seconds]=$duration
	R[$key:drops]=$(dropped_in "$log")
	echo "#   storm to $1: $records session records in ${duration}s, ${R[$key:drops]} dropped" \
		"by the kernel; session_end is seq $target; $(grep -c 'sink_down' "$log" || true)" \
		"sink_down notes" >&2
	for sink in $sinks; do
		res=$(tail -n1 "$TMP/$sink.res")
		echo "#   storm to $1: $res" >&2
		R[$key:$sink:lost]=$(field missing "$res")
		R[$key:$sink:lag]=$(calc "a - e" a="$(field last_arrival "$res")" e="$ended")
		R[$key:$sink:p50]=$(field latency_p50 "$res")
		R[$key:$sink:p99]=$(field latency_p99 "$res")
		R[$key:$sink:max]=$(field latency_max "$res")
		[[ -n ${R[$key:$sink:lost]} ]] || fail "unexpected output from the $sink watcher: '$res'"
	done
	R[$key:export_us]=$(calc "c * 1e6 / n / s" c="${R[$key:export_cpu]}" n="$target" \
		s="$(wc -w <<<"$sinks")")
	echo "#   storm to $1: CPU seconds: corral export ${R[$key:export_cpu]}" \
		"($(dec 1 "${R[$key:export_us]}") µs per record per sink), rsyslogd" \
		"$(dec 2 "${R[$key:rsyslog_cpu]}")" >&2
	R[$key:ok]=$(verify_log "$log")
	echo "#   ${R[$key:ok]}" >&2
	[[ $KEEP == 1 ]] || log_files "$log" | xargs rm -f
}

if has_step storm; then
	for sinks in $STORMS; do
		storm "$sinks"
	done
fi

# ---- summary ------------------------------------------------------------------
# row FIGURE MEASURED BASELINE RATIO GOAL: one line of the table.
row() { echo "| $1 | $2 | $3 | $4 | $5 |"; }

echo
row figure measured baseline ratio goal
row --- ---: ---: ---: ---
if has_step ring; then
	row "ring buffer -> chained log, records/s (baseline: the open loop alone, ops/s)" \
		"$(fmt_int "${R[ring_rate]}")" "$(fmt_int "${R[ring_base]}")" \
		"$(ratio "${R[ring_rate]}" "${R[ring_base]}")" \
		">= 200,000: $(met "r >= 200000" r="${R[ring_rate]}")"
	row "same run: the loop in the session, ops/s (its CPU per open, µs)" \
		"$(fmt_int "${R[ring_loop]}") ($(dec 2 "${R[ring_loop_us]}"))" \
		"$(fmt_int "${R[ring_base]}") ($(dec 2 "$(calc "1e6 / b" b="${R[ring_base]}")"))" \
		"$(ratio "${R[ring_loop]}" "${R[ring_base]}")" ""
	row "same run: supervisor CPU per record, µs (records/s one CPU takes)" \
		"$(dec 2 "${R[ring_us]}") ($(fmt_int "$(calc "1e6 / u" u="${R[ring_us]}")"))" "" "" \
		">= 200,000: $(met "1e6 / u >= 200000" u="${R[ring_us]}")"
	row "same run: records dropped by the kernel" "${R[ring_drops]}" "" "" \
		"0: $(met "d == 0" d="${R[ring_drops]}")"
fi
if has_step writer; then
	row "writer alone, chain on, records/s (baseline: plain JSON writer)" \
		"$(fmt_int "${R[writer_chain_per_sec]}")" "$(fmt_int "${R[writer_plain_per_sec]}")" \
		"${R[writer_ratio]}" ">= 200,000: $(met "r >= 200000" r="${R[writer_chain_per_sec]}")"
	row "bytes per record, chained (checkpoints included) vs plain" "${R[writer_chain_bytes]}" \
		"${R[writer_plain_bytes]}" "$(ratio "${R[writer_chain_bytes]}" "${R[writer_plain_bytes]}")" ""
	row "\`corral audit verify\`, records/s" "$(fmt_int "${R[writer_verify_per_sec]}")" "" "" ""
fi
if has_step sinks; then
	row "shipped to rsyslogd (TCP, RFC 5424), records/s" "$(fmt_int "${R[ship_syslog]}")" "" "" \
		">= 20,000: $(met "r >= 20000" r="${R[ship_syslog]}")"
	row "shipped to Kafka (mock cluster, in-process), records/s" "$(fmt_int "${R[ship_kafka]}")" \
		"" "" ">= 20,000: $(met "r >= 20000" r="${R[ship_kafka]}")"
fi
if has_step storm; then
	for sinks in $STORMS; do
		key=storm:$sinks
		label="storm to $sinks: session records/s for $(dec 1 "${R[$key:seconds]}") s"
		row "$label (kernel drops; \`corral export\` CPU µs per record and sink)" \
			"$(fmt_int "${R[$key:rate]}") (${R[$key:drops]}; $(dec 1 "${R[$key:export_us]}"))" "" "" \
			"~$(fmt_int "$STORM_RATE")"
		for sink in ${sinks//,/ }; do
			lat="$(dec 2 "${R[$key:$sink:p50]}") / $(dec 2 "${R[$key:$sink:p99]}")"
			lat="$lat / $(dec 2 "${R[$key:$sink:max]}")"
			label="storm to $sinks, at $sink: s from session_end until all arrived / lost"
			row "$label (event -> collector latency p50 / p99 / max, s)" \
				"$(dec 2 "${R[$key:$sink:lag]}") / ${R[$key:$sink:lost]} ($lat)" "" "" \
				"<= 1 s, 0 lost: $(met "l <= 1 && m == 0" l="${R[$key:$sink:lag]}" \
					m="${R[$key:$sink:lost]}")"
		done
	done
fi
echo
if has_step ring; then
	echo "ring: ${R[ring_records]} records; ${R[ring_ok]}"
	echo "ring: the loop had $(dec 0 "${R[ring_loop_share]}")% of a CPU in the session" \
		"(100% alone): below ~90%, the loop, the supervisor and whatever else runs shared the CPUs."
fi
if has_step storm; then
	for sinks in $STORMS; do
		echo "storm to $sinks: ${R[storm:$sinks:ok]}"
	done
fi
echo "load average at the start: $LOAD0 (on $(nproc) CPUs; other work makes every figure lower)"
if ((SUSPECT)); then
	echo "warning: other corral processes ran around $SUSPECT runs: those figures are suspect."
fi
exit 0
