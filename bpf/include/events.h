/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one contract between the kernel programs and the supervisor: every
 * record that crosses the ring buffer, and the keys and values of the maps
 * that userspace writes. Plain C with fixed-width fields only; the C++ side
 * checks the layout with static_assert (agent/event_layout.h).
 */
#ifndef CORRAL_EVENTS_H
#define CORRAL_EVENTS_H

#ifndef __BPF__
#include <linux/types.h>
#endif

#define CORRAL_COMM_LEN 16
/* A path travels as its dentry names, leaf first, each NUL-terminated; this
 * many bytes at most (the walk stops and flags truncation beyond it). */
#define CORRAL_PATH_COMPONENTS_MAX 4096
#define CORRAL_NAME_MAX 256           /* one dentry name, NUL included */
#define CORRAL_PATH_DEPTH_MAX 64      /* dentries walked per path */
#define CORRAL_STRING_MAX 4096        /* a user string (path argument, argv) */
/* One variable-size region of an event: components, then a user string.
 * Sized so that any offset below CORRAL_PATH_COMPONENTS_MAX plus a full
 * string read stays inside, which is what the verifier needs to see. */
#define CORRAL_SLOT_SIZE (CORRAL_PATH_COMPONENTS_MAX + CORRAL_STRING_MAX)
#define CORRAL_UNIX_PATH_MAX 108
/* A record wakes the supervisor only when this much waits in the ring: a
 * wakeup per record is an inter-processor interrupt per record (a VM exit
 * on virtual machines), which cost in-session syscalls more than the rest
 * of the pipeline. The supervisor also reads the ring every few ms. */
#define CORRAL_RINGBUF_WAKEUP_BYTES (256 * 1024)
/* syscall numbers below this can have an exit handler (x86_64 has ~460) */
#define CORRAL_SYSCALL_NR_MAX 512
/* The x86_64 syscalls with exit handlers (userspace asserts them against
 * <sys/syscall.h>). One handler serves each family: the verifier checks a
 * program per family, not per syscall. */
#define CORRAL_NR_OPEN 2
#define CORRAL_NR_CREAT 85
#define CORRAL_NR_OPENAT 257
#define CORRAL_NR_OPENAT2 437
#define CORRAL_NR_UNLINK 87
#define CORRAL_NR_RMDIR 84
#define CORRAL_NR_UNLINKAT 263
#define CORRAL_NR_RENAME 82
#define CORRAL_NR_RENAMEAT 264
#define CORRAL_NR_RENAMEAT2 316
#define CORRAL_NR_LINK 86
#define CORRAL_NR_LINKAT 265
#define CORRAL_NR_SYMLINK 88
#define CORRAL_NR_SYMLINKAT 266
#define CORRAL_NR_TRUNCATE 76
#define CORRAL_NR_FTRUNCATE 77
#define CORRAL_NR_CONNECT 42

enum corral_event_type {
	CORRAL_EV_EXEC = 1,
	CORRAL_EV_EXIT = 2,
	CORRAL_EV_OPEN = 3,
	CORRAL_EV_CONNECT = 4,
	CORRAL_EV_UNLINK = 5,
	CORRAL_EV_RENAME = 6,
	CORRAL_EV_TRUNCATE = 7,
	CORRAL_EV_EGRESS = 8,
	CORRAL_EV_LINK = 9,    /* laid out as corral_rename_event */
	CORRAL_EV_SYMLINK = 10, /* laid out as corral_rename_event */
};

/* corral_path.flags */
enum corral_path_flags {
	/* components describe the file itself (resolved from its struct file);
	 * the user string is informational */
	CORRAL_PATH_RESOLVED = 1 << 0,
	/* components describe the directory the user string is relative to */
	CORRAL_PATH_BASE_CWD = 1 << 1,
	CORRAL_PATH_BASE_DIRFD = 1 << 2,
	/* the walk hit CORRAL_PATH_DEPTH_MAX or CORRAL_PATH_COMPONENTS_MAX */
	CORRAL_PATH_TRUNCATED = 1 << 3,
	/* the dirfd or fd could not be looked up in the task's file table */
	CORRAL_PATH_BAD_FD = 1 << 4,
	/* the walk ended at a root that is not the mount namespace's root
	 * (a detached mount, a pipe or an anonymous inode) */
	CORRAL_PATH_DETACHED = 1 << 5,
};

/* Describes one slot of the event's data area: `components_len` bytes of
 * leaf-first dentry names, then `string_len` bytes of the user's string
 * (NUL included, 0 when absent). */
struct corral_path {
	__u16 components_len;
	__u16 string_len;
	__u16 flags;
	__u16 depth;
};

struct corral_event_header {
	__u32 type;       /* enum corral_event_type */
	__u32 size;       /* bytes of the whole event, data area included */
	__u64 boot_ns;    /* bpf_ktime_get_boot_ns() */
	__u64 session_id;
	__u32 pid;        /* thread group id */
	__u32 tid;
	__u32 ppid;       /* real parent's thread group id */
	__u32 uid;
	__u32 gid;
	__u32 reserved;
	char comm[CORRAL_COMM_LEN];
};

/* What a rule decided about an event (the exec event carries it). */
enum corral_verdict {
	CORRAL_VERDICT_NONE = 0,
	CORRAL_VERDICT_DENIED = 1,     /* enforce: the process was killed */
	CORRAL_VERDICT_WOULD_DENY = 2, /* shadow: recorded, allowed */
};

struct corral_exec_event {
	struct corral_event_header hdr;
	struct corral_path path;   /* the executed file, resolved */
	__u32 argv_len;            /* bytes of NUL-separated argv after the path */
	__u32 argv_full_len;       /* bytes the process really has (> argv_len: truncated) */
	__u32 verdict;             /* enum corral_verdict */
	__u32 rule_index;          /* the matching rule in policy generation policy_gen */
	__u32 policy_gen;
	__u32 reserved;
	char data[CORRAL_SLOT_SIZE];
};

struct corral_exit_event {
	struct corral_event_header hdr;
	__u32 exit_code;           /* wait(2) status: code << 8 | signal */
	__u32 reserved;
};

struct corral_open_event {
	struct corral_event_header hdr;
	struct corral_path path;
	__s32 dfd;
	__s32 ret;                 /* fd, or -errno */
	__u32 flags;
	__u32 mode;
	char data[CORRAL_SLOT_SIZE];
};

/* unlink, unlinkat, rmdir (flags = AT_REMOVEDIR) */
struct corral_unlink_event {
	struct corral_event_header hdr;
	struct corral_path path;
	__s32 dfd;
	__s32 ret;
	__u32 flags;
	__u32 reserved;
	char data[CORRAL_SLOT_SIZE];
};

/* rename, renameat, renameat2; and link, linkat (CORRAL_EV_LINK: from is
 * the file, to its new name, flags linkat's); symlink, symlinkat
 * (CORRAL_EV_SYMLINK: from's user string is the target as written) */
struct corral_rename_event {
	struct corral_event_header hdr;
	struct corral_path from;   /* slot 0 */
	struct corral_path to;     /* slot 1 */
	__s32 from_dfd;
	__s32 to_dfd;
	__s32 ret;
	__u32 flags;
	char data[2 * CORRAL_SLOT_SIZE];
};

/* truncate(path) and ftruncate(fd) (fd >= 0, path resolved from it) */
struct corral_truncate_event {
	struct corral_event_header hdr;
	struct corral_path path;
	__s64 length;
	__s32 fd;
	__s32 ret;
	char data[CORRAL_SLOT_SIZE];
};

struct corral_connect_event {
	struct corral_event_header hdr;
	__s32 fd;
	__s32 ret;
	__u16 family;              /* AF_INET, AF_INET6, AF_UNIX, other */
	__u16 port;                /* host byte order */
	__u32 addrlen;
	__u8 addr[16];             /* IPv4 in the first 4 bytes */
	char unix_path[CORRAL_UNIX_PATH_MAX];
};

/*
 * Exec rules, matched in the kernel when a session process has loaded a new
 * image and before it runs a single instruction (sched_process_exec): a
 * denied one gets SIGKILL there. `exec_rules` is keyed by a binary name,
 * looked up twice: the resolved file's basename and the name it was run by
 * (the task's comm, i.e. the basename of the path given to execve, cut to
 * 15 bytes). A rule may pin the resolved path (`exec_paths`: its leaf-first
 * components, zero-padded) and argv tokens (`exec_tokens`): after argv[0],
 * tokens starting with '-' are skipped ("-C"/"-c" with the next token too),
 * and the rule's tokens must follow in order from the first other token,
 * or from one of the skipped options (rules/README.md, "Exec rules").
 */
#define CORRAL_EXEC_NAME_LEN 64
#define CORRAL_EXEC_TOKEN_LEN 32
#define CORRAL_EXEC_PATH_LEN 256
#define CORRAL_EXEC_TOKENS_MAX 4
#define CORRAL_EXEC_RULES_PER_NAME 8
#define CORRAL_ARGV_SCAN_TOKENS 16

enum corral_rule_mode {
	CORRAL_MODE_ENFORCE = 1,
	CORRAL_MODE_SHADOW = 2,
};

struct corral_exec_name {
	char name[CORRAL_EXEC_NAME_LEN];
};

struct corral_exec_rule {
	__u32 rule_index;
	__u8 mode;                 /* enum corral_rule_mode */
	__u8 ntokens;
	__u8 has_path;
	__u8 reserved;
};

struct corral_exec_rules {
	__u32 count;
	__u32 policy_gen;
	struct corral_exec_rule rules[CORRAL_EXEC_RULES_PER_NAME];
};

struct corral_exec_token {
	__u32 rule_index;
	__u32 position;
	char text[CORRAL_EXEC_TOKEN_LEN];
};

struct corral_exec_path {
	__u32 rule_index;
	__u32 reserved;
	char components[CORRAL_EXEC_PATH_LEN];
};

/*
 * Egress, decided by cgroup sock_addr programs on each session's cgroup:
 * `egress4`/`egress6` (LPM tries of allowed CIDRs) hold, per prefix, every
 * port range and protocol allowed to it (userspace folds shorter covering
 * prefixes into longer ones, since the trie returns only the longest).
 * Loopback is allowed only to ports the session itself bound
 * (`session_ports`). Anything else gets EPERM and an egress event.
 */
#define CORRAL_EGRESS_ENTRIES 8

enum corral_proto {
	CORRAL_PROTO_TCP = 1,
	CORRAL_PROTO_UDP = 2,
};

struct corral_egress_key4 {
	__u32 prefixlen;
	__u8 addr[4];
};

struct corral_egress_key6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct corral_egress_entry {
	__u16 port_lo;
	__u16 port_hi;
	__u8 protocols;            /* CORRAL_PROTO_* bits */
	__u8 reserved[3];
	__u32 rule_index;
};

struct corral_egress_allow {
	__u32 count;
	__u32 policy_gen;
	struct corral_egress_entry entries[CORRAL_EGRESS_ENTRIES];
};

struct corral_session_port {
	__u64 session_id;
	__u16 port;                /* host byte order */
	__u8 protocol;             /* CORRAL_PROTO_* */
	__u8 reserved[5];
};

struct corral_egress_event {
	struct corral_event_header hdr;
	__u16 family;
	__u16 port;                /* host byte order */
	__u8 protocol;             /* CORRAL_PROTO_* */
	__u8 verdict;              /* enum corral_verdict */
	__u8 loopback;             /* to 127/8 or ::1 */
	__u8 reserved;
	__u8 addr[16];
};

/* A session task's entry in task-local storage (`session_tasks`): written
 * by userspace (keyed by pidfd) for the agent's first process, inherited on
 * fork. */
struct corral_task {
	__u64 session_id;
	__u32 flags;               /* enum corral_task_flags; not inherited */
	__u32 reserved;
};

enum corral_task_flags {
	/* corral's own session init: a member (its children inherit the
	 * session) whose activity is not the agent's and is not reported */
	CORRAL_TASK_QUIET = 1 << 0,
};

/* Per-CPU counters (map `stats`): every event the programs tried to emit,
 * and every way one was lost. Userspace sums CPUs and audits any rise. */
enum corral_stat {
	CORRAL_STAT_SUBMITTED = 0,
	CORRAL_STAT_RINGBUF_DROPPED = 1,   /* ring buffer full */
	CORRAL_STAT_SESSION_MAP_FULL = 2,  /* a forked child could not be tracked */
	CORRAL_STAT_READ_ERROR = 3,        /* a kernel or user read failed */
	CORRAL_STAT__MAX = 8,
};

#endif /* CORRAL_EVENTS_H */
