/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * In-kernel exec rules (see struct corral_exec_rules in events.h), checked
 * by proc.bpf.c for session processes only. Every comparison is a hash-map
 * lookup keyed by the text itself, so a decision costs the same with ten
 * rules or ten thousand, and no byte loop burdens the verifier.
 */
#ifndef CORRAL_EXEC_BPF_H
#define CORRAL_EXEC_BPF_H

#include "emit.bpf.h"

#define CORRAL_MAX_EXEC_NAMES 16384
#define CORRAL_MAX_EXEC_TOKENS 65536

/* The rule maps are written only when a policy loads: allocated entry by
 * entry then, not all up front at every start (milliseconds of a launch). */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORRAL_MAX_EXEC_NAMES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct corral_exec_name);
	__type(value, struct corral_exec_rules);
} exec_rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORRAL_MAX_EXEC_TOKENS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct corral_exec_token);
	__type(value, __u8);
} exec_tokens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, CORRAL_MAX_EXEC_NAMES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct corral_exec_path);
	__type(value, __u8);
} exec_paths SEC(".maps");

/* argv after argv[0], split once per exec that has candidate rules */
struct argv_tokens {
	__u32 count;
	__u8 option[CORRAL_ARGV_SCAN_TOKENS];      /* starts with '-' */
	__u8 takes_value[CORRAL_ARGV_SCAN_TOKENS]; /* exactly "-C" or "-c" */
	char text[CORRAL_ARGV_SCAN_TOKENS][CORRAL_EXEC_TOKEN_LEN];
	char measure[CORRAL_NAME_MAX];             /* a whole token, for its length */
	struct corral_exec_token key;
	struct corral_exec_path path;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct argv_tokens);
} argv_scratch SEC(".maps");

/*
 * The matchers below are global functions: the verifier checks each once,
 * on its own, instead of once per path through the callers' loops.
 */

/* Global functions take no pointers into other memory: byte offsets in the
 * scratch buffer stand in for them. */
#define SCRATCH_OFF_MASK 0x3fff
_Static_assert(sizeof(struct corral_scratch) > SCRATCH_OFF_MASK, "masked offsets stay inside");

/* One token of the argv scan below: a bpf_loop() callback, so the verifier
 * checks its body once instead of once per token with a new offset. */
struct split_ctx {
	__u32 argv; /* scratch offset of argv */
	__u32 len;
	__u32 off;
	__u32 count;
};

static long split_step(__u64 i, void *arg)
{
	struct split_ctx *c = arg;
	__u32 zero = 0;
	struct argv_tokens *t = bpf_map_lookup_elem(&argv_scratch, &zero);
	char *base = (char *)get_scratch();
	__u32 off = c->off;
	if (!t || !base || off >= c->len || off >= CORRAL_STRING_MAX)
		return 1;
	long n = bpf_probe_read_kernel_str(t->measure, sizeof(t->measure),
					   base + ((c->argv + (off & (CORRAL_STRING_MAX - 1))) &
						   SCRATCH_OFF_MASK));
	if (n <= 0 || n >= (long)sizeof(t->measure))
		return 1;
	c->off = off + n;
	if (i == 0)
		return 0; /* argv[0]: the name is matched by other means */
	__u32 k = (i - 1) & (CORRAL_ARGV_SCAN_TOKENS - 1);
	__builtin_memset(t->text[k], 0, CORRAL_EXEC_TOKEN_LEN);
	bpf_probe_read_kernel_str(t->text[k], CORRAL_EXEC_TOKEN_LEN, t->measure);
	t->option[k] = t->measure[0] == '-';
	t->takes_value[k] = n == 3 && t->measure[0] == '-' &&
			    (t->measure[1] == 'C' || t->measure[1] == 'c');
	c->count = i;
	return 0;
}

/* Splits the NUL-separated argv at scratch offset `argv` (`len` bytes) into
 * up to CORRAL_ARGV_SCAN_TOKENS tokens after argv[0]. A token longer than
 * CORRAL_NAME_MAX ends the scan: nothing after it can match. */
__noinline int split_argv(struct argv_tokens *t, __u32 argv, __u32 len)
{
	struct split_ctx c = { .argv = argv, .len = len };
	if (!t)
		return 0;
	bpf_loop(CORRAL_ARGV_SCAN_TOKENS + 1, split_step, &c, 0);
	t->count = c.count;
	return t->count;
}

/* Do the rule's tokens follow in argv from token `start` on? Global too:
 * inlined in the scan below, its lookups multiplied the verifier's work by
 * the scan's length (147k instructions, 150 ms of every load). */
__noinline int tokens_at(struct argv_tokens *t, const struct corral_exec_rule *r, __u32 start)
{
	if (!t || !r)
		return 0;
	for (int k = 0; k < CORRAL_EXEC_TOKENS_MAX; k++) {
		if (k >= r->ntokens)
			return true;
		__u32 at = start + k;
		if (at >= t->count)
			return false;
		t->key.rule_index = r->rule_index;
		t->key.position = k;
		__builtin_memcpy(t->key.text, t->text[at & (CORRAL_ARGV_SCAN_TOKENS - 1)],
				 CORRAL_EXEC_TOKEN_LEN);
		if (!bpf_map_lookup_elem(&exec_tokens, &t->key))
			return false;
	}
	return true;
}

/* The rule's tokens begin at the first token that is not an option (the
 * value of -C / -c skipped too), or at one of the options before it, so
 * that a rule like `nc -e` matches `nc -v -e ...`. One candidate start per
 * bpf_loop() step. */
struct match_ctx {
	struct argv_tokens *t;
	const struct corral_exec_rule *r;
	__u32 start;
	int matched;
};

static long match_step(__u64 index, void *arg)
{
	struct match_ctx *c = arg;
	struct argv_tokens *t = c->t;
	__u32 i = c->start;
	if (!t || i >= t->count)
		return 1;
	if (tokens_at(t, c->r, i)) {
		c->matched = 1;
		return 1;
	}
	__u32 idx = i & (CORRAL_ARGV_SCAN_TOKENS - 1);
	if (!t->option[idx])
		return 1;
	c->start = i + (t->takes_value[idx] ? 2 : 1);
	return 0;
}

static __always_inline bool tokens_match(struct argv_tokens *t, const struct corral_exec_rule *r)
{
	if (!r->ntokens)
		return true;
	struct match_ctx c = { .t = t, .r = r };
	bpf_loop(CORRAL_ARGV_SCAN_TOKENS, match_step, &c, 0);
	return c.matched;
}

/* Is the resolved path (leaf-first components at scratch offset `comp`,
 * `len` bytes) the one rule `r` pins? */
static __always_inline bool path_matches(struct argv_tokens *t, __u32 comp, __u32 len,
					 const struct corral_exec_rule *r)
{
	char *base = (char *)get_scratch();
	if (!base || len >= CORRAL_EXEC_PATH_LEN)
		return false;
	__builtin_memset(&t->path, 0, sizeof(t->path));
	t->path.rule_index = r->rule_index;
	/* in asm, or clang drops the mask the verifier needs */
	__u64 n = len;
	asm volatile("%[n] &= %[mask]" : [n] "+r"(n) : [mask] "i"(CORRAL_EXEC_PATH_LEN - 1));
	bpf_probe_read_kernel(t->path.components, n, base + (comp & SCRATCH_OFF_MASK));
	return bpf_map_lookup_elem(&exec_paths, &t->path) != NULL;
}

/* Does rule `r` match the exec whose argv `t` holds and whose resolved
 * path is at scratch offset `comp`? */
__noinline int rule_matches(struct argv_tokens *t, const struct corral_exec_rule *r, __u32 comp,
			    __u32 comp_len)
{
	if (!t || !r)
		return 0;
	if (r->has_path && !path_matches(t, comp, comp_len, r))
		return 0;
	return tokens_match(t, r);
}

#endif /* CORRAL_EXEC_BPF_H */
