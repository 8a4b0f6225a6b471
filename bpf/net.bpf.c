// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Network egress attempts of session processes: every connect(2), with the
 * destination (IPv4, IPv6 or unix path) and its result.
 */
#include "session.bpf.h"
#include "syscall.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_UNIX 1
#define AF_INET 2
#define AF_INET6 10

ON_SYSCALL_EXIT(connect)
{
	struct corral_scratch *s = get_scratch();
	if (!s)
		return;
	struct corral_connect_event *e = &s->connect;
	const void *uaddr = (const void *)a->args[1];
	__u32 addrlen = a->args[2];

	fill_header(&e->hdr, CORRAL_EV_CONNECT, a->session_id);
	e->fd = a->args[0];
	e->ret = ret;
	e->addrlen = addrlen;
	e->family = 0;
	e->port = 0;
	__builtin_memset(e->addr, 0, sizeof(e->addr));
	e->unix_path[0] = 0;

	if (bpf_probe_read_user(&e->family, sizeof(e->family), uaddr)) {
		count_stat(CORRAL_STAT_READ_ERROR);
	} else if (e->family == AF_INET) {
		struct abi_sockaddr_in sin = {};
		bpf_probe_read_user(&sin, sizeof(sin), uaddr);
		e->port = bpf_ntohs(sin.sin_port);
		__builtin_memcpy(e->addr, &sin.sin_addr, 4);
	} else if (e->family == AF_INET6) {
		struct abi_sockaddr_in6 sin6 = {};
		bpf_probe_read_user(&sin6, sizeof(sin6), uaddr);
		e->port = bpf_ntohs(sin6.sin6_port);
		__builtin_memcpy(e->addr, &sin6.sin6_addr, 16);
	} else if (e->family == AF_UNIX && addrlen > 2) {
		/* an abstract name starts with a NUL: keep it, read the name after it */
		char first = 0;
		bpf_probe_read_user(&first, 1, uaddr + 2);
		long n = bpf_probe_read_user_str(e->unix_path + (first ? 0 : 1),
						 sizeof(e->unix_path) - 1, uaddr + (first ? 2 : 3));
		if (n < 0)
			count_stat(CORRAL_STAT_READ_ERROR);
	}
	emit(e, sizeof(*e));
}
