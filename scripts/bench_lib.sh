# Shared by scripts/bench.sh and scripts/bench_policy.sh (sourced).

# Other corral processes (other users' sessions, tests) attach BPF programs
# to the whole host and would be measured too. wait_quiet [OWN_PID...]
# waits up to BENCH_QUIET_WAIT seconds (default 60) until no corral process
# other than OWN_PIDs runs; if some still do, it counts the run as suspect.
QUIET_WAIT=${BENCH_QUIET_WAIT:-60}
SUSPECT=0
wait_quiet() {
	local i others
	for ((i = 0; i <= QUIET_WAIT * 10; i++)); do
		others=$(pgrep -x 'corral(-core)?' | grep -vxF -f <(printf '%s\n' "$@" 0) || true)
		[[ -z $others ]] && return 0
		((i == 0)) && echo "#   waiting for other corral processes to end: ${others//$'\n'/ }" >&2
		sleep 0.1
	done
	SUSPECT=$((SUSPECT + 1))
	echo "#   other corral processes still running: ${others//$'\n'/ }; measuring anyway" >&2
}

# after_run [OWN_PID...]: counts the run just done as suspect when a corral
# process other than OWN_PIDs runs now (it may have run during the run).
after_run() {
	local others
	others=$(pgrep -x 'corral(-core)?' | grep -vxF -f <(printf '%s\n' "$@" 0) || true)
	[[ -z $others ]] && return 0
	SUSPECT=$((SUSPECT + 1))
	echo "#   other corral processes ran at the end of that run: ${others//$'\n'/ }" >&2
}

# field KEY LINE: the value of KEY=VALUE in a key=value line.
field() {
	awk -v key="$1" '{ for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) { print substr($i, length(key) + 2); exit } }' <<<"$2"
}
