/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Paths, resolved in the kernel. bpf_d_path() is not callable from
 * tracepoints, so the dentry chain is walked here (bounded), crossing mount
 * points up to the mount namespace's root. The pointers are chased with
 * plain BTF loads (the verifier turns them into fault-safe loads), not
 * bpf_probe_read_kernel() calls: a dozen fewer helper calls per event, a
 * third of the handler's time. Names go out leaf first, each
 * NUL-terminated; userspace reverses them (agent/path.cc), joins a relative
 * user string to its base and normalises.
 */
#ifndef CORRAL_PATH_BPF_H
#define CORRAL_PATH_BPF_H

#include "emit.bpf.h"

/* A kernel address as a pointer to `type` that BTF loads can follow: for
 * what no BTF path leads to (the mount around a vfsmount: container_of()
 * leaves the type; a file read out of the fd array). */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;
#define kernel_cast(type, p) ((type *)bpf_rdonly_cast((void *)(p), bpf_core_type_id_kernel(type)))

#define CORRAL_COMPONENTS_MASK (CORRAL_PATH_COMPONENTS_MAX - 1)
#define CORRAL_STRING_MASK (CORRAL_STRING_MAX - 1)

struct walk_ctx {
	struct dentry *dentry;
	struct mount *mnt;
	struct dentry *mnt_root;
	__u32 slot_off; /* the slot's offset in the scratch buffer */
	__u32 off;      /* bytes of components written */
	__u16 depth;
	__u16 flags;
};

/* One step up the tree. A bpf_loop() callback: the verifier checks it once,
 * where an unrolled walk with a growing write offset never prunes. */
static long walk_step(__u64 index, void *arg)
{
	struct walk_ctx *w = arg;
	/* locals: BPF_CORE_READ must start from a kernel type, not walk_ctx */
	struct dentry *dentry = w->dentry;
	struct mount *mnt = w->mnt;

	if (dentry == w->mnt_root) {
		struct mount *parent = mnt->mnt_parent;
		if (parent == mnt || !parent)
			return 1; /* the namespace's root */
		w->dentry = mnt->mnt_mountpoint;
		w->mnt = parent;
		w->mnt_root = parent->mnt.mnt_root;
		return 0;
	}
	struct dentry *up = dentry->d_parent;
	if (!dentry || dentry == up) {
		w->flags |= CORRAL_PATH_DETACHED;
		return 1;
	}
	char *buf = (char *)get_scratch();
	__u32 off = w->off;
	__u32 slot_off = w->slot_off;
	if (!buf || slot_off > sizeof(struct corral_scratch) - CORRAL_SLOT_SIZE)
		return 1;
	if (off >= CORRAL_PATH_COMPONENTS_MAX - CORRAL_NAME_MAX) {
		w->flags |= CORRAL_PATH_TRUNCATED;
		return 1;
	}
	const unsigned char *name = dentry->d_name.name;
	long n = bpf_probe_read_kernel_str(buf + slot_off + (off & CORRAL_COMPONENTS_MASK),
					   CORRAL_NAME_MAX, name);
	if (n <= 0) {
		count_stat(CORRAL_STAT_READ_ERROR);
		w->flags |= CORRAL_PATH_TRUNCATED;
		return 1;
	}
	w->off = off + n;
	w->depth++;
	w->dentry = up;
	return 0;
}

/* Walks `dentry` on `vfsmnt` up to the root into the slot at `slot_off`. */
static __always_inline void walk_dentries(__u32 slot_off, struct corral_path *p,
					  struct dentry *dentry, struct vfsmount *vfsmnt)
{
	struct walk_ctx w = {
		.dentry = dentry,
		.mnt = kernel_cast(struct mount, container_of(vfsmnt, struct mount, mnt)),
		.mnt_root = vfsmnt->mnt_root,
		.slot_off = slot_off,
	};
	long loops = bpf_loop(CORRAL_PATH_DEPTH_MAX, walk_step, &w, 0);
	if (loops >= CORRAL_PATH_DEPTH_MAX)
		w.flags |= CORRAL_PATH_TRUNCATED;
	p->components_len = w.off;
	p->depth = w.depth;
	p->flags |= w.flags;
}

static __always_inline struct file *task_fd(struct task_struct *task, int fd)
{
	struct file *file = NULL;
	if (fd < 0)
		return NULL;
	struct fdtable *fdt = task->files->fdt;
	if (!fdt || (unsigned int)fd >= fdt->max_fds)
		return NULL;
	/* an array indexed by a variable: no BTF load for that */
	struct file **fds = fdt->fd;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file ? kernel_cast(struct file, file) : NULL;
}

static __always_inline void walk_file(__u32 slot_off, struct corral_path *p, struct file *file)
{
	walk_dentries(slot_off, p, file->f_path.dentry, file->f_path.mnt);
}

/* Walks the file at kernel address `file` into the slot at `slot_off`
 * (file.bpf.c). Other objects call this rather than walk_file(): the
 * walk's kfunc may appear in one object only (libbpf 1.1's linker fails to
 * merge a kfunc extern declared in two). */
int fill_file_path(__u32 slot_off, struct corral_path *p, __u64 file);

/* Bytes of a slot in use: what must be sent when it is the last one. */
static __always_inline __u32 slot_used(const struct corral_path *p)
{
	return p->components_len + p->string_len;
}

#endif /* CORRAL_PATH_BPF_H */
