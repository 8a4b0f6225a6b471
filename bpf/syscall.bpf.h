/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Syscalls are reported at exit, with their result: the entry program of a
 * session thread stashes the arguments by thread, the exit program takes
 * them back. Threads outside sessions stash nothing, so their exit costs one
 * failed lookup.
 */
#ifndef CORRAL_SYSCALL_BPF_H
#define CORRAL_SYSCALL_BPF_H

#include "session.bpf.h"

#define CORRAL_MAX_PENDING 16384

struct pending_args {
	__u64 session_id;
	__u64 args[5];
};

#define DEFINE_PENDING_MAP(name)                                                           \
	struct {                                                                           \
		__uint(type, BPF_MAP_TYPE_HASH);                                           \
		__uint(max_entries, CORRAL_MAX_PENDING);                                   \
		__type(key, __u64);                                                        \
		__type(value, struct pending_args);                                        \
	} name SEC(".maps")

/* Reads only the syscall's `nargs` arguments: touching the context past
 * its record makes the kernel refuse the attach (EACCES). */
static __always_inline void stash_args(void *map, struct trace_event_raw_sys_enter *ctx,
				       const int nargs)
{
	__u64 sid = current_session();
	if (!sid)
		return;
	/* constant offsets: the verifier refuses a modified ctx pointer */
	struct pending_args a = { .session_id = sid };
	a.args[0] = ctx->args[0];
	if (nargs > 1)
		a.args[1] = ctx->args[1];
	if (nargs > 2)
		a.args[2] = ctx->args[2];
	if (nargs > 3)
		a.args[3] = ctx->args[3];
	if (nargs > 4)
		a.args[4] = ctx->args[4];
	__u64 key = bpf_get_current_pid_tgid();
	if (bpf_map_update_elem(map, &key, &a, BPF_ANY))
		count_stat(CORRAL_STAT_PENDING_FULL);
}

#define STASH_ON_ENTER(map, tp, nargs)                                                            \
	SEC("tp/syscalls/" #tp)                                                            \
	int corral_##tp(struct trace_event_raw_sys_enter *ctx)                             \
	{                                                                                  \
		stash_args(&map, ctx, nargs);                                                     \
		return 0;                                                                  \
	}

/* Defines the exit program; the block that follows is its body, with the
 * stashed `a` and the syscall's `ret`. */
#define ON_EXIT(map, tp)                                                                   \
	static __always_inline void tp##_body(struct pending_args *a, long ret);           \
	SEC("tp/syscalls/" #tp)                                                            \
	int corral_##tp(struct trace_event_raw_sys_exit *ctx)                              \
	{                                                                                  \
		__u64 key = bpf_get_current_pid_tgid();                                    \
		struct pending_args *p = bpf_map_lookup_elem(&map, &key);                  \
		if (!p)                                                                    \
			return 0;                                                          \
		struct pending_args a = *p;                                                \
		bpf_map_delete_elem(&map, &key);                                           \
		tp##_body(&a, ctx->ret);                                                   \
		return 0;                                                                  \
	}                                                                                  \
	static __always_inline void tp##_body(struct pending_args *a, long ret)

#endif /* CORRAL_SYSCALL_BPF_H */
