// Secret files and protected paths, enforced for one session: the policy's
// path rules decide each fanotify permission event of the session's mounts.
// A secret is matched by its canonical path and by the identity (device,
// inode) of every matching file that existed when the policy loaded, so a
// hard link elsewhere is caught too.
#pragma once

#include <sys/types.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "audit.pb.h"
#include "fanotify.h"
#include "matcher.h"
#include "process.h"

namespace corral {

class FileGuard {
 public:
  using Emit = std::function<void(audit::Record&)>;

  // Marks the mounts of `ns_pid`'s mount namespace and starts answering.
  // `emit` receives a record for every deny and would-deny. Throws.
  FileGuard(boost::asio::io_context& io, pid_t ns_pid, const Credentials& agent,
            std::string cwd, const rules::Policy& policy, uint32_t generation, Emit emit);
  ~FileGuard();

  // A new policy: matchers and identities are rebuilt, cached allows dropped.
  void apply(const rules::Policy& policy, uint32_t generation);

  // A kernel record refused with EROFS on a protected path gets the
  // decision that made the path read-only.
  void annotate(audit::Record& record) const;

  // Stops guarding and hands over the fanotify group (see
  // FanotifyGuard::take_group): for after the session's last process.
  UniqueFd take_group();

  // The decision for one open (public for tests).
  Verdict decide(const FileAccess& access);

 private:
  struct Rules;
  void watch();
  std::unique_ptr<Rules> build(const rules::Policy& policy, uint32_t generation) const;

  Credentials agent_;
  std::string cwd_;
  Emit emit_;
  std::unique_ptr<Rules> rules_;
  std::unique_ptr<FanotifyGuard> guard_;
  boost::asio::posix::stream_descriptor watch_;
};

// Existing files and directories under the policy's enforcing protected
// rules, outermost only: the session sees them through read-only bind
// mounts, which also refuse what fanotify cannot see (rename, link,
// unlink, truncate).
std::vector<std::string> protected_mount_points(const rules::Policy& policy,
                                                const std::string& home, const std::string& cwd);

// Existing files that any of `globs` match, with the index of each glob
// that does, walking each tree once for all its globs (see expand_glob).
std::vector<std::pair<std::string, size_t>> find_existing(const std::vector<std::string>& globs,
                                                          const std::string& home,
                                                          const std::string& cwd, size_t limit);

// Existing files that `glob` matches (home-expanded): a literal path is
// checked, a wildcard below a fixed directory walks that directory, and a
// "**/" pattern walks `cwd` (the project). At most `limit` entries walked.
std::vector<std::string> expand_glob(const std::string& glob, const std::string& home,
                                     const std::string& cwd, size_t limit);

}  // namespace corral
