/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Syscalls are reported at exit, with their result: the entry program of a
 * session thread stashes the arguments in the thread's own entry
 * (session.bpf.h), the exit program takes them back. For a thread outside
 * every session both are one task-storage pointer test.
 */
#ifndef CORRAL_SYSCALL_BPF_H
#define CORRAL_SYSCALL_BPF_H

#include "session.bpf.h"

/* The records of the syscalls:sys_{enter,exit}_* events (see their
 * `format` in tracefs): the number is an int, unlike raw_syscalls' long. */
struct syscall_enter_ctx {
	__u64 common;
	int nr;
	__u64 args[6];
};

struct syscall_exit_ctx {
	__u64 common;
	int nr;
	long ret;
};

/* The stashed arguments, copied out of the task entry. */
struct pending_args {
	__u64 session_id;
	__u64 args[5];
};

/* Reads only the syscall's `nargs` arguments, at constant offsets: the
 * kernel refuses to attach a program that touches the context past its
 * record (EACCES), and the verifier refuses a modified ctx pointer. */
static __always_inline void stash_args(struct syscall_enter_ctx *ctx, const int nargs)
{
	struct corral_task *t = current_task_entry();
	if (!t)
		return;
	t->pending_args[0] = ctx->args[0];
	if (nargs > 1)
		t->pending_args[1] = ctx->args[1];
	if (nargs > 2)
		t->pending_args[2] = ctx->args[2];
	if (nargs > 3)
		t->pending_args[3] = ctx->args[3];
	if (nargs > 4)
		t->pending_args[4] = ctx->args[4];
	t->pending_nr = ctx->nr;
}

#define STASH_ON_ENTER(tp, nargs)                                                          \
	SEC("tp/syscalls/" #tp)                                                            \
	int corral_##tp(struct syscall_enter_ctx *ctx)                             \
	{                                                                                  \
		stash_args(ctx, nargs);                                                    \
		return 0;                                                                  \
	}

/* Defines the exit program; the block that follows is its body, with the
 * stashed `a` and the syscall's `ret`. */
#define ON_EXIT(tp)                                                                        \
	static __always_inline void tp##_body(struct pending_args *a, long ret);           \
	SEC("tp/syscalls/" #tp)                                                            \
	int corral_##tp(struct syscall_exit_ctx *ctx)                              \
	{                                                                                  \
		struct corral_task *t = current_task_entry();                              \
		if (!t)                                                                    \
			return 0;                                                          \
		if (t->pending_nr != ctx->nr) {                                            \
			count_stat(CORRAL_STAT_PENDING_LOST);                              \
			return 0;                                                          \
		}                                                                          \
		struct pending_args a = { .session_id = t->session_id };                   \
		__builtin_memcpy(a.args, t->pending_args, sizeof(a.args));                 \
		t->pending_nr = -1;                                                        \
		tp##_body(&a, ctx->ret);                                                   \
		return 0;                                                                  \
	}                                                                                  \
	static __always_inline void tp##_body(struct pending_args *a, long ret)

#endif /* CORRAL_SYSCALL_BPF_H */
