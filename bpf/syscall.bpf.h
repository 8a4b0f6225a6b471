/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Syscalls are reported at exit only, with their result, by handlers that
 * the one `sys_exit` raw tracepoint program (syscall.bpf.c) tail-calls by
 * syscall number. The arguments come from the registers the kernel saved at
 * syscall entry (the task's pt_regs), which syscalls leave untouched, so no
 * entry program runs.
 *
 * Why a raw tracepoint and not one `tp/syscalls/sys_exit_*` program per
 * syscall: a perf-event tracepoint builds a trace record before the program
 * runs, and detaching each one waits out an RCU grace period under a global
 * mutex (~40 ms apiece here, serialized: half a second per `corral run`).
 * A raw tracepoint calls the program directly and detaches without waiting.
 */
#ifndef CORRAL_SYSCALL_BPF_H
#define CORRAL_SYSCALL_BPF_H

#include "abi.bpf.h"
#include "session.bpf.h"

struct syscall_args {
	__u64 session_id;
	long nr; /* which syscall of the handler's family */
	__u64 args[5];
};

/* Defines the exit handler `name` (tail-called, never attached); the block
 * that follows is its body, with the syscall's number and arguments `a` and
 * its result `ret`. The dispatcher checked membership; the handler reads the
 * entry again for the session id (a tail call passes only the context). */
#define ON_SYSCALL_EXIT(name)                                                              \
	static __always_inline void name##_body(struct syscall_args *a, long ret);         \
	SEC("raw_tp")                                                                      \
	int corral_exit_##name(struct abi_raw_tp_args *ctx)                        \
	{                                                                                  \
		struct corral_task *t = current_task_entry();                              \
		if (!t)                                                                    \
			return 0;                                                          \
		struct task_struct *task = bpf_get_current_task_btf();                     \
		struct abi_pt_regs *regs = (struct abi_pt_regs *)bpf_task_pt_regs(task);  \
		/* x86_64 syscall argument registers, in order */                          \
		struct syscall_args a = {                                                  \
			.session_id = t->session_id,                                       \
			.nr = regs->orig_ax,                                               \
			.args = { regs->di, regs->si, regs->dx, regs->r10, regs->r8 },     \
		};                                                                         \
		name##_body(&a, (long)ctx->args[1]);                                       \
		return 0;                                                                  \
	}                                                                                  \
	static __always_inline void name##_body(struct syscall_args *a, long ret)

#endif /* CORRAL_SYSCALL_BPF_H */
