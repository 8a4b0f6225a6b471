/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Syscalls are reported at exit only, with their result. The arguments come
 * from the registers the kernel saved at syscall entry (the task's pt_regs),
 * which syscalls leave untouched, so no entry program runs: on the hot path
 * an outsider's syscall costs one tracepoint dispatch and one task-storage
 * pointer test.
 */
#ifndef CORRAL_SYSCALL_BPF_H
#define CORRAL_SYSCALL_BPF_H

#include "session.bpf.h"

/* The record of the syscalls:sys_exit_* events (see their `format` in
 * tracefs): the number is an int, unlike raw_syscalls' long. */
struct syscall_exit_ctx {
	__u64 common;
	int nr;
	long ret;
};

struct syscall_args {
	__u64 session_id;
	__u64 args[5];
};

/* Defines the exit program of `name`; the block that follows is its body,
 * with the syscall's arguments `a` and its result `ret`. */
#define ON_SYSCALL_EXIT(name)                                                              \
	static __always_inline void name##_body(struct syscall_args *a, long ret);         \
	SEC("tp/syscalls/sys_exit_" #name)                                                 \
	int corral_exit_##name(struct syscall_exit_ctx *ctx)                               \
	{                                                                                  \
		struct corral_task *t = current_task_entry();                              \
		if (!t)                                                                    \
			return 0;                                                          \
		struct task_struct *task = bpf_get_current_task_btf();                     \
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);          \
		/* x86_64 syscall argument registers, in order */                          \
		struct syscall_args a = {                                                  \
			.session_id = t->session_id,                                       \
			.args = { BPF_CORE_READ(regs, di), BPF_CORE_READ(regs, si),        \
				  BPF_CORE_READ(regs, dx), BPF_CORE_READ(regs, r10),       \
				  BPF_CORE_READ(regs, r8) },                               \
		};                                                                         \
		name##_body(&a, ctx->ret);                                                 \
		return 0;                                                                  \
	}                                                                                  \
	static __always_inline void name##_body(struct syscall_args *a, long ret)

#endif /* CORRAL_SYSCALL_BPF_H */
