// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The process tree: session membership follows fork (threads included),
 * every successful exec is reported with its resolved binary and argv, and
 * the exit of a whole process is reported with its status.
 */
#include "session.bpf.h"
#include "path.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/sched_process_fork")
int BPF_PROG(corral_fork, struct task_struct *parent, struct task_struct *child)
{
	__u64 sid = current_session_or_cgroup();
	if (!sid)
		return 0;
	/* threads too: each task carries its own entry */
	join_session(child, sid);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(corral_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u64 sid = current_session_or_cgroup();
	if (!sid)
		return 0;
	struct corral_scratch *s = get_scratch();
	if (!s)
		return 0;
	struct corral_exec_event *e = &s->exec;

	fill_header(&e->hdr, CORRAL_EV_EXEC, sid);
	e->path.flags = CORRAL_PATH_RESOLVED;
	e->path.string_len = 0;
	walk_file(offsetof(struct corral_exec_event, data), &e->path, bprm->file);

	unsigned long start = BPF_CORE_READ(task, mm, arg_start);
	unsigned long end = BPF_CORE_READ(task, mm, arg_end);
	__u64 full = end > start ? end - start : 0;
	__u64 len = full;
	if (len > CORRAL_STRING_MAX)
		len = CORRAL_STRING_MAX;
	e->argv_full_len = full;
	e->argv_len = 0;
	if (len && !bpf_probe_read_user(e->data + (e->path.components_len & CORRAL_COMPONENTS_MASK),
					len, (void *)start))
		e->argv_len = len;
	else if (len)
		count_stat(CORRAL_STAT_READ_ERROR);

	emit(e, offsetof(struct corral_exec_event, data) + e->path.components_len + e->argv_len);
	return 0;
}

SEC("tp/sched/sched_process_exit")
int corral_exit(void *ctx)
{
	struct corral_task *t = current_task_entry();
	if (!t)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	/* only the last thread of a process reports; the kernel frees the
	 * task's entry itself */
	if (task->signal->live.counter != 0)
		return 0;

	struct corral_scratch *s = get_scratch();
	if (!s)
		return 0;
	struct corral_exit_event *e = &s->exit;
	fill_header(&e->hdr, CORRAL_EV_EXIT, t->session_id);
	e->exit_code = task->exit_code;
	e->reserved = 0;
	emit(e, sizeof(*e));
	return 0;
}
