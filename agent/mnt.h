// The session's mount namespace: the host read-only, the project directory
// and the policy's writable paths read-write, a private /tmp and /dev/shm,
// credential directories and files covered by empty read-only mounts (a
// tmpfs, /dev/null), protected paths
// read-only inside the writable ones, and a /proc of the session's own PID
// namespace.
#pragma once

#include <sys/stat.h>

#include <set>
#include <string>
#include <vector>

#include "policy.h"

namespace corral {

struct ExistingFiles;  // file_guard.h

// A directory the session sees through an overlay: reads from the real
// one, every change into `upper` (`work` is the overlay's scratch, on the
// same filesystem). A worktree session's view of the shared git refs and
// objects: what it writes there lands beside them, for corral to take in
// what belongs to the session afterwards (worktree.cc).
struct OverlayMount {
  std::string target, upper, work;
  bool operator==(const OverlayMount&) const = default;
};

struct MountPlan {
  std::vector<std::string> writable;  // the project directory first
  std::vector<std::string> hidden;
  std::vector<std::string> readonly;  // protected paths that exist
  std::vector<OverlayMount> overlays;
};

// Whether a file time `stamp` read at `tick` (CLOCK_REALTIME_COARSE, read
// before it) could be given again to a later change: then equal times
// prove nothing.
bool stamped_in_tick(const timespec& stamp, const timespec& tick);

// The state of paths — what each is (device, inode, type, last changes)
// or that it is missing — as it was when added, to tell later whether any
// changed: what a plan was made from, to know whether it still holds.
class PathStates {
 public:
  // Its state now: add a path before reading what the plan takes from it
  // (a directory before its entries), so that no change after goes unseen.
  // A state that cannot prove that (changed in the current clock tick, or
  // unreadable but for missing) makes unchanged() false. A missing path is
  // noted as the deepest directory above it that exists.
  void add(const std::string& path);
  bool unchanged() const;
  size_t size() const { return paths_.size(); }

 private:
  struct State {
    int error = 0;  // stat's: ENOENT or ENOTDIR is missing, anything else unknown
    dev_t dev = 0;
    ino_t ino = 0;
    mode_t mode = 0;
    timespec mtime{};
    timespec ctime{};
    // Changed within the filesystem clock's current tick: a change after
    // the note, in the same tick, would leave the same times (git's "racy"
    // entries), so such a state proves nothing later.
    bool racy = false;
    bool operator==(const State&) const;
  };
  static State of(const std::string& path);
  std::set<std::string> noted_;
  std::vector<std::string> paths_;
  std::vector<State> states_;
};

// The plan for a session of `policy` run by a user with `home` in `cwd`,
// `extra` writable paths besides (a worktree's git metadata). Throws
// std::invalid_argument when `cwd` cannot be the project directory.
// `existing`, when given, receives the scan of the project's and home's
// secret and protected files the plan was made from (FileGuard reuses it);
// `looked_at`, every path the plan was made from, as it was before.
MountPlan session_mounts(const rules::Policy& policy, const std::string& home,
                         const std::string& cwd, const std::vector<std::string>& extra = {},
                         struct ExistingFiles* existing = nullptr,
                         PathStates* looked_at = nullptr);

// The same plan as NULL-terminated arrays, built before clone so that the
// session init, which may only make raw system calls, reads it as is.
class MountPlanArgs {
 public:
  explicit MountPlanArgs(const MountPlan& plan);
  char* const* writable() const { return writable_.data(); }
  char* const* hidden() const { return hidden_.data(); }
  char* const* readonly() const { return readonly_.data(); }
  // targets and their "lowerdir=...,upperdir=...,workdir=..." options
  char* const* overlay_targets() const { return overlay_targets_.data(); }
  char* const* overlay_options() const { return overlay_options_.data(); }

 private:
  MountPlan plan_;
  std::vector<std::string> options_;
  std::vector<char*> writable_, hidden_, readonly_, overlay_targets_, overlay_options_;
};

// Which step of the setup failed, for the supervisor's message.
struct MountFailure {
  int error = 0;  // errno; 0 when everything is in place
  int step = 0;
  int index = -1;  // the path's index in its list, when the step has one
  int notify_fd = -1;  // the init's seccomp listener (process.cc), once ready
};
// "failed to <what> <path>" for a failure of setup_session_mounts(plan).
std::string describe_mount_failure(const MountPlan& plan, const MountFailure& failure);

// Run by the session init in its new mount namespace, before the agent
// exists: raw system calls only (no allocation, no locks). Leaves the init's
// cwd at `args.writable()[0]` as the new mounts show it.
MountFailure setup_session_mounts(const MountPlanArgs& args);

}  // namespace corral
