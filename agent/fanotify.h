// File-open enforcement for one session: fanotify permission events on every
// mount of the session's private mount namespace. Opens made by processes
// outside that namespace never reach the supervisor (they go through other
// struct mounts, which carry no mark), so the host pays nothing.
//
// Requirements on the session (the launcher's job, not checked here):
// - its first process unshares CLONE_NEWNS and makes "/" MS_REC|MS_PRIVATE
//   before exec, so host mounts made later do not propagate in unmarked;
// - it cannot create mount namespaces or mounts of its own: a new mount
//   namespace (unshare(CLONE_NEWNS), e.g. after an unprivileged
//   unshare(CLONE_NEWUSER)) is a copy made of NEW struct mounts that carry no
//   mark, so its opens are not seen at all (pinned by the test
//   KnownGapNestedMountNamespaceIsNotGuarded). Block with seccomp in the
//   session: unshare and clone with CLONE_NEWNS|CLONE_NEWUSER, clone3
//   (ENOSYS: its flags are behind a pointer; libc falls back to clone),
//   setns, mount, open_tree, fsmount, move_mount. A mount made inside the
//   namespace by a privileged helper is marked only after rescan_mounts().
// - the supervisor must never open files through /proc/<session pid>/root
//   or /proc/<session pid>/fd: such an open lands on a marked mount and waits
//   for an answer from the very thread that would give it.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

#include "procfs.h"
#include "unique_fd.h"

namespace corral {

// One permission event. What the event itself carries (path, identity) is
// filled before the decider runs; the opener's identity and its write
// intent come from procfs (5-10 µs each, more than the rest of a decision)
// and are read on first use, so a decision that needs neither does not pay
// for them. Call them only from the decider: they read the
// thread while it is still blocked in its open.
class FileAccess {
 public:
  FileAccess() = default;
  explicit FileAccess(pid_t tid) : tid(tid) {}

  pid_t tid = 0;  // the thread blocked in the open
  // Canonical absolute path of the opened file (symlinks, "..",
  // /proc/self/root resolved by the kernel), as the session's namespace
  // names it; for a file on a mount that is not reachable from the
  // supervisor's root, the path from that namespace's root. A hard link
  // shows its own name: match on (dev, ino) to catch aliases.
  std::string path;
  bool deleted = false;  // unlinked (nlink 0); the kernel's " (deleted)" suffix is stripped
  dev_t dev = 0;         // identity of the opened inode (fstat of the event fd)
  ino_t ino = 0;
  mode_t mode = 0;       // its type and permissions, owner and group (same fstat)
  uid_t uid = 0;
  gid_t gid = 0;
  // A group-writable file with a POSIX access ACL: its group bits are the
  // ACL's mask, and named users or groups besides the owning one may write.
  bool acl_write = false;
  // Its filesystem decides access by other than the mode bits (NFS, SMB,
  // FUSE, 9p, Ceph, AFS: server-side ACLs), or could not be told.
  bool foreign_permissions = false;
  nlink_t nlink = 0;
  int fd = -1;  // the event's, open while the decider runs

  // Opened through a read-only mount (the session's view of the host is
  // one): nothing in the session writes the file through it. Asked of the
  // kernel on first use; unknown counts as writable.
  bool read_only_mount() const;

  // The opener's identity (tgid, comm, ppid, uids; all 0 and empty if it
  // exited meanwhile), and its thread group id.
  const ProcStatus& status() const;
  pid_t pid() const { return status().tgid; }
  // Whether the opener asked for write access (O_WRONLY, O_RDWR, O_CREAT,
  // O_TRUNC, creat). Read from the blocked thread's saved syscall registers.
  // When it cannot be known for sure, write() is true and write_known()
  // false: a decider that looks only at write() fails closed. Not known:
  // openat2 (its flags live in user memory that another thread or process
  // can rewrite after the kernel copied them), io_uring and other syscalls,
  // non-x86_64 builds, read errors.
  bool write() const { return intent().write; }
  bool write_known() const { return intent().known; }
  // An open made by execve itself (the binary, its interpreter): read-only.
  bool exec() const { return intent().exec; }

 private:
  struct Intent {
    bool write = true;
    bool known = false;
    bool exec = false;
  };
  const Intent& intent() const;

  mutable std::optional<ProcStatus> status_;
  mutable std::optional<Intent> intent_;
  mutable std::optional<bool> read_only_mount_;
};

enum class Verdict {
  kAllow,
  // Allow, and let every later open of this inode — read, write or exec,
  // through any name or mount, by any process of the session — through
  // without asking, until reset_cache() or the kernel evicts the inode, or
  // the file is modified. Return it only when the decision depends on none
  // of path, write, exec and pid: e.g. a read of a file the session cannot
  // write (system libraries: by their permissions, or read-only in the
  // session under their only name). Caching a read of a writable file lets
  // a later write through, even under a hard link in a protected place.
  kAllowCache,
  kDeny,
};

// How long a guard's thread polls for the next event before it sleeps. An
// opener is blocked until its answer, and a sleeping thread is woken by an
// inter-processor interrupt; on a VM whose idle vCPUs halt, each wake-up
// costs tens of µs (measured here: a decided open took 75 µs at p50 with
// the thread sleeping between events, 9 µs with the CPUs kept busy). Opens
// come in bursts (a build, an install), so polling bridges the gaps inside
// a burst. The window adapts as the kernel's haltpoll does: polling that
// catches events keeps it at its longest; a sleep longer than that halves
// it, down to none, so a sparse stream of opens costs no polling; a short
// sleep grows it back. At most kMax of CPU is spent after each burst, and
// the poll yields to any runnable task: it takes only a CPU's idle time.
class SpinWindow {
 public:
  using Micros = std::chrono::microseconds;
  static constexpr Micros kMax{100}, kGrowStart{10};
  Micros get() const { return window_; }
  // An event came while polling.
  void caught() { window_ = kMax; }
  // The thread slept this long before its next event.
  void slept(std::chrono::nanoseconds slept);

 private:
  Micros window_ = kMax;
};

class FanotifyGuard {
 public:
  using Decider = std::function<Verdict(const FileAccess&)>;

  // Creates the group and marks every mount of the mount namespace of
  // `ns_pid` for FAN_OPEN_PERM (as /proc/<ns_pid>/
  // mountinfo lists them, relative to its root: give a process that is not
  // chrooted, best the session's first one, still held before exec).
  // Mounts of pseudo filesystems (proc, sysfs, devpts, cgroup, ...) the
  // kernel refuses to mark (proc: EINVAL) and mounts covered by another
  // mount at the same point are skipped, logged at debug level. Throws
  // std::runtime_error when `ns_pid` shares our own mount namespace (marking
  // the host's mounts would gate every process on the host), or when a mount
  // of a real filesystem cannot be marked.
  FanotifyGuard(pid_t ns_pid, Decider decider);
  // Closing the group makes the kernel allow any still-pending event: when
  // the guard goes, the session must go first (or be killed).
  ~FanotifyGuard();
  FanotifyGuard(const FanotifyGuard&) = delete;
  FanotifyGuard& operator=(const FanotifyGuard&) = delete;

  // Starts answering, on a thread of the guard's own: an opener waits for
  // its answer, so the answer must not queue behind the supervisor's other
  // work (the audit pipeline). The decider runs on that thread. After an
  // event the thread polls on for a moment before it sleeps (see
  // fanotify.cc): a burst of opens then never waits for a halted CPU to
  // wake. Events raised before start() wait for it.
  void start();
  // The agent is about to start: its first opens (its binary, its loader,
  // libraries) come within a few milliseconds, with gaps longer than the
  // thread polls after an event. The thread polls through the next
  // kStartBurst, so none of them waits for a halted CPU to wake.
  static constexpr std::chrono::milliseconds kStartBurst{3};
  void expect_start();
  // Stops answering: returns once every event read has been answered and
  // counted — the thread waiting with none queued, or gone from its loop
  // (an event pending then waits for the group's close, which allows it);
  // the thread itself is joined by the destructor. Idempotent; the
  // destructor calls it.
  void stop();

  // Ends the guard, handing its group to the caller (the pending events
  // are allowed once it is closed). Closing a group waits for an SRCU grace
  // period, ~10 ms: a supervisor closes it off its loop.
  UniqueFd take_group() {
    stop();
    return std::move(group_);
  }

  // Runs `change` (the decider's new state, if any) and drops every cached
  // allow (on policy reload), with no decision in between: an answer
  // decided under the old state cannot cache an allow the new state would
  // not give. The cache is the group's inode marks and the group has no
  // other inode marks, so one FAN_MARK_FLUSH removes exactly the cache
  // while the mount marks stay: there is no moment without enforcement.
  void reset_cache(const std::function<void()>& change = {});

  // Re-reads the namespace's mount table and marks every mount again
  // (marking is idempotent; a mount id reused by a new mount gets its mark
  // too), so mounts that appeared since — a bind mount made inside the
  // session by a privileged helper — are guarded from now on. Returns how
  // many mount ids were not marked before. Throws like the constructor, and
  // when `ns_pid` has exited. Safe to call while the guard answers.
  size_t rescan_mounts();

  struct Stats {
    uint64_t events = 0;  // permission events answered
    uint64_t denied = 0;
    uint64_t cached = 0;  // ignore marks added
    uint64_t errors = 0;  // failures on the way (each such event denied), overflows, failed replies
  };
  Stats stats() const;

 private:
  size_t mark_mounts();
  void serve();
  // Reads the pending events (up to a batch) and answers every permission
  // event: the decider's verdict, or FAN_DENY when anything fails on the way
  // (fail closed). Returns how many it handled; 0 when none waited.
  size_t handle_events();
  void answer(int event_fd, pid_t tid);
  bool fill_access(int event_fd, pid_t tid, FileAccess& access);

  pid_t ns_pid_;
  UniqueFd proc_dir_;  // /proc/<ns_pid>: pins the process, not a reused pid
  UniqueFd own_fds_;   // /proc/self/fd
  UniqueFd group_;
  Decider decider_;
  std::set<int> marked_;  // ids of the mounts marked so far (for rescan's count)
  // Per device: do the mode bits decide access there? The session's mounts
  // are fixed while it runs (private namespace, no mount for the agent), so
  // a device number is not reused under us. Guard thread only.
  std::unordered_map<dev_t, bool> mode_bits_decide_;
  std::mutex decide_mu_;  // one decision (verdict and cache mark) vs reset_cache()
  UniqueFd wake_fd_;      // eventfd: wakes the thread, to stop or for a start
  std::atomic<bool> stopping_{false};
  std::atomic<bool> served_{false};  // serve() has returned: nothing more is answered
  // serve() waits for events in poll(), all it read answered and counted
  std::atomic<bool> waiting_{false};
  std::atomic<bool> start_expected_{false};
  std::thread thread_;
  std::atomic<uint64_t> events_{0}, denied_{0}, cached_{0}, errors_{0};
};

}  // namespace corral
