#!/usr/bin/env bash
# What a session costs a real build: `make -j` of a generated C project
# (BENCH_SOURCES files, each including all of BENCH_HEADERS project
# headers), owned by and built as BENCH_USER, in interleaved rounds:
#   bare     make, as the user, no corral
#   session  `corral run --user USER -- make` with a `corral daemon`
#            running (the shipped default policy enforced), compared with
#            bare rounds of its own beside it, while the daemon runs
# Every compiler opens every project header, and each of those opens is a
# file guard decision: the agent can write its project, and an allow of a
# file it can write is never cached (renamed to a secret's name, its next
# open must be decided again). Prints median and p90 in seconds, session/bare, and the
# guard's answers per build from the session_end records (asked, cached).
# A benchmark, not a test.
#
#   sudo scripts/bench_build.sh
# Environment: BUILD (default build), CORRAL, BENCH_RUNS (default 7),
#   BENCH_SOURCES (default 40), BENCH_HEADERS (default 40),
#   BENCH_USER (default nobody).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
CORRAL=${CORRAL:-$BUILD/agent/corral}
RUNS=${BENCH_RUNS:-7}
SOURCES=${BENCH_SOURCES:-40}
HEADERS=${BENCH_HEADERS:-40}
AGENT_USER=${BENCH_USER:-nobody}

fail() {
	echo "bench_build: $*" >&2
	exit 1
}
[[ $(id -u) -eq 0 ]] || fail "run as root"
[[ ${BASH_VERSINFO[0]} -ge 5 ]] || fail "needs bash 5 (EPOCHREALTIME)"
[[ -x $CORRAL ]] || fail "no corral at $CORRAL (build first)"
command -v make >/dev/null && command -v gcc >/dev/null || fail "needs make and gcc"
id "$AGENT_USER" >/dev/null || fail "no user $AGENT_USER"

work=$(mktemp -d /var/tmp/corral-bench-build-XXXXXX)
chmod 755 "$work"
daemon=
trap '[[ -z $daemon ]] || { kill $daemon; wait $daemon; } 2>/dev/null; rm -rf "$work"' EXIT
proj=$work/proj
mkdir "$proj"
for ((h = 1; h <= HEADERS; h++)); do
	printf '#pragma once\nstatic inline int f%d(int x) { return x + %d; }\n' "$h" "$h" >"$proj/h$h.h"
done
for ((c = 1; c <= SOURCES; c++)); do
	{
		for ((h = 1; h <= HEADERS; h++)); do echo "#include \"h$h.h\""; done
		echo "int g$c(void) { return f1($c); }"
	} >"$proj/c$c.c"
done
printf 'OBJ = $(patsubst %%.c,%%.o,$(wildcard *.c))\nall: $(OBJ)\n%%.o: %%.c\n\tgcc -c -O0 $< -o $@\n' \
	>"$proj/Makefile"
chown -R "$AGENT_USER" "$proj"
jobs=$(nproc)

"$CORRAL" daemon --quiet --audit "$work/daemon.jsonl" --audit-key "$work/audit.key" \
	--socket "$work/control.sock" 2>"$work/daemon.err" &
daemon=$!
for ((i = 0; i < 300; i++)); do [[ -S $work/control.sock ]] && break; sleep 0.1; done
[[ -S $work/control.sock ]] || { cat "$work/daemon.err" >&2; fail "the daemon did not start"; }

run_bare() { runuser -u "$AGENT_USER" -- make -s -j"$jobs"; }
run_session() { "$CORRAL" run --user "$AGENT_USER" --daemon-socket "$work/control.sock" -- make -s -j"$jobs"; }

echo "# make -j$jobs of $SOURCES sources x $HEADERS project headers, as $AGENT_USER, $RUNS rounds, kernel $(uname -r)" >&2
cd "$proj"
: >"$work/bare"
: >"$work/session"
run_bare >/dev/null 2>&1 || fail "the bare build failed"  # warms the page cache
for ((i = 0; i < RUNS; i++)); do
	for kind in bare session; do
		rm -f ./*.o
		t0=${EPOCHREALTIME/./}
		"run_$kind" >"$work/out" 2>&1 || { cat "$work/out" >&2; fail "the $kind build failed"; }
		t1=${EPOCHREALTIME/./}
		echo $((t1 - t0)) >>"$work/$kind"
		sleep 0.2
	done
done
kill "$daemon"
wait "$daemon" || { cat "$work/daemon.err" >&2; fail "the daemon failed"; }
daemon=

# stats NAME: "median p90" in seconds
stats() {
	sort -n "$work/$1" | awk '{ v[NR] = $1 / 1e6 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		printf "%.3f %.3f\n", m, v[int(NR * 0.9 + 0.999)] }'
}
# median of a session_end file_guard count over the builds
guard() {
	grep -o "\"file_guard\":{[^}]*}" "$work/daemon.jsonl" | grep -o "\"$1\":\"[0-9]*\"" |
		grep -o '[0-9]*' | sort -n | awk '{ v[NR] = $1 } END { print (NR ? v[int((NR + 1) / 2)] : "?") }'
}
read -r b_m b_p < <(stats bare)
read -r s_m s_p < <(stats session)
cat <<EOF
| build | median s | p90 s | vs bare |
|---|---:|---:|---:|
| bare | $b_m | $b_p | 1.00 |
| in a session (warm, default policy) | $s_m | $s_p | $(awk "BEGIN { printf \"%.2f\", $s_m / $b_m }") |

file guard per build (median): asked $(guard asked), cached $(guard cached)
EOF
