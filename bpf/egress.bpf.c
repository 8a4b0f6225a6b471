// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Network egress of sessions: cgroup sock_addr programs attached to each
 * session's cgroup, so only session processes ever run them. connect() and
 * sendmsg() to a destination the policy does not allow get EPERM, and the
 * decision goes to the ring buffer. Loopback is allowed only to ports the
 * session's own processes bound (its dev server, its test database).
 */
#include "abi.bpf.h"
#include "emit.bpf.h"
#include "session.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define AF_INET 2
#define AF_INET6 10
#define CORRAL_MAX_EGRESS 65536
#define CORRAL_MAX_SESSION_PORTS 65536

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, CORRAL_MAX_EGRESS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct corral_egress_key4);
	__type(value, struct corral_egress_allow);
} egress4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, CORRAL_MAX_EGRESS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct corral_egress_key6);
	__type(value, struct corral_egress_allow);
} egress6 SEC(".maps");

/* Allocated as ports are bound (post_bind runs in process context): a
 * preallocated table would build 64k elements on every load, ~5 MB
 * touched before the first session. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORRAL_MAX_SESSION_PORTS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct corral_session_port);
	__type(value, __u8);
} session_ports SEC(".maps");

/* Egress defaults to deny; userspace sets this (.bss, writable while
 * loaded) for `default: allow`, and on reload. */
bool egress_default_allow = false;
/* `default: shadow`: not allowed, yet let through and reported would_deny. */
bool egress_default_shadow = false;

static __always_inline __u8 proto_of(struct abi_sock_addr *ctx)
{
	return ctx->type == SOCK_DGRAM ? CORRAL_PROTO_UDP : CORRAL_PROTO_TCP;
}

static __always_inline __u64 session_of_cgroup(void)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	__u64 *sid = bpf_map_lookup_elem(&session_cgroups, &cgid);
	return sid ? *sid : 0;
}

static __always_inline bool allowed_by(struct corral_egress_allow *a, __u16 port, __u8 proto)
{
	if (!a)
		return false;
	for (int i = 0; i < CORRAL_EGRESS_ENTRIES; i++) {
		if (i >= a->count)
			break;
		struct corral_egress_entry *e = &a->entries[i];
		if ((e->protocols & proto) && port >= e->port_lo && port <= e->port_hi)
			return true;
	}
	return false;
}

static __always_inline void report(__u64 sid, __u16 family, const void *addr, int addr_len,
				   __u16 port, __u8 proto, bool loopback, __u8 verdict)
{
	struct corral_egress_event e = {};
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	e.hdr.type = CORRAL_EV_EGRESS;
	e.hdr.size = sizeof(e);
	e.hdr.boot_ns = bpf_ktime_get_boot_ns();
	e.hdr.session_id = sid;
	e.hdr.pid = pid_tgid >> 32;
	e.hdr.tid = (__u32)pid_tgid;
	e.hdr.uid = (__u32)uid_gid;
	e.hdr.gid = uid_gid >> 32;
	bpf_get_current_comm(e.hdr.comm, sizeof(e.hdr.comm));
	e.family = family;
	e.port = port;
	e.protocol = proto;
	e.verdict = verdict;
	e.loopback = loopback;
	__builtin_memcpy(e.addr, addr, addr_len == 4 ? 4 : 16);
	count_stat(CORRAL_STAT_SUBMITTED);
	if (bpf_ringbuf_output(&events, &e, sizeof(e), 0))
		count_stat(CORRAL_STAT_RINGBUF_DROPPED);
}

static __always_inline bool own_port(__u64 sid, __u16 port, __u8 proto)
{
	struct corral_session_port k = { .session_id = sid, .port = port, .protocol = proto };
	return bpf_map_lookup_elem(&session_ports, &k) != NULL;
}

/* Not allowed: reported; refused (0) unless the default is shadow (1). */
static __always_inline int refuse(__u64 sid, __u16 family, const void *addr, int addr_len,
				  __u16 port, __u8 proto, bool loopback)
{
	bool shadow = egress_default_shadow;
	report(sid, family, addr, addr_len, port, proto, loopback,
	       shadow ? CORRAL_VERDICT_WOULD_DENY : CORRAL_VERDICT_DENIED);
	return shadow ? 1 : 0;
}

static __always_inline int decide4(struct abi_sock_addr *ctx)
{
	__u64 sid = session_of_cgroup();
	if (!sid)
		return 1;
	__u32 ip = ctx->user_ip4;
	__u16 port = bpf_ntohs(ctx->user_port);
	__u8 proto = proto_of(ctx);
	__u8 *b = (__u8 *)&ip;
	bool loopback = b[0] == 127;
	/* loopback: the session's own listeners, or what the policy names */
	if (egress_default_allow || (loopback && own_port(sid, port, proto)))
		return 1;
	struct corral_egress_key4 key = { .prefixlen = 32 };
	__builtin_memcpy(key.addr, &ip, 4);
	if (allowed_by(bpf_map_lookup_elem(&egress4, &key), port, proto))
		return 1;
	return refuse(sid, AF_INET, &ip, 4, port, proto, loopback);
}

static __always_inline int decide6(struct abi_sock_addr *ctx)
{
	__u64 sid = session_of_cgroup();
	if (!sid)
		return 1;
	struct corral_egress_key6 key = { .prefixlen = 128 };
	__u32 ip6[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	__u16 port = bpf_ntohs(ctx->user_port);
	__u8 proto = proto_of(ctx);
	bool loopback = !ip6[0] && !ip6[1] && !ip6[2] && ip6[3] == bpf_htonl(1);
	if (egress_default_allow || (loopback && own_port(sid, port, proto)))
		return 1;
	__builtin_memcpy(key.addr, ip6, 16);
	if (allowed_by(bpf_map_lookup_elem(&egress6, &key), port, proto))
		return 1;
	return refuse(sid, AF_INET6, ip6, 16, port, proto, loopback);
}

SEC("cgroup/connect4")
int corral_connect4(struct abi_sock_addr *ctx) { return decide4(ctx); }

SEC("cgroup/connect6")
int corral_connect6(struct abi_sock_addr *ctx) { return decide6(ctx); }

SEC("cgroup/sendmsg4")
int corral_sendmsg4(struct abi_sock_addr *ctx) { return decide4(ctx); }

SEC("cgroup/sendmsg6")
int corral_sendmsg6(struct abi_sock_addr *ctx) { return decide6(ctx); }

/* The session's own listeners and bound UDP ports: loopback may reach them. */
static __always_inline int remember_port(struct abi_sock *sk)
{
	__u64 sid = session_of_cgroup();
	if (!sid || !sk->src_port)
		return 1;
	struct corral_session_port k = {
		.session_id = sid,
		.port = sk->src_port,
		.protocol = sk->type == SOCK_DGRAM ? CORRAL_PROTO_UDP : CORRAL_PROTO_TCP,
	};
	__u8 one = 1;
	if (bpf_map_update_elem(&session_ports, &k, &one, BPF_ANY))
		count_stat(CORRAL_STAT_SESSION_MAP_FULL);
	return 1;
}

SEC("cgroup/post_bind4")
int corral_post_bind4(struct abi_sock *sk) { return remember_port(sk); }

SEC("cgroup/post_bind6")
int corral_post_bind6(struct abi_sock *sk) { return remember_port(sk); }
