#!/usr/bin/env bash
# Launch cost: wall time of one `/bin/true`, N times each in interleaved
# rounds, in one run:
#   bare    /bin/true
#   bwrap   bubblewrap with namespaces and binds like a corral session's
#           (pid, mount, ipc, uts; the host read-only, the project and a
#           private /tmp writable, a credential directory hidden, /proc new)
#   cold    `corral run --embedded -- /bin/true`: loads and attaches the
#           kernel programs, makes the cgroup, the namespaces and the
#           guard, then tears it all down.
#   warm    `corral run -- /bin/true` with a `corral daemon` running: the
#           programs are loaded already, and the daemon keeps a session
#           prepared; the same cgroup, namespaces, mounts, guard and
#           records as cold. Compared with bare /bin/true rounds of its
#           own, beside it, while the daemon runs.
#   fresh   the same, each run in a project of its own, so that no
#           prepared session fits (a first run in a project, a CI job in
#           a new checkout): the daemon makes the session at the request.
# Then the creation time of a worktree (`corral run --worktree`) in a
# repository of BENCH_FILES files, separately.
#
# Prints median and p90 in ms and the ratios to bare and to bwrap, and what
# warm adds to bare both as the difference of medians and as the median of
# each round's difference. Goals
# (issue 5): warm <= 5 ms added median and not slower than bwrap; cold <=
# 100 ms. A benchmark, not a test: missed goals are only printed.
#
#   sudo scripts/bench_launch.sh
# Environment: BUILD (default build), BENCH_RUNS (default 30),
#   BENCH_FILES (default 10000).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
CORRAL=${CORRAL:-$BUILD/agent/corral}
RUNS=${BENCH_RUNS:-30}
FILES=${BENCH_FILES:-10000}

[[ $(id -u) -eq 0 ]] || { echo "bench_launch: run as root" >&2; exit 1; }
[[ ${BASH_VERSINFO[0]} -ge 5 ]] || { echo "bench_launch: needs bash 5 (EPOCHREALTIME)" >&2; exit 1; }
command -v bwrap >/dev/null || { echo "bench_launch: bwrap missing (apt-get install bubblewrap)" >&2; exit 1; }
[[ -x $CORRAL ]] || { echo "bench_launch: no corral at $CORRAL (build first)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/corral-bench-launch-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/proj" "$work/home/.ssh"
cd "$work/proj"

# One launch of each kind, timed (EPOCHREALTIME, in µs: a $(date) would add
# two forks to each run).
run_bare() { /bin/true; }
run_bwrap() {
	bwrap --unshare-pid --unshare-ipc --unshare-uts --die-with-parent \
		--ro-bind / / --bind "$work/proj" "$work/proj" --tmpfs /tmp --dev /dev --proc /proc \
		--tmpfs "$work/home/.ssh" --chdir "$work/proj" /bin/true
}
run_cold() {
	"$CORRAL" run --embedded --quiet --allow-root --audit "$work/audit.jsonl" \
		--audit-key "$work/audit.key" -- /bin/true
}
run_warm() { "$CORRAL" run --allow-root --daemon-socket "$work/control.sock" -- /bin/true; }
run_bare_daemon() { /bin/true; }
run_bare_fresh() { /bin/true; }
# cd, a builtin: no fork in the timed part
run_fresh() {
	cd "$work/fresh$i" || return
	"$CORRAL" run --allow-root --daemon-socket "$work/control.sock" -- /bin/true
	local rc=$?
	cd "$work/proj" && return $rc
}

# rounds KIND...: RUNS rounds, one launch of each KIND per round, each time
# appended in ms to $work/KIND. Interleaved, so that a host whose speed
# drifts (this VM's does, by tens of percent within the hour) slows every
# kind alike; 50 ms apart, so that each launch starts on a quiet host, not
# beside what the one before left to do in the background (a daemon's
# teardown of the last session and its preparing the next).
rounds() {
	local kind
	for kind in "$@"; do : >"$work/$kind"; done
	for ((i = 0; i < RUNS; i++)); do
		for kind in "$@"; do
			local t0 t1
			t0=${EPOCHREALTIME/./}
			"run_$kind" >/dev/null 2>&1 || { echo "bench_launch: $kind failed" >&2; exit 1; }
			t1=${EPOCHREALTIME/./}
			printf '%d.%03d\n' $(((t1 - t0) / 1000)) $(((t1 - t0) % 1000)) >>"$work/$kind"
			sleep 0.05
		done
	done
}

# stats NAME: "median p90"
stats() {
	sort -n "$work/$1" | awk '{ v[NR] = $1 } END {
		m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
		p = v[int(NR * 0.9 + 0.999)]
		printf "%.2f %.2f\n", m, p }'
}

echo "# launch cost, $RUNS rounds, $(nproc) CPUs, kernel $(uname -r)" >&2
rounds bare bwrap cold
# Warm beside a bare launch of its own: the daemon's programs, loaded from
# here on, are on every system call of the host, /bin/true's too.
"$CORRAL" daemon --quiet --audit "$work/daemon.jsonl" --audit-key "$work/audit.key" \
	--socket "$work/control.sock" 2>"$work/daemon.err" &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; rm -rf "$work"' EXIT
for ((i = 0; i < 300; i++)); do [[ -S $work/control.sock ]] && break; sleep 0.1; done
[[ -S $work/control.sock ]] || { echo "bench_launch: the daemon did not start:" >&2; cat "$work/daemon.err" >&2; exit 1; }
rounds bare_daemon warm
# Apart from warm: a fresh run's session leaves a spare for its own
# project, which the next warm run could not take.
for ((i = 0; i < RUNS; i++)); do mkdir -p "$work/fresh$i"; done
rounds bare_fresh fresh
kill "$daemon"
wait "$daemon" || { echo "bench_launch: the daemon failed:" >&2; cat "$work/daemon.err" >&2; exit 1; }

read -r bare_m bare_p < <(stats bare)
read -r bw_m bw_p < <(stats bwrap)
read -r co_m co_p < <(stats cold)
read -r bd_m bd_p < <(stats bare_daemon)
read -r wa_m wa_p < <(stats warm)
read -r bf_m bf_p < <(stats bare_fresh)
read -r fr_m fr_p < <(stats fresh)
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
ratio() { calc "$1 / $2"; }
added=$(calc "$co_m - $bare_m")
warm_added=$(calc "$wa_m - $bd_m")
# paired: the median of each round's warm minus its bare launch, which a
# drift of the host's speed between rounds moves less than it moves either
# median
paired() {
	paste "$work/$1" "$work/$2" | awk '{ print $1 - $2 }' | sort -n | awk '
		{ v[NR] = $1 } END { printf "%.2f", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
warm_paired=$(paired warm bare_daemon)
fresh_added=$(calc "$fr_m - $bf_m")
fresh_paired=$(paired fresh bare_fresh)

# Worktree creation in a repository of FILES files.
repo="$work/repo"
mkdir -p "$repo"
git -C "$repo" init -q
for ((d = 0; d < FILES / 100; d++)); do
	mkdir -p "$repo/d$d"
	for ((f = 0; f < 100; f++)); do echo "$d $f" >"$repo/d$d/f$f.txt"; done
done
git -C "$repo" add -A
git -C "$repo" -c user.name=b -c user.email=b@example.com commit -qm files
# The first checkout after the commit is 3-4 times slower than any later
# one here (whichever tool makes it): one untimed, so that neither timed
# run pays for it.
git -C "$repo" worktree add -q "$work/warmup" -b warmup >/dev/null
git -C "$repo" worktree remove --force "$work/warmup"
sync  # its files' writeback, not during the timed runs
cd "$repo"
t0=${EPOCHREALTIME/./}
"$CORRAL" run --quiet --allow-root --audit "$work/audit.jsonl" --audit-key "$work/audit.key" \
	--worktree bench --worktrees-dir "$work/wt" -- /bin/true
t1=${EPOCHREALTIME/./}
wt_total=$(calc "($t1 - $t0) / 1000")
sync
t0=${EPOCHREALTIME/./}
git -C "$repo" worktree add -q "$work/plain" -b plain >/dev/null
t1=${EPOCHREALTIME/./}
wt_git=$(calc "($t1 - $t0) / 1000")

cat <<EOF
| launch of /bin/true | median ms | p90 ms | vs bare | vs bwrap |
|---|---:|---:|---:|---:|
| bare | $bare_m | $bare_p | 1.00 | - |
| bwrap (pid, mount, ipc, uts; ro host, rw project, tmpfs /tmp, hidden dir, new /proc) | $bw_m | $bw_p | $(ratio "$bw_m" "$bare_m") | 1.00 |
| corral cold (embedded: programs loaded by this run) | $co_m | $co_p | $(ratio "$co_m" "$bare_m") | $(ratio "$co_m" "$bw_m") |
| bare, a daemon running | $bd_m | $bd_p | 1.00 | - |
| corral warm (a daemon holds the programs and a prepared session) | $wa_m | $wa_p | $(ratio "$wa_m" "$bd_m") | $(ratio "$wa_m" "$bw_m") |
| bare, a daemon running (beside fresh) | $bf_m | $bf_p | 1.00 | - |
| corral warm, fresh (each run in a new project: no prepared session fits) | $fr_m | $fr_p | $(ratio "$fr_m" "$bf_m") | $(ratio "$fr_m" "$bw_m") |

corral cold adds $added ms to bare at the median (goal <= 100 ms); warm adds
$warm_added ms to bare with the daemon running ($warm_paired ms, median of the
rounds' differences; goal <= 5 ms, and not slower than bwrap); fresh adds
$fresh_added ms ($fresh_paired paired).

| worktree in a repository of $FILES files | ms |
|---|---:|
| corral run --worktree NAME -- /bin/true (worktree, session, teardown) | $wt_total |
| git worktree add alone | $wt_git |
EOF
