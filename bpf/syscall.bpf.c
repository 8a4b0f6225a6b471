// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The syscall exit dispatcher: every syscall of every task passes here, so
 * an outsider pays one task-storage pointer test and nothing else. A
 * session member's syscall goes on to its handler in `syscall_exits`
 * (filled by userspace, indexed by x86_64 syscall number); a syscall
 * without a handler falls through the tail call.
 */
#include "abi.bpf.h"
#include "session.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, CORRAL_SYSCALL_NR_MAX);
	__type(key, __u32);
	__type(value, __u32);
} syscall_exits SEC(".maps");

SEC("raw_tp/sys_exit")
int corral_sys_exit(struct abi_raw_tp_args *ctx)
{
	if (!current_task_entry())
		return 0;
	struct abi_pt_regs *regs = (struct abi_pt_regs *)ctx->args[0];
	long nr;
	if (bpf_probe_read_kernel(&nr, sizeof(nr), &regs->orig_ax)) {
		count_stat(CORRAL_STAT_READ_ERROR);
		return 0;
	}
	if (nr < 0 || nr >= CORRAL_SYSCALL_NR_MAX)
		return 0;
	bpf_tail_call(ctx, &syscall_exits, (__u32)nr);
	return 0;
}
