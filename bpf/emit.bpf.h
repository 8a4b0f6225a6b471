/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Getting an event to userspace: a per-CPU scratch buffer to build it in
 * (events are larger than the BPF stack), the one ring buffer, and the
 * per-CPU counters that make every loss visible.
 */
#ifndef CORRAL_EMIT_BPF_H
#define CORRAL_EMIT_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_endian.h>
#include "events.h"

/* Size set by userspace before load (bpf_map__set_max_entries). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 * 1024 * 1024);
} events SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CORRAL_STAT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps") __weak;

/* The largest event; every program builds its event here. */
struct corral_scratch {
	union {
		struct corral_event_header hdr;
		struct corral_exec_event exec;
		struct corral_exit_event exit;
		struct corral_connect_event connect;
		struct corral_open_event open;
		struct corral_unlink_event unlink;
		struct corral_rename_event rename;
		struct corral_truncate_event truncate;
	};
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct corral_scratch);
} scratch SEC(".maps") __weak;

static __always_inline void count_stat(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &which);
	if (v)
		*v += 1;
}

static __always_inline struct corral_scratch *get_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&scratch, &zero);
}

static __always_inline void fill_header(struct corral_event_header *hdr, __u32 type,
					__u64 session_id)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();

	hdr->type = type;
	hdr->size = 0;
	hdr->boot_ns = bpf_ktime_get_boot_ns();
	hdr->session_id = session_id;
	hdr->pid = pid_tgid >> 32;
	hdr->tid = (__u32)pid_tgid;
	hdr->ppid = BPF_CORE_READ(task, real_parent, tgid);
	hdr->uid = (__u32)uid_gid;
	hdr->gid = uid_gid >> 32;
	hdr->reserved = 0;
	bpf_get_current_comm(hdr->comm, sizeof(hdr->comm));
}

/* Sends the first `size` bytes of `ev`; a full ring buffer is counted.
 * Wakes the reader only past CORRAL_RINGBUF_WAKEUP_BYTES (see events.h). */
static __always_inline void emit(void *ev, __u64 size)
{
	if (size > sizeof(struct corral_scratch))
		size = sizeof(struct corral_scratch);
	((struct corral_event_header *)ev)->size = size;
	count_stat(CORRAL_STAT_SUBMITTED);
	__u64 flags = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= CORRAL_RINGBUF_WAKEUP_BYTES
			      ? BPF_RB_FORCE_WAKEUP
			      : BPF_RB_NO_WAKEUP;
	if (bpf_ringbuf_output(&events, ev, size, flags))
		count_stat(CORRAL_STAT_RINGBUF_DROPPED);
}

#endif /* CORRAL_EMIT_BPF_H */
