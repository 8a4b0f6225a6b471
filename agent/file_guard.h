// Secret files and protected paths, enforced for one session: the policy's
// path rules decide each fanotify permission event of the session's mounts.
// A secret is matched by its canonical path and by the identity (device,
// inode) of every matching file that existed when the policy loaded, so a
// hard link elsewhere is caught too.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "audit.pb.h"
#include "fanotify.h"
#include "glob.h"
#include "matcher.h"
#include "process.h"

namespace corral {

class PathStates;  // mnt.h

// The existing files the (not off) secrets and protected rules name, found
// in one walk of each tree: (path, index of the rule in its section).
struct ExistingFiles {
  std::vector<std::pair<std::string, size_t>> secrets, protect;
};
// `looked_at`, when given, receives every path the scan read (mnt.h).
ExistingFiles scan_existing(const rules::Policy& policy, const std::string& home,
                            const std::string& cwd, PathStates* looked_at = nullptr);

// A policy's secret and protected path matchers, compiled for one home.
// Compiling the globs (RE2 sets) is most of a session's file-rule setup, so
// a supervisor keeps them (PathMatcherCache) for its next sessions.
struct PathMatchers {
  std::shared_ptr<const rules::Policy> policy;  // owns what the matchers point into
  uint32_t generation;
  rules::PathMatcher secrets;
  rules::PathMatcher protect;
  // The folders of the protected globs ("**/.github" and
  // "**/.github/workflows" of "**/.github/workflows/**"), by rule.
  rules::PathMatcher protect_folders;

  PathMatchers(const rules::Policy& p, uint32_t generation, const std::string& home)
      : policy(std::make_shared<const rules::Policy>(p)),
        generation(generation),
        secrets(policy->secrets, home),
        protect(policy->protected_paths, home),
        protect_folders(folder_rules(policy->protected_paths), home) {}

  static std::vector<rules::PathRule> folder_rules(const std::vector<rules::PathRule>& rules);
};

// One supervisor's matchers, by home, for its policy in force.
class PathMatcherCache {
 public:
  // Compiled on first use; a new generation (a reload) drops the old ones.
  std::shared_ptr<const PathMatchers> get(const rules::Policy& policy, uint32_t generation,
                                          const std::string& home);

 private:
  uint32_t generation_ = 0;
  std::map<std::string, std::shared_ptr<const PathMatchers>> by_home_;
};

class FileGuard {
 public:
  using Emit = std::function<void(audit::Record&)>;

  // Marks the mounts of `ns_pid`'s mount namespace and starts answering
  // with `matchers` (compiled for the agent's home), on the guard's own
  // thread. `emit` receives a record for every deny and would-deny, on
  // `io`'s thread. `existing`, when given, is scan_existing() of this
  // policy, home and cwd (else the guard scans). Throws.
  FileGuard(boost::asio::io_context& io, pid_t ns_pid, const Credentials& agent,
            std::string cwd, std::shared_ptr<const PathMatchers> matchers, Emit emit,
            const ExistingFiles* existing = nullptr);
  ~FileGuard();

  // A new policy: identities are rebuilt, cached allows dropped.
  void apply(std::shared_ptr<const PathMatchers> matchers);

  // A kernel record refused with EROFS on a protected path gets the
  // decision that made the path read-only; a rename or link that put a file
  // or a folder at a protected path, the decision "missed" (see
  // annotate_moved_in).
  void annotate(audit::Record& record) const;

  // The agent is being released (see FanotifyGuard::expect_start).
  void expect_start() { guard_->expect_start(); }

  // Stops answering and emits the records of the decisions made so far,
  // now: for the session's end, so that none comes after it. Idempotent.
  void stop();

  // Stops guarding and hands over the fanotify group (see
  // FanotifyGuard::take_group): for after the session's last process.
  UniqueFd take_group();

  // What the guard has answered so far (see FanotifyGuard::Stats).
  FanotifyGuard::Stats stats() const { return guard_->stats(); }

  // The decision for one open (public for tests). Its record waits in the
  // outbox for `io`'s thread.
  Verdict decide(const FileAccess& access);

 private:
  struct Rules;
  // Records decided on the guard's thread, for `io`'s thread to emit.
  // Shared with the handlers posted to `io`, which may run after the guard
  // is gone (then `emit` is empty).
  struct Outbox {
    std::mutex mu;
    std::vector<audit::Record> records;
    Emit emit;
    void drain();
  };
  std::unique_ptr<Rules> build(std::shared_ptr<const PathMatchers> matchers,
                               const ExistingFiles* existing = nullptr) const;
  // A rename or link record that gave `to` (and `also`, exchanged) a file.
  void annotate_moved_in(audit::Record& record, const std::string& to, const std::string* also) const;
  // `path` with its folder resolved in the session now (symlinks, ".."), as
  // the session names it; empty when that folder cannot be resolved.
  std::string resolved_in_session(const std::string& path) const;
  // The protected rule matching `path` or, for a folder at the path of a
  // folder of a protected glob, a path in it; `unchecked` set to that glob's
  // rule when such a folder could not be looked through whole.
  const rules::PathRule* protected_within(const std::string& path,
                                          const rules::PathRule*& unchecked) const;
  void decide_record(audit::Record& record, const rules::PathRule& rule, const char* action,
                     const char* reason) const;

  boost::asio::io_context& io_;
  Credentials agent_;
  std::string cwd_;
  UniqueFd session_root_fd_;  // the session's root: paths as the session sees them
  std::string session_root_;  // /proc/self/fd/<session_root_fd_>
  std::shared_ptr<Outbox> outbox_;
  // Read by the guard's thread in decide(), replaced only inside
  // FanotifyGuard::reset_cache(), which excludes decisions.
  std::unique_ptr<Rules> rules_;
  std::unique_ptr<FanotifyGuard> guard_;
};

// The existing files and directories of a scan_existing() under the
// policy's enforcing protected rules, outermost only: the session sees them
// through read-only bind
// mounts, which also refuse what fanotify cannot see (rename, link,
// unlink, truncate).
std::vector<std::string> protected_mount_points(const rules::Policy& policy,
                                                const ExistingFiles& existing);

// Existing files that any of `globs` match, with the index of each glob
// that does, walking each tree once for all its globs (see expand_glob).
std::vector<std::pair<std::string, size_t>> find_existing(const std::vector<std::string>& globs,
                                                          const std::string& home,
                                                          const std::string& cwd, size_t limit,
                                                          PathStates* looked_at = nullptr);

// Existing files that `glob` matches (home-expanded): a literal path is
// checked, a wildcard below a fixed directory walks that directory, and a
// "**/" pattern walks `cwd` (the project). At most `limit` entries walked.
std::vector<std::string> expand_glob(const std::string& glob, const std::string& home,
                                     const std::string& cwd, size_t limit);

}  // namespace corral
