// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * File activity of session processes: opens (with flags and result) and the
 * ways test output gets hidden (unlink, rmdir, rename, truncate), and links,
 * hard and symbolic (a new name, like a rename's). Events are
 * built at syscall exit, when the result is known and an opened file can be
 * resolved from its fd.
 */
#include "session.bpf.h"
#include "path.bpf.h"
#include "syscall.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AT_FDCWD -100
#define AT_REMOVEDIR 0x200
#define AT_EMPTY_PATH 0x1000
#define O_CREAT_WRONLY_TRUNC (01 | 0100 | 01000)

/* Copies the user string after the components. */
static __always_inline void read_user_string(struct corral_scratch *s, __u32 slot_off,
					    struct corral_path *p, const char *ustr)
{
	__u64 off = slot_off + (p->components_len & CORRAL_COMPONENTS_MASK);
	if (off > sizeof(*s) - CORRAL_STRING_MAX)
		return;
	/* the checked register itself, not a copy clang reloads unchecked */
	barrier_var(off);
	long n = bpf_probe_read_user_str((char *)s + off, CORRAL_STRING_MAX, ustr);
	if (n < 0) {
		count_stat(CORRAL_STAT_READ_ERROR);
		n = 0;
	}
	p->string_len = n;
}

/* Walks the file open at `fd` of `task`, flagged `flag`; BAD_FD when none. */
static __always_inline void walk_fd(__u32 slot_off, struct corral_path *p, struct task_struct *task,
				    int fd, __u16 flag)
{
	struct file *file = task_fd(task, fd);
	if (file) {
		p->flags |= flag;
		walk_file(slot_off, p, file);
	} else {
		p->flags |= CORRAL_PATH_BAD_FD;
	}
}

/*
 * Fills the slot at `slot_off` of the scratch event for a path argument `ustr` relative to `dfd` (AT_FDCWD for
 * the cwd). When `resolved_fd` >= 0 the path comes from that open file
 * instead, which sees through symlinks, "..", and /proc/PID/root aliases.
 * A global function: the verifier checks the walk once for every call.
 */
__noinline int fill_path(__u32 slot_off, struct corral_path *p, int dfd, __u64 ustr_addr,
			 int resolved_fd)
{
	struct task_struct *task = bpf_get_current_task_btf();
	const char *ustr = (const char *)ustr_addr;
	struct corral_scratch *s = get_scratch();

	if (!s || !p)
		return 0;

	p->flags = 0;
	p->components_len = 0;
	p->string_len = 0;
	p->depth = 0;

	if (resolved_fd >= 0) {
		walk_fd(slot_off, p, task, resolved_fd, CORRAL_PATH_RESOLVED);
	} else if (ustr) {
		char first = 0;
		bpf_probe_read_user(&first, 1, ustr);
		if (first != '/') {
			if (dfd == -100 /* AT_FDCWD */) {
				p->flags |= CORRAL_PATH_BASE_CWD;
				walk_dentries(slot_off, p, task->fs->pwd.dentry, task->fs->pwd.mnt);
			} else {
				walk_fd(slot_off, p, task, dfd, CORRAL_PATH_BASE_DIRFD);
			}
		}
	}
	if (ustr)
		read_user_string(s, slot_off, p, ustr);
	return 0;
}

__noinline int fill_file_path(__u32 slot_off, struct corral_path *p, __u64 file)
{
	if (p && file)
		walk_file(slot_off, p, kernel_cast(struct file, file));
	return 0;
}

/* ---- open, openat, openat2, creat ---- */

static __always_inline void open_exit(struct syscall_args *a, long ret, int dfd,
				      const char *name, __u32 flags, __u32 mode)
{
	struct corral_scratch *s = get_scratch();
	if (!s)
		return;
	struct corral_open_event *e = &s->open;
	fill_header(&e->hdr, CORRAL_EV_OPEN, a->session_id);
	e->dfd = dfd;
	e->ret = ret;
	e->flags = flags;
	e->mode = mode;
	fill_path(offsetof(struct corral_open_event, data), &e->path, dfd, (__u64)name, ret >= 0 ? (int)ret : -1);
	emit(e, offsetof(struct corral_open_event, data) + slot_used(&e->path));
}

static __always_inline void open_syscall(struct syscall_args *a, long ret)
{
	int dfd = a->args[0];
	const char *name = (const char *)a->args[1];
	__u32 flags = a->args[2], mode = a->args[3];
	if (a->nr == CORRAL_NR_OPEN || a->nr == CORRAL_NR_CREAT) {
		dfd = AT_FDCWD;
		name = (const char *)a->args[0];
		flags = a->nr == CORRAL_NR_CREAT ? O_CREAT_WRONLY_TRUNC : a->args[1];
		mode = a->nr == CORRAL_NR_CREAT ? a->args[1] : a->args[2];
	} else if (a->nr == CORRAL_NR_OPENAT2) {
		struct abi_open_how how = {};
		if (bpf_probe_read_user(&how, sizeof(how), (void *)a->args[2]))
			count_stat(CORRAL_STAT_READ_ERROR);
		flags = how.flags;
		mode = how.mode;
	}
	open_exit(a, ret, dfd, name, flags, mode);
}

/* ---- unlink, unlinkat, rmdir ---- */

static __always_inline void unlink_exit(struct syscall_args *a, long ret, int dfd,
					const char *name, __u32 flags)
{
	struct corral_scratch *s = get_scratch();
	if (!s)
		return;
	struct corral_unlink_event *e = &s->unlink;
	fill_header(&e->hdr, CORRAL_EV_UNLINK, a->session_id);
	e->dfd = dfd;
	e->ret = ret;
	e->flags = flags;
	e->reserved = 0;
	fill_path(offsetof(struct corral_unlink_event, data), &e->path, dfd, (__u64)name, -1);
	emit(e, offsetof(struct corral_unlink_event, data) + slot_used(&e->path));
}

static __always_inline void unlink_syscall(struct syscall_args *a, long ret)
{
	bool at = a->nr == CORRAL_NR_UNLINKAT;
	unlink_exit(a, ret, at ? (int)a->args[0] : AT_FDCWD, (const char *)a->args[at ? 1 : 0],
		    at ? a->args[2] : a->nr == CORRAL_NR_RMDIR ? AT_REMOVEDIR : 0);
}

/* ---- rename, renameat, renameat2; link, linkat ---- */

/* `from_fd` >= 0: the file is that fd's (linkat's AT_EMPTY_PATH); a
 * symlink's `from` is text, its user string alone. */
static __always_inline void rename_exit(struct syscall_args *a, long ret, __u32 type, int from_dfd,
					const char *from, int from_fd, int to_dfd, const char *to,
					__u32 flags)
{
	struct corral_scratch *s = get_scratch();
	if (!s)
		return;
	struct corral_rename_event *e = &s->rename;
	fill_header(&e->hdr, type, a->session_id);
	e->from_dfd = from_dfd;
	e->to_dfd = to_dfd;
	e->ret = ret;
	e->flags = flags;
	if (type == CORRAL_EV_SYMLINK) {
		e->from.flags = 0;
		e->from.components_len = 0;
		e->from.depth = 0;
		read_user_string(s, offsetof(struct corral_rename_event, data), &e->from, from);
	} else {
		fill_path(offsetof(struct corral_rename_event, data), &e->from, from_dfd, (__u64)from,
			  from_fd);
	}
	fill_path(offsetof(struct corral_rename_event, data) + CORRAL_SLOT_SIZE, &e->to, to_dfd, (__u64)to, -1);
	emit(e, offsetof(struct corral_rename_event, data) + CORRAL_SLOT_SIZE + slot_used(&e->to));
}

static __always_inline void rename_syscall(struct syscall_args *a, long ret)
{
	/* renameat and renameat2 take dirfds; renameat2 flags too */
	bool at = a->nr != CORRAL_NR_RENAME;
	rename_exit(a, ret, CORRAL_EV_RENAME, at ? (int)a->args[0] : AT_FDCWD,
		    (const char *)a->args[at ? 1 : 0], -1, at ? (int)a->args[2] : AT_FDCWD,
		    (const char *)a->args[at ? 3 : 1], a->nr == CORRAL_NR_RENAMEAT2 ? a->args[4] : 0);
}

static __always_inline void link_syscall(struct syscall_args *a, long ret)
{
	bool at = a->nr == CORRAL_NR_LINKAT;
	__u32 flags = at ? a->args[4] : 0;
	int from_dfd = at ? (int)a->args[0] : AT_FDCWD;
	const char *from = (const char *)a->args[at ? 1 : 0];
	/* AT_EMPTY_PATH names the fd's file only when the path is empty */
	char first = 1;
	if ((flags & AT_EMPTY_PATH) && bpf_probe_read_user(&first, 1, from) != 0)
		first = 1;
	rename_exit(a, ret, CORRAL_EV_LINK, from_dfd, from, first ? -1 : from_dfd,
		    at ? (int)a->args[2] : AT_FDCWD, (const char *)a->args[at ? 3 : 1], flags);
}

/* The target is kept as written, not walked; the link's own name is
 * resolved like any new name. */
static __always_inline void symlink_syscall(struct syscall_args *a, long ret)
{
	bool at = a->nr == CORRAL_NR_SYMLINKAT;
	rename_exit(a, ret, CORRAL_EV_SYMLINK, AT_FDCWD, (const char *)a->args[0], -1,
		    at ? (int)a->args[1] : AT_FDCWD, (const char *)a->args[at ? 2 : 1], 0);
}

/* ---- truncate, ftruncate ---- */

static __always_inline void truncate_exit(struct syscall_args *a, long ret, const char *name,
					  int fd, __s64 length)
{
	struct corral_scratch *s = get_scratch();
	if (!s)
		return;
	struct corral_truncate_event *e = &s->truncate;
	fill_header(&e->hdr, CORRAL_EV_TRUNCATE, a->session_id);
	e->length = length;
	e->fd = fd;
	e->ret = ret;
	fill_path(offsetof(struct corral_truncate_event, data), &e->path, AT_FDCWD, (__u64)name, fd);
	emit(e, offsetof(struct corral_truncate_event, data) + slot_used(&e->path));
}

static __always_inline void truncate_syscall(struct syscall_args *a, long ret)
{
	bool by_fd = a->nr == CORRAL_NR_FTRUNCATE;
	truncate_exit(a, ret, by_fd ? 0 : (const char *)a->args[0], by_fd ? (int)a->args[0] : -1,
		      a->args[1]);
}

/* The one exit handler of every file syscall above: one program for the
 * verifier to check, the path walk (fill_path) once for all. */
ON_SYSCALL_EXIT(file)
{
	switch (a->nr) {
	case CORRAL_NR_OPEN:
	case CORRAL_NR_OPENAT:
	case CORRAL_NR_OPENAT2:
	case CORRAL_NR_CREAT:
		open_syscall(a, ret);
		break;
	case CORRAL_NR_UNLINK:
	case CORRAL_NR_UNLINKAT:
	case CORRAL_NR_RMDIR:
		unlink_syscall(a, ret);
		break;
	case CORRAL_NR_RENAME:
	case CORRAL_NR_RENAMEAT:
	case CORRAL_NR_RENAMEAT2:
		rename_syscall(a, ret);
		break;
	case CORRAL_NR_LINK:
	case CORRAL_NR_LINKAT:
		link_syscall(a, ret);
		break;
	case CORRAL_NR_SYMLINK:
	case CORRAL_NR_SYMLINKAT:
		symlink_syscall(a, ret);
		break;
	case CORRAL_NR_TRUNCATE:
	case CORRAL_NR_FTRUNCATE:
		truncate_syscall(a, ret);
		break;
	}
}
