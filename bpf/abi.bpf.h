/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Kernel structures whose layout is ABI (UAPI, or x86_64's syscall entry
 * frame), read without CO-RE. Every type vmlinux.h declares is CO-RE
 * relocated, and libbpf finds each one's kernel counterpart by scanning all
 * of the kernel's ~125k BTF types: ~0.8 ms a type at every load, a cold
 * start's cost. These never move, so they are read at fixed offsets. Only
 * the leading fields used are declared; the asserts hold them to the
 * kernel's layout as vmlinux.h has it.
 */
#ifndef CORRAL_ABI_BPF_H
#define CORRAL_ABI_BPF_H

#include "vmlinux.h"

/* struct pt_regs, x86_64: the registers saved at syscall entry */
struct abi_pt_regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di;
	unsigned long orig_ax;
};

/* context of cgroup/connect* and sendmsg* (struct bpf_sock_addr) */
struct abi_sock_addr {
	__u32 user_family;
	__u32 user_ip4;
	__u32 user_ip6[4];
	__u32 user_port;
	__u32 family;
	__u32 type;
};

/* context of cgroup/post_bind* (struct bpf_sock) */
struct abi_sock {
	__u32 bound_dev_if;
	__u32 family;
	__u32 type;
	__u32 protocol;
	__u32 mark;
	__u32 priority;
	__u32 src_ip4;
	__u32 src_ip6[4];
	__u32 src_port;
};

/* context of raw tracepoints (struct bpf_raw_tracepoint_args) */
struct abi_raw_tp_args {
	__u64 args[2];
};

/* connect()'s addresses, from user memory */
struct abi_sockaddr_in {
	__u16 sin_family;
	__u16 sin_port;
	__u32 sin_addr;
};

struct abi_sockaddr_in6 {
	__u16 sin6_family;
	__u16 sin6_port;
	__u32 sin6_flowinfo;
	__u8 sin6_addr[16];
	__u32 sin6_scope_id;
};

/* openat2()'s how, from user memory */
struct abi_open_how {
	__u64 flags;
	__u64 mode;
	__u64 resolve;
};

#define ABI_SAME(ours, theirs, field)                                                     \
	_Static_assert(__builtin_offsetof(struct ours, field) ==                          \
			       __builtin_offsetof(struct theirs, field) &&                 \
		       sizeof(((struct ours *)0)->field) == sizeof(((struct theirs *)0)->field), \
		       #theirs "." #field " is not where abi.bpf.h has it")

ABI_SAME(abi_pt_regs, pt_regs, orig_ax);
ABI_SAME(abi_pt_regs, pt_regs, di);
ABI_SAME(abi_pt_regs, pt_regs, si);
ABI_SAME(abi_pt_regs, pt_regs, dx);
ABI_SAME(abi_pt_regs, pt_regs, r10);
ABI_SAME(abi_pt_regs, pt_regs, r8);
ABI_SAME(abi_sock_addr, bpf_sock_addr, user_ip4);
ABI_SAME(abi_sock_addr, bpf_sock_addr, user_ip6);
ABI_SAME(abi_sock_addr, bpf_sock_addr, user_port);
ABI_SAME(abi_sock_addr, bpf_sock_addr, type);
ABI_SAME(abi_sock, bpf_sock, type);
ABI_SAME(abi_sock, bpf_sock, src_port);
ABI_SAME(abi_sockaddr_in, sockaddr_in, sin_port);
ABI_SAME(abi_sockaddr_in, sockaddr_in, sin_addr);
ABI_SAME(abi_sockaddr_in6, sockaddr_in6, sin6_port);
ABI_SAME(abi_sockaddr_in6, sockaddr_in6, sin6_addr);
ABI_SAME(abi_open_how, open_how, flags);
ABI_SAME(abi_open_how, open_how, mode);
_Static_assert(sizeof(struct abi_sockaddr_in6) == sizeof(struct sockaddr_in6), "sockaddr_in6");
_Static_assert(sizeof(struct abi_open_how) == sizeof(struct open_how), "open_how");

#undef ABI_SAME

#endif /* CORRAL_ABI_BPF_H */
