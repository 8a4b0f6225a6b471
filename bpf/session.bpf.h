/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Session membership, decided first in every program.
 *
 * The pid -> session map is task-local storage (`session_tasks`): the
 * entry hangs off the task itself, so a task outside every session answers
 * with one pointer test (no hash lookup), children inherit the entry on
 * fork, and the kernel frees it when the task exits. Userspace seeds it
 * through a pidfd. Each session's cgroup v2 directory (`session_cgroups`)
 * is the second source of truth: a process moved into it from outside is
 * adopted the next time it forks or execs, never on the hot syscall path.
 *
 * The maps are defined __weak so that every object linked by
 * `bpftool gen object` shares one instance.
 */
#ifndef CORRAL_SESSION_BPF_H
#define CORRAL_SESSION_BPF_H

#include "emit.bpf.h"

#define CORRAL_MAX_SESSIONS 1024

/* cgroup v2 id -> session id; written by userspace */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORRAL_MAX_SESSIONS);
	__type(key, __u64);
	__type(value, __u64);
} session_cgroups SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct corral_task);
} session_tasks SEC(".maps") __weak;

/* The current task's entry, or NULL outside every session (and for
 * corral's own quiet members). */
static __always_inline struct corral_task *current_task_entry(void)
{
	struct corral_task *t =
		bpf_task_storage_get(&session_tasks, bpf_get_current_task_btf(), 0, 0);
	return t && !(t->flags & CORRAL_TASK_QUIET) ? t : NULL;
}

/* Gives `task` an entry for `session_id`; counts a failure. */
static __always_inline struct corral_task *join_session(struct task_struct *task, __u64 session_id)
{
	struct corral_task *t = bpf_task_storage_get(&session_tasks, task, 0,
						     BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!t) {
		count_stat(CORRAL_STAT_SESSION_MAP_FULL);
		return NULL;
	}
	t->session_id = session_id;
	t->flags = 0;
	return t;
}

/* For a task without an entry: its session if it runs in a session cgroup
 * (it is adopted), else 0. */
static __always_inline __u64 adopt_by_cgroup(void)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	__u64 *sid = bpf_map_lookup_elem(&session_cgroups, &cgid);
	if (!sid)
		return 0;
	__u64 id = *sid;
	join_session(bpf_get_current_task_btf(), id);
	return id;
}

/* The session of the current task, adopting it when it runs in a session
 * cgroup without an entry. For the rare paths (fork, exec) only. */
static __always_inline __u64 current_session_or_cgroup(void)
{
	struct corral_task *t =
		bpf_task_storage_get(&session_tasks, bpf_get_current_task_btf(), 0, 0);
	if (t)
		return t->flags & CORRAL_TASK_QUIET ? 0 : t->session_id;
	return adopt_by_cgroup();
}

#endif /* CORRAL_SESSION_BPF_H */
