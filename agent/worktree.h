// The git-worktree workflow: an agent works on its own branch in its own
// worktree, never in the user's checkout; the user reviews what it did and
// merges it or throws it away.
//
//   corral run --worktree NAME [--base REF] -- CMD   prepare_worktree, then CMD there
//   corral worktrees                                 worktrees_main
//   corral review NAME                               review_main
//   corral merge NAME                                merge_main
//   corral discard NAME                              discard_main
//
// Every git command is the real git binary, exec'd with an argv (no shell),
// as the user in `as` (corral itself may be root under sudo): what it
// creates — the worktree, the branch, objects, the metadata — belongs to
// that user, and git's safe.directory check sees the repository's owner.
//
// Metadata lives in the repository, next to what git keeps for itself:
// `<git-common-dir>/corral-worktrees`, a git-config file (written with
// `git config --file`) with one section per worktree:
//   [worktree "NAME"] path, base, base-commit, origin-branch, repo, created
// so every checkout of the repository (and every command, from any
// directory in it) sees the same list, and it is gone with the repository.
#pragma once

#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "mnt.h"
#include "process.h"
#include "unique_fd.h"

namespace corral {

struct Worktree {
  std::string name;           // NAME
  std::string branch;         // corral/NAME
  std::string path;           // the worktree's directory (absolute)
  std::string base_ref;       // what the branch was started from, as given (or the branch at HEAD)
  std::string base_commit;    // ... resolved when it was created
  std::string origin_branch;  // the user's branch at creation, the merge target ("" if detached)
  std::string repo;           // the user's checkout (top level) it was created from
  // CLOCK_REALTIME_COARSE, the clock of file timestamps: review compares
  // them with it.
  std::chrono::system_clock::time_point created;
  bool resumed = false;  // set by prepare_worktree: it existed already
};

// Where worktrees go by default: $XDG_DATA_HOME/corral/worktrees when the
// caller is `owner` itself, else <owner's home>/.local/share/corral/worktrees
// (under sudo the environment is root's). Each repository gets a folder
// <name>-<hash of its git dir> there, so two repositories called `app` do
// not collide, and a worktree's path is <that>/<NAME>.
//
// Why there and not next to or inside the repository: the issue says the
// user's working tree is never touched, and .git/ is inside it (tools that
// walk the checkout — indexers, build globs, `git clean -x`, a careless
// `rm -r` — would meet the agent's files); the repository's parent may not
// be writable by the user (or shared), and one folder per user keeps every
// agent worktree in one place the user owns.
std::string default_worktrees_root(const Credentials& owner);

// Creates the worktree NAME of the repository containing `repo_dir`: a new
// branch corral/NAME from `base` ("" = HEAD) checked out at
// <worktrees_root>/<repo folder>/NAME ("" = default_worktrees_root(owner)).
// When NAME exists it is resumed as it is (nothing reset); `base` must then
// be "" or the one it was created from. A worktree whose directory was
// deleted is checked out again from its branch. Throws std::runtime_error
// with a one-line reason (bad NAME, not a repository, unknown base, ...);
// a failed creation leaves nothing behind.
Worktree prepare_worktree(const std::string& repo_dir, const std::string& name,
                          const std::string& base, const Credentials& owner,
                          const std::string& worktrees_root = "");

// Where the agent starts: the place of `cwd` (in the checkout) in the
// worktree, so `corral run` from repo/src starts it in WORKTREE/src; the
// worktree's top when that folder is not there.
std::string worktree_cwd(const Worktree& wt, const std::string& cwd);

// What a session in `wt` needs besides the worktree for git add/commit to
// work there: its admin dir (index, HEAD) writable, and overlays on the
// shared object store and the corral/* refs and reflogs, whose changes land
// in the admin dir, not in the repository: a session can neither rewrite an
// object nor move another session's branch. The rest of the repository
// (other branches, hooks, config) stays read-only.
struct WorktreeGitMounts {
  std::vector<std::string> writable;
  std::vector<OverlayMount> overlays;
  // Held until the session's changes are taken in: one session per
  // worktree at a time (a second would take in and empty the first's).
  UniqueFd lock;
};
WorktreeGitMounts worktree_git_mounts(const Worktree& wt, const Credentials& owner);

// After a session in `wt`: takes in what it wrote through the overlays —
// new objects (never one that exists), then its own branch corral/NAME
// (through git update-ref, which checks the commit) — and drops the rest
// (a change to another ref, a rewritten or deleted object), with a warning
// naming it. Returns what was dropped.
std::vector<std::string> take_in_worktree_session(const Worktree& wt, const Credentials& owner);

// Throws std::invalid_argument naming the problem: NAME must be 1..64 of
// [A-Za-z0-9._-], not start with '-' or '.', not end with '.' or ".lock",
// and have no "..": a safe single ref component and directory name.
void validate_worktree_name(const std::string& name);

// The worktrees of the repository containing `repo_dir`, oldest first.
std::vector<Worktree> list_worktrees(const std::string& repo_dir, const Credentials& as);

// One of them by name; throws std::runtime_error when there is none.
Worktree find_worktree(const std::string& repo_dir, const std::string& name, const Credentials& as);

struct WorktreeStatus {
  uint64_t commits = 0;        // on corral/NAME since its base commit
  uint64_t changed_files = 0;  // uncommitted in the worktree, untracked included
  bool missing = false;        // the directory is gone (the branch may remain)
  bool branch_missing = false;
};
WorktreeStatus worktree_status(const Worktree& wt, const Credentials& as);

// "2 commits, dirty", "no changes", "1 commit, missing", "branch gone".
std::string describe(const WorktreeStatus& s);
// "45s", "12m", "3h", "5d".
std::string format_age(std::chrono::system_clock::time_point created,
                       std::chrono::system_clock::time_point now);

// What `corral review` flags, one line each: "RISK <kind>: <path>[ <detail>]".
struct Risk {
  std::string kind;  // protected path, deleted test, test report, new executable, ...
  std::string path;
  std::string detail;
};

struct ReviewOptions {
  std::string repo_dir;
  Credentials as;
  std::string name;
  // Path prefixes (relative to the repository root; a trailing '/' is a
  // folder, else the path itself or anything under it). Entries under .git/
  // are matched against the repository's git dir (hooks are not tracked):
  // files there changed since the worktree was created. .git/config is one
  // because core.hooksPath, core.fsmonitor and friends run commands too.
  std::vector<std::string> protected_paths = {
      ".git/hooks", ".git/config", ".github/workflows",      ".gitlab-ci.yml",
      ".circleci/", "Jenkinsfile", ".pre-commit-config.yaml"};
  uint64_t large_bytes = 1 << 20;  // binary files from this size are flagged
  bool color = false;              // git's --color=always, and a red RISK
  // "" prints to `out`; else the text goes to `sh -c PAGER` (as `as`), which
  // writes to our stdout: set it when that is a terminal.
  std::string pager;
};

struct Review {
  Worktree worktree;
  std::string against;       // the commit the diff starts from
  uint64_t commits = 0;      // on corral/NAME since `against`
  bool uncommitted = false;  // the worktree has changes not committed (untracked included)
  std::vector<Risk> risks;
  std::string diff;  // `git diff --stat --summary --patch`
};

// The diff a merge would bring in, plus what is not committed yet: from the
// merge base of corral/NAME and the origin branch (the base commit when
// that branch is gone) to a snapshot of the worktree's files — the tree
// `git add -A` would make, built in a private copy of its index, so the
// agent's index is not touched and untracked files are in it. Without the
// directory, the branch.
Review review_worktree(const ReviewOptions& options);

// The review printed: a heading, the risks, the stat and the diff.
std::string format_review(const Review& review, bool color);

struct WorktreesOptions {
  std::string repo_dir;
  Credentials as;
};

struct MergeOptions {
  std::string repo_dir;
  Credentials as;
  std::string name;
};

struct DiscardOptions {
  std::string repo_dir;
  Credentials as;
  std::string name;
};

// `git merge --no-ff -m "corral: merge NAME" corral/NAME` in the checkout
// it was created from (a merge commit keeps the agent's work one unit in
// `git log --first-parent`, revertible with `git revert -m 1`). Refuses,
// with the reason, when that checkout has uncommitted changes to tracked
// files or is on another branch, when the worktree has uncommitted
// changes, when there is nothing to merge, or when it conflicts — then the
// merge is aborted and the checkout is as it was. Returns the merge commit.
std::string merge_worktree(const MergeOptions& options);

// Removes the worktree's directory (`git worktree remove --force`), its
// branch (`git branch -D`) and its metadata. Returns the branch's last
// commit (still reachable by hash until git gc), "" when it had none left.
std::string discard_worktree(const DiscardOptions& options);

// The commands: print to `out`, errors to `err` ("corral: error: ..."),
// return the exit code (0, or 1 when refused or failed).
int worktrees_main(const WorktreesOptions& options, std::ostream& out, std::ostream& err);
int review_main(const ReviewOptions& options, std::ostream& out, std::ostream& err);
int merge_main(const MergeOptions& options, std::ostream& out, std::ostream& err);
int discard_main(const DiscardOptions& options, std::ostream& out, std::ostream& err);

}  // namespace corral
