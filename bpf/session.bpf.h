/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Session membership, decided first in every program. A process belongs to
 * a session when its thread group id is in `session_pids` (inherited on
 * fork, dropped on exit) or, failing that, when it runs in a session's
 * cgroup v2 directory (`session_cgroups`); the second case adopts it into
 * `session_pids`. A process outside every session costs the lookups here and
 * nothing else.
 *
 * The maps are defined __weak so that every object linked by
 * `bpftool gen object` shares one instance.
 */
#ifndef CORRAL_SESSION_BPF_H
#define CORRAL_SESSION_BPF_H

#include "emit.bpf.h"

#define CORRAL_MAX_SESSIONS 1024
#define CORRAL_MAX_SESSION_PIDS 65536

/* cgroup v2 id -> session id; written by userspace */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORRAL_MAX_SESSIONS);
	__type(key, __u64);
	__type(value, __u64);
} session_cgroups SEC(".maps") __weak;

/* tgid -> session id; seeded by userspace, maintained on fork and exit */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORRAL_MAX_SESSION_PIDS);
	__type(key, __u32);
	__type(value, __u64);
} session_pids SEC(".maps") __weak;

/* Returns the current process's session id, or 0 when it has none. */
static __always_inline __u64 current_session(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 *sid = bpf_map_lookup_elem(&session_pids, &tgid);
	if (sid)
		return *sid;

	__u64 cgid = bpf_get_current_cgroup_id();
	sid = bpf_map_lookup_elem(&session_cgroups, &cgid);
	if (!sid)
		return 0;
	__u64 id = *sid;
	if (bpf_map_update_elem(&session_pids, &tgid, &id, BPF_NOEXIST) &&
	    !bpf_map_lookup_elem(&session_pids, &tgid))
		count_stat(CORRAL_STAT_SESSION_MAP_FULL);
	return id;
}

#endif /* CORRAL_SESSION_BPF_H */
