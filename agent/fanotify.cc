#include "fanotify.h"
#include "procfs.h"
#include "errno_error.h"
#include "mountinfo.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <linux/magic.h>
#include <sys/fanotify.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace corral {
namespace {

// An exec's opens (the binary, its interpreter) raise FAN_OPEN_PERM too;
// FAN_OPEN_EXEC_PERM would be a second round trip for each of them.
constexpr uint64_t kPermMask = FAN_OPEN_PERM;
// Events handled per handle_events() call, so that the answering thread
// looks at its stop request between batches; the fd stays readable when more
// wait.
constexpr size_t kBatch = 1024;
// How long an opener shown "running" is asked again for its syscall (see
// FileAccess::intent).
constexpr auto kRunningFor = std::chrono::milliseconds(2);

// Answering threads of all guards polling at once: fewer than the CPUs, so
// that the openers always have one; none on a single CPU, where polling
// would only take the opener's time.
std::atomic<int> spinning{0};
int max_spinning() {
  static const int n = std::max(0, static_cast<int>(std::thread::hardware_concurrency()) - 1);
  return n;
}

// Filesystems whose mounts may stay unmarked when the kernel refuses a mark
// (it refuses permission events on some pseudo filesystems, e.g. proc since
// 6.x): they hold kernel state, not user files, and the files they expose
// are reached through their own paths, not as aliases of files elsewhere
// (/proc/self/root/... and /proc/<pid>/fd/... reopen the target file on its
// own mount, which is marked). Everything else — ext4, xfs, btrfs, tmpfs,
// overlay, devtmpfs, fuse, nfs... — must be marked or the guard throws.
bool is_pseudo_fs(const std::string& fstype) {
  static const char* const kPseudo[] = {
      "proc",       "sysfs",   "devpts",   "cgroup",   "cgroup2",   "mqueue",
      "debugfs",    "tracefs", "securityfs", "pstore", "bpf",       "configfs",
      "fusectl",    "binfmt_misc", "nsfs", "efivarfs", "selinuxfs", "autofs",
      "rpc_pipefs", "nfsd"};
  for (const char* p : kPseudo)
    if (fstype == p) return true;
  return false;
}

}  // namespace

bool FileAccess::read_only_mount() const {
  if (!read_only_mount_) {
    struct statvfs sv;
    read_only_mount_ = fd >= 0 && ::fstatvfs(fd, &sv) == 0 && (sv.f_flag & ST_RDONLY);
  }
  return *read_only_mount_;
}

const ProcStatus& FileAccess::status() const {
  if (!status_) status_ = read_proc_status(tid).value_or(ProcStatus{});
  return *status_;
}

// From the syscall the thread is blocked in.
const FileAccess::Intent& FileAccess::intent() const {
  if (intent_) return *intent_;
  Intent& in = intent_.emplace();
#if defined(__x86_64__)
  std::string text;
  const std::string file = "/proc/" + std::to_string(tid) + "/syscall";
  // The opener queues its event, then goes to sleep for the answer: a
  // guard that polls can read the event first, and the kernel shows
  // "running" until the opener is asleep, a few instructions on. Asked
  // again until then; past kRunningFor (the opener preempted on its way)
  // the intent stays unknown, which counts as a write.
  const auto deadline = std::chrono::steady_clock::now() + kRunningFor;
  try {
    while ((text = read_small_file(AT_FDCWD, file, "syscall")).starts_with("running") &&
           std::chrono::steady_clock::now() < deadline)
      ::sched_yield();
  } catch (const std::exception& e) {
    spdlog::debug("fanotify: write intent of tid {} unknown: {}", tid, e.what());
    return in;
  }
  // "nr arg1 .. arg6 sp pc", nr in decimal, the rest in hex; or "running",
  // or "-1 sp pc" when not in a syscall.
  const char* p = text.c_str();
  char* end = nullptr;
  errno = 0;
  long nr = std::strtol(p, &end, 10);
  if (end == p || errno != 0) return in;
  unsigned long long args[6] = {};
  p = end;
  for (auto& arg : args) {
    errno = 0;
    arg = std::strtoull(p, &end, 16);
    if (end == p || errno != 0) return in;
    p = end;
  }
  auto from_flags = [&](unsigned long long flags) {
    in.write = (flags & O_ACCMODE) != O_RDONLY || (flags & (O_CREAT | O_TRUNC)) != 0;
    in.known = true;
  };
  // x86_64 numbers only. A 32-bit (int 0x80) or x32 syscall shows its own
  // numbering here: none of its open calls uses these numbers (and none of
  // the calls that do use them opens a file), so they stay unknown.
  switch (nr) {
    case 2:    // open(path, flags, mode)
      from_flags(args[1]);
      break;
    case 257:  // openat(dfd, path, flags, mode)
    case 304:  // open_by_handle_at(mount_fd, handle, flags)
      from_flags(args[2]);
      break;
    case 85:   // creat(path, mode)
      in.write = true;
      in.known = true;
      break;
    case 59:   // execve: the binary and its interpreter, read-only
    case 322:  // execveat
      in.write = false;
      in.known = true;
      in.exec = true;
      break;
    case 437:
      // openat2(dfd, path, how, size): the flags are in user memory, which
      // another thread (or a process sharing or writing the memory) can
      // change after the kernel copied them: unknown, so fail closed.
    default:
      break;
  }
#endif
  return in;
}

FanotifyGuard::FanotifyGuard(pid_t ns_pid, Decider decider)
    : ns_pid_(ns_pid), decider_(std::move(decider)) {
  if (!decider_) throw std::runtime_error("fanotify guard needs a decider");
  std::string proc = "/proc/" + std::to_string(ns_pid);
  proc_dir_.reset(::open(proc.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!proc_dir_) throw errno_error("failed to open " + proc);
  // Our own fd table, held open: an event descriptor's name is a
  // readlinkat of its number there, not a walk of /proc/self/fd/N at every
  // event (3.0 µs instead of 3.9 here).
  own_fds_.reset(::open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!own_fds_) throw errno_error("failed to open /proc/self/fd");

  struct stat ours, theirs;
  if (::stat("/proc/self/ns/mnt", &ours) != 0)
    throw errno_error("failed to read our mount namespace /proc/self/ns/mnt");
  if (::fstatat(proc_dir_.get(), "ns/mnt", &theirs, 0) != 0)
    throw errno_error("failed to read the mount namespace " + proc + "/ns/mnt");
  if (ours.st_dev == theirs.st_dev && ours.st_ino == theirs.st_ino)
    throw std::runtime_error("refusing to guard pid " + std::to_string(ns_pid) +
                             ": it shares the supervisor's mount namespace (marking the "
                             "host's mounts would gate every process on the host)");

  group_.reset(::fanotify_init(FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE |
                                   FAN_UNLIMITED_MARKS | FAN_REPORT_TID,
                               // Event files are opened by the kernel inside our
                               // read(): O_NONBLOCK so that a FIFO or a device
                               // whose open waits cannot stall it (kernels
                               // before 6.14 send permission events for those;
                               // later ones only for regular files and dirs).
                               O_RDONLY | O_LARGEFILE | O_CLOEXEC | O_NONBLOCK));
  if (!group_) throw errno_error("failed to create a fanotify group");
  size_t n = mark_mounts();
  spdlog::debug("fanotify: guarding {} mount(s) of the mount namespace of pid {}", n, ns_pid);
}

FanotifyGuard::~FanotifyGuard() {
  stop();
  if (thread_.joinable()) thread_.join();
}

void FanotifyGuard::start() {
  if (thread_.joinable() && !stopping_) return;
  if (thread_.joinable()) thread_.join();  // stopped before
  served_ = false;
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_fd_) throw errno_error("failed to create the fanotify guard's eventfd");
  stopping_ = false;
  thread_ = std::thread([this] { serve(); });
}

void FanotifyGuard::expect_start() {
  if (!thread_.joinable() || stopping_) return;
  start_expected_ = true;
  uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof(one));
}

void FanotifyGuard::stop() {
  if (!thread_.joinable()) return;
  stopping_ = true;
  uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof(one));
  // Its last answer given, not its exit: the thread's teardown is left to
  // the destructor, off a session's way to its end record and its reply.
  // Waiting in poll() with no event queued, it has answered all it read
  // (it clears waiting_ before it reads): nothing to wait for, not even
  // its wake-up. The queue is looked at first: an event read after that
  // look was read with waiting_ already cleared.
  pollfd queued{group_.get(), POLLIN, 0};
  if (::poll(&queued, 1, 0) == 0 && waiting_) return;
  served_.wait(false);
}

void SpinWindow::slept(std::chrono::nanoseconds slept) {
  if (slept < kMax)
    window_ = std::min(kMax, std::max(kGrowStart, window_ * 2));
  else
    window_ = window_ / 2 < kGrowStart ? Micros{0} : window_ / 2;
}

void FanotifyGuard::serve() {
  struct Served {
    std::atomic<bool>& flag;
    ~Served() {
      flag = true;
      flag.notify_all();
    }
  } served{served_};
  ::pthread_setname_np(::pthread_self(), "corral-fanotify");
  pollfd fds[2] = {{group_.get(), POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}};
  SpinWindow window;
  auto clock = [] { return std::chrono::steady_clock::now(); };
  while (!stopping_) {
    auto slept_from = clock();
    waiting_ = true;
    int n = ::poll(fds, 2, -1);
    waiting_ = false;
    if (n < 0) {
      if (errno == EINTR) continue;
      // Openers keep waiting (nothing is allowed unanswered); retry.
      spdlog::error("fanotify: failed to wait for events: {}", std::strerror(errno));
      errors_++;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      continue;
    }
    bool start_burst = false;
    if (fds[1].revents) {
      if (stopping_) break;
      uint64_t count;
      (void)!::read(wake_fd_.get(), &count, sizeof(count));
      start_burst = start_expected_.exchange(false);
    }
    if (!fds[0].revents && !start_burst) continue;
    if (fds[0].revents) {
      window.slept(clock() - slept_from);
      handle_events();
    }
    if (window.get() == SpinWindow::Micros{0} && !start_burst) continue;
    if (spinning.fetch_add(1) < max_spinning()) {
      auto until = clock() + window.get();
      const auto burst_until = start_burst ? clock() + kStartBurst : until;
      while (!stopping_) {
        auto now = clock();
        if (handle_events() > 0) {
          window.caught();
          until = now + window.get();
        } else if (now >= until && now >= burst_until) {
          break;
        } else {
          // Polite: a runnable task here (an agent, another session's
          // supervisor) runs first; polling takes only a CPU's idle time.
          ::sched_yield();
        }
      }
    }
    spinning.fetch_sub(1);
  }
}

size_t FanotifyGuard::mark_mounts() {
  std::string proc = "/proc/" + std::to_string(ns_pid_);
  auto mounts = parse_mountinfo(read_small_file(proc_dir_.get(), "mountinfo", proc + "/mountinfo"));
  if (mounts.empty()) throw std::runtime_error("no mounts listed in " + proc + "/mountinfo");
  size_t newly = 0;
  for (const auto& m : mounts) {
    std::string rel = "root" + m.mountpoint;
    std::string shown = proc + "/" + rel;
    bool pseudo = is_pseudo_fs(m.fstype);
    UniqueFd at(::openat(proc_dir_.get(), rel.c_str(), O_PATH | O_CLOEXEC));
    if (!at) {
      if (pseudo) {
        spdlog::debug("fanotify: skipping {} mount {}: {}", m.fstype, shown, std::strerror(errno));
        continue;
      }
      throw errno_error("failed to open mount " + shown);
    }
    struct statx stx;
    if (::statx(at.get(), "", AT_EMPTY_PATH, STATX_MNT_ID, &stx) != 0)
      throw errno_error("failed to stat mount " + shown);
    if (!(stx.stx_mask & STATX_MNT_ID))
      throw std::runtime_error("failed to identify mount " + shown + ": no STATX_MNT_ID (kernel < 5.8)");
    if (stx.stx_mnt_id != static_cast<uint64_t>(m.id)) {
      // Another mount listed at the same point covers this one: no path
      // reaches its files, so no open by path can (only a descriptor taken
      // before it was covered could, and the session's processes start with
      // none). Any other mismatch — a directory renamed while we marked —
      // leaves a mount we cannot address: fail.
      bool covered = false;
      for (const auto& other : mounts)
        if (static_cast<uint64_t>(other.id) == stx.stx_mnt_id && other.mountpoint == m.mountpoint) covered = true;
      if (!covered)
        throw std::runtime_error("failed to mark mount " + shown + ": the path leads to mount " +
                                 std::to_string(stx.stx_mnt_id) + ", not " + std::to_string(m.id));
      spdlog::debug("fanotify: mount {} ({} at {}) is covered by mount {}: not reachable, not marked",
                    m.id, m.fstype, shown, stx.stx_mnt_id);
      continue;
    }
    // Mark exactly what was identified: the O_PATH file, through its magic
    // link (fanotify_mark refuses an O_PATH descriptor as dirfd).
    std::string self = "/proc/self/fd/" + std::to_string(at.get());
    if (::fanotify_mark(group_.get(), FAN_MARK_ADD | FAN_MARK_MOUNT, kPermMask, AT_FDCWD, self.c_str()) != 0) {
      if (pseudo) {
        spdlog::debug("fanotify: not marking {} mount {}: {}", m.fstype, shown, std::strerror(errno));
        continue;
      }
      throw errno_error("failed to mark mount " + shown);
    }
    if (marked_.insert(m.id).second) newly++;
  }
  return newly;
}

size_t FanotifyGuard::rescan_mounts() {
  size_t n = mark_mounts();
  if (n) spdlog::debug("fanotify: marked {} new mount(s) of the mount namespace of pid {}", n, ns_pid_);
  return n;
}

void FanotifyGuard::reset_cache(const std::function<void()>& change) {
  std::lock_guard lock(decide_mu_);
  if (change) change();
  // FAN_MARK_FLUSH without FAN_MARK_MOUNT/FILESYSTEM removes the group's
  // inode marks: all of them are cache entries.
  if (::fanotify_mark(group_.get(), FAN_MARK_FLUSH, 0, AT_FDCWD, nullptr) != 0)
    throw errno_error("failed to flush the fanotify allow cache");
}

FanotifyGuard::Stats FanotifyGuard::stats() const {
  return Stats{events_.load(), denied_.load(), cached_.load(), errors_.load()};
}

namespace {

// Filesystems whose access checks are not the mode bits the guard reads.
bool permissions_elsewhere(decltype(statfs::f_type) type) {
  switch (static_cast<unsigned long>(type)) {
    case NFS_SUPER_MAGIC:
    case SMB_SUPER_MAGIC:
    case CIFS_SUPER_MAGIC:
    case SMB2_SUPER_MAGIC:
    case FUSE_SUPER_MAGIC:
    case V9FS_MAGIC:
    case CEPH_SUPER_MAGIC:
    case AFS_SUPER_MAGIC:
    case AFS_FS_MAGIC:
      return true;
    default:
      return false;
  }
}

}  // namespace

bool FanotifyGuard::fill_access(int event_fd, pid_t tid, FileAccess& a) {
  a = FileAccess(tid);
  char link[PATH_MAX + 32];
  char number[16];
  std::snprintf(number, sizeof(number), "%d", event_fd);
  ssize_t n = ::readlinkat(own_fds_.get(), number, link, sizeof(link) - 1);
  if (n < 0 || static_cast<size_t>(n) >= sizeof(link) - 1) {
    spdlog::warn("fanotify: failed to read the path of an opened file (/proc/self/fd/{}): {}", number,
                 n < 0 ? std::strerror(errno) : "too long");
    return false;
  }
  a.path.assign(link, static_cast<size_t>(n));
  struct stat st;
  if (::fstat(event_fd, &st) != 0) {
    spdlog::warn("fanotify: failed to stat {}: {}", a.path, std::strerror(errno));
    return false;
  }
  a.dev = st.st_dev;
  a.ino = st.st_ino;
  a.mode = st.st_mode;
  a.uid = st.st_uid;
  a.gid = st.st_gid;
  a.nlink = st.st_nlink;
  a.fd = event_fd;
  // Once per device; a failed fstatfs counts as foreign.
  auto [fs, fresh] = mode_bits_decide_.try_emplace(st.st_dev, false);
  if (fresh) {
    struct statfs sf;
    fs->second = ::fstatfs(event_fd, &sf) == 0 && !permissions_elsewhere(sf.f_type);
  }
  a.foreign_permissions = !fs->second;
  // Asked only when the mask allows a write at all: one more system call for
  // group-writable files, none for the rest. Any error but "none here"
  // counts as an ACL: never cache on a guess.
  if (st.st_mode & S_IWGRP) {
    ssize_t r = ::fgetxattr(event_fd, "system.posix_acl_access", nullptr, 0);
    a.acl_write = r > 0 || (r < 0 && errno != ENODATA && errno != EOPNOTSUPP);
  }
  constexpr std::string_view kDeleted = " (deleted)";
  if (st.st_nlink == 0 && a.path.ends_with(kDeleted)) {
    a.path.resize(a.path.size() - kDeleted.size());
    a.deleted = true;
  }
  return true;
}

void FanotifyGuard::answer(int event_fd, pid_t tid) {
  std::lock_guard lock(decide_mu_);
  Verdict verdict = Verdict::kDeny;
  FileAccess access;
  try {
    if (fill_access(event_fd, tid, access)) {
      verdict = decider_(access);
    } else {
      errors_++;
    }
  } catch (const std::exception& e) {
    spdlog::warn("fanotify: denying open of {} by tid {}: {}", access.path, tid, e.what());
    errors_++;
    verdict = Verdict::kDeny;
  } catch (...) {
    spdlog::warn("fanotify: denying open of {} by tid {}: unknown error", access.path, tid);
    errors_++;
    verdict = Verdict::kDeny;
  }
  bool allow = verdict != Verdict::kDeny;
  // Counted before the answer releases the opener.
  events_++;
  if (!allow) denied_++;
  struct fanotify_response response = {event_fd, allow ? static_cast<uint32_t>(FAN_ALLOW) : static_cast<uint32_t>(FAN_DENY)};
  ssize_t n;
  do n = ::write(group_.get(), &response, sizeof(response));
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(sizeof(response))) {
    // ENOENT: the opener was killed while it waited; nothing is pending.
    spdlog::debug("fanotify: failed to answer the open of {} by tid {}: {}", access.path, tid,
                  n < 0 ? std::strerror(errno) : "short write");
    errors_++;
  }
  // After the answer: the opener need not wait for it. A second open of
  // the file before it is placed is only decided again.
  if (verdict == Verdict::kAllowCache) {
    // An evictable inode ignore mark: it does not pin the inode, and it goes
    // when the file is modified (no FAN_MARK_IGNORED_SURV_MODIFY). Opens of
    // directories are not reported (no FAN_ONDIR), so this is never a
    // directory, which would need FAN_MARK_IGNORED_SURV_MODIFY.
    if (::fanotify_mark(group_.get(), FAN_MARK_ADD | FAN_MARK_IGNORE | FAN_MARK_EVICTABLE, kPermMask,
                        event_fd, nullptr) == 0) {
      cached_++;
    } else {
      spdlog::debug("fanotify: failed to cache the allow for {}: {}", access.path, std::strerror(errno));
    }
  }
}

size_t FanotifyGuard::handle_events() {
  alignas(struct fanotify_event_metadata) char buf[16384];
  size_t handled = 0;
  int failed_reads = 0;
  while (handled < kBatch) {
    ssize_t len = ::read(group_.get(), buf, sizeof(buf));
    if (len < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      // The kernel could not hand an event over (no descriptor left for its
      // file: EMFILE, ENFILE; ENOMEM...). It has answered a permission
      // event it failed to hand over with FAN_DENY itself.
      spdlog::warn("fanotify: failed to read events: {}", std::strerror(errno));
      errors_++;
      if (++failed_reads >= 16) break;
      continue;
    }
    if (len == 0) break;
    failed_reads = 0;
    auto* md = reinterpret_cast<struct fanotify_event_metadata*>(buf);
    while (FAN_EVENT_OK(md, len)) {
      UniqueFd event_fd(md->fd >= 0 ? md->fd : -1);
      handled++;
      if (md->vers != FANOTIFY_METADATA_VERSION) {
        // The fields read below have kept their place since version 3;
        // any other version is still answered, but only with a deny.
        spdlog::error("fanotify: event metadata version {} (built for {}): denying", md->vers,
                      FANOTIFY_METADATA_VERSION);
        errors_++;
        if (event_fd && (md->mask & kPermMask)) {
          struct fanotify_response r = {event_fd.get(), static_cast<uint32_t>(FAN_DENY)};
          (void)!::write(group_.get(), &r, sizeof(r));
          events_++;
          denied_++;
        }
      } else if (md->mask & FAN_Q_OVERFLOW) {
        // Not expected with FAN_UNLIMITED_QUEUE; permission events are never
        // dropped by an overflow (the opener waits), only notifications.
        spdlog::warn("fanotify: event queue overflow");
        errors_++;
      } else if (!event_fd) {
        // A permission event always comes with a descriptor (the kernel
        // denies one it cannot open a descriptor for).
        spdlog::warn("fanotify: event without a file descriptor (mask {:#x})", md->mask);
        errors_++;
      } else if (md->mask & kPermMask) {
        answer(event_fd.get(), md->pid);
      }
      md = FAN_EVENT_NEXT(md, len);
    }
  }
  return handled;
}

}  // namespace corral
