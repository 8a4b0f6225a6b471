// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The process tree: session membership follows fork (threads included),
 * every successful exec is reported with its resolved binary and argv, and
 * the exit of a whole process is reported with its status.
 */
#include "session.bpf.h"
#include "path.bpf.h"
#include "exec.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/sched_process_fork")
int BPF_PROG(corral_fork, struct task_struct *parent, struct task_struct *child)
{
	/* a quiet member's children are the agent: they join, not quiet */
	struct corral_task *t =
		bpf_task_storage_get(&session_tasks, bpf_get_current_task_btf(), 0, 0);
	__u64 sid = t ? t->session_id : adopt_by_cgroup();
	if (!sid)
		return 0;
	/* threads too: each task carries its own entry */
	join_session(child, sid);
	return 0;
}

/* Matches the exec in `e` against `exec_rules`; kills the process when an
 * enforcing rule matches. The new image has not run an instruction yet and
 * never will: the signal is taken on the way back to user mode. */
static __always_inline void check_exec_rules(struct corral_exec_event *e)
{
	struct corral_exec_name names[2] = {};
	__u32 comp = e->path.components_len & CORRAL_COMPONENTS_MASK;
	const __u32 data = offsetof(struct corral_scratch, exec.data);
	__u32 zero = 0;

	e->verdict = CORRAL_VERDICT_NONE;
	e->rule_index = 0;
	e->policy_gen = 0;
	e->reserved = 0;

	/* components are leaf first: the first one is the resolved basename */
	bpf_probe_read_kernel_str(names[0].name, sizeof(names[0].name), e->data);
	bpf_get_current_comm(names[1].name, CORRAL_COMM_LEN);

	struct argv_tokens *t = NULL;
	for (int k = 0; k < 2; k++) {
		struct corral_exec_rules *set = bpf_map_lookup_elem(&exec_rules, &names[k]);
		if (!set)
			continue;
		if (!t) {
			t = bpf_map_lookup_elem(&argv_scratch, &zero);
			if (!t)
				return;
			split_argv(t, data + comp, e->argv_len);
		}
		for (int r = 0; r < CORRAL_EXEC_RULES_PER_NAME; r++) {
			if (r >= set->count)
				break;
			struct corral_exec_rule *rule = &set->rules[r];
			if (!rule_matches(t, rule, data, comp))
				continue;
			/* the first matching rule decides, shadow or not */
			e->rule_index = rule->rule_index;
			e->policy_gen = set->policy_gen;
			if (rule->mode == CORRAL_MODE_ENFORCE) {
				e->verdict = CORRAL_VERDICT_DENIED;
				bpf_send_signal(9 /* SIGKILL */);
			} else {
				e->verdict = CORRAL_VERDICT_WOULD_DENY;
			}
			return;
		}
	}
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
	__u64 file = 0; /* a number: a global function takes no kernel pointer */
	bpf_probe_read_kernel(&file, sizeof(file), &bprm->file);
	fill_file_path(offsetof(struct corral_exec_event, data), &e->path, file);

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

	check_exec_rules(e);
	emit(e, offsetof(struct corral_exec_event, data) + e->path.components_len + e->argv_len);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(corral_exit, struct task_struct *exiting)
{
	struct corral_task *t = current_task_entry();
	if (!t)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	/* only the last thread of a process reports; the kernel frees the
	 * task's entry itself */
	if (BPF_CORE_READ(task, signal, live.counter) != 0)
		return 0;

	struct corral_scratch *s = get_scratch();
	if (!s)
		return 0;
	struct corral_exit_event *e = &s->exit;
	fill_header(&e->hdr, CORRAL_EV_EXIT, t->session_id);
	e->exit_code = BPF_CORE_READ(task, exit_code);
	e->reserved = 0;
	emit(e, sizeof(*e));
	return 0;
}
