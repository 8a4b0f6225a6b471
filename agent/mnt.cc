#include "mnt.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <stdexcept>

#include "file_guard.h"
#include "path.h"

namespace corral {
namespace {

// Private scratch space: fresh, empty, the session's own.
constexpr const char* kPrivateTmp[] = {"/tmp", "/dev/shm"};
constexpr size_t kMaxWritable = 64;

enum Step {
  kPrivate = 1,
  kClone,
  kReadOnly,
  kTmp,
  kAttach,
  kHide,
  kProtect,
  kProc,
  kChdir,
  kOverlay,
};

std::string expand(const std::string& p, const std::string& home) {
  return p.starts_with("~/") ? home + p.substr(1) : p;
}

// mkdir -p of `path`'s missing components, in a private tmpfs; existing
// ones (read-only or not) answer EEXIST first.
int make_parents(const char* path) {
  char buf[4096];
  size_t n = std::strlen(path);
  if (n >= sizeof buf) return ENAMETOOLONG;
  std::memcpy(buf, path, n + 1);
  for (size_t i = 1; i < n; ++i) {
    if (buf[i] != '/') continue;
    buf[i] = '\0';
    if (::mkdir(buf, 0755) != 0 && errno != EEXIST) return errno;
    buf[i] = '/';
  }
  return 0;
}

// The mount point for a tree cloned from `fd`: a directory or a file, as
// the tree's root is.
int make_mount_point(int fd, const char* path) {
  struct stat st;
  if (::lstat(path, &st) == 0) return 0;
  if (int e = make_parents(path)) return e;
  if (::fstat(fd, &st) != 0) return errno;
  if (S_ISDIR(st.st_mode)) return ::mkdir(path, 0755) == 0 ? 0 : errno;
  // Raw: glibc's open and close are cancellation points, which touch the
  // (shared, suspended) supervisor thread's state from the init's child.
  long f = ::syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (f < 0) return errno;
  ::syscall(SYS_close, f);
  return 0;
}

const char* step_name(int step) {
  switch (step) {
    case kPrivate: return "make the mount namespace private";
    case kClone: return "take the writable paths";
    case kReadOnly: return "make the host read-only";
    case kTmp: return "mount a private /tmp";
    case kAttach: return "mount a writable path";
    case kHide: return "cover a hidden path";
    case kProtect: return "mount a protected path read-only";
    case kProc: return "mount the session's /proc";
    case kChdir: return "enter the project directory";
    case kOverlay: return "mount the overlay on";
  }
  return "set up the mounts";
}

// The enforced hidden paths of `policy` for `home`, existing or not.
std::vector<std::string> hidden_paths(const rules::Policy& policy, const std::string& home) {
  std::vector<std::string> paths;
  for (const auto& rule : policy.hidden)
    if (rule.mode == rules::Mode::kEnforce)
      for (const auto& p : rule.globs) paths.push_back(normalize_path(expand(p, home)));
  return paths;
}

}  // namespace

std::string describe_mount_failure(const MountPlan& plan, const MountFailure& f) {
  std::string path;
  auto pick = [&](const std::vector<std::string>& list) {
    if (f.index >= 0 && static_cast<size_t>(f.index) < list.size())
      path = " " + list[static_cast<size_t>(f.index)];
  };
  if (f.step == kAttach || f.step == kClone) pick(plan.writable);
  if (f.step == kHide) pick(plan.hidden);
  if (f.step == kProtect) pick(plan.readonly);
  if (f.step == kOverlay && f.index >= 0 && static_cast<size_t>(f.index) < plan.overlays.size())
    path = " " + plan.overlays[static_cast<size_t>(f.index)].target;
  return std::string("failed to ") + step_name(f.step) + path + " in the session's mount namespace";
}

MountPlan session_mounts(const rules::Policy& policy, const std::string& home,
                         const std::string& cwd, const std::vector<std::string>& extra,
                         ExistingFiles* existing, PathStates* looked_at) {
  auto look = [&](const std::string& p) {
    if (looked_at) looked_at->add(p);
  };
  MountPlan plan;
  std::error_code ec;
  look(cwd);
  std::string project = std::filesystem::weakly_canonical(cwd, ec).string();
  if (ec) project = normalize_path(cwd);
  if (project == "/")
    throw std::invalid_argument(
        "refusing to make / the session's writable project directory: run corral from the "
        "project's directory");
  plan.writable.push_back(project);
  // Symlinks resolved: the tree is cloned through them, and attached where
  // they lead (move_mount does not follow a symlink at its target).
  auto add = [&](const std::string& p) {
    look(p);  // a symlink on the way, retargeted, changes what it names
    std::error_code ec;
    std::string path = std::filesystem::weakly_canonical(p, ec).string();
    if (ec) path = normalize_path(p);
    if (path != "/" && plan.writable.size() < kMaxWritable) plan.writable.push_back(path);
  };
  for (const auto& p : extra) add(p);
  for (const auto& rule : policy.writable) {
    if (rule.mode != rules::Mode::kEnforce) continue;
    for (const auto& p : rule.globs) add(normalize_path(expand(p, home)));
  }
  for (const auto& path : hidden_paths(policy, home)) {
    look(path);
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
      plan.hidden.push_back(path);
  }
  ExistingFiles scanned = scan_existing(policy, home, project, looked_at);
  plan.readonly = protected_mount_points(policy, scanned);
  if (existing) *existing = std::move(scanned);
  return plan;
}

void PathStates::add(const std::string& path) {
  std::string noted = path;
  State s = of(noted);
  // A path that names nothing stands for the deepest directory above it
  // that exists: it can appear only by an entry made there, which changes
  // that directory's times. Most of a plan's paths are candidates that do
  // not exist (~/.aws, ~/.kube/config, ...): checked, they cost one stat
  // per directory, not one each. A name that is there but leads nowhere (a
  // dangling symlink) stands for itself: its target may appear.
  while ((s.error == ENOENT || s.error == ENOTDIR) && noted.size() > 1 && noted.front() == '/') {
    struct stat st;
    if (::lstat(noted.c_str(), &st) == 0) break;
    noted.resize(std::max<size_t>(noted.rfind('/'), 1));
    s = of(noted);
  }
  // The first state of a path is the one before anything was read from it.
  if (!noted_.insert(noted).second) return;
  paths_.push_back(noted);
  states_.push_back(s);
}

bool PathStates::unchanged() const {
  for (size_t i = 0; i < paths_.size(); i++) {
    const State& was = states_[i];
    if (was.racy || (was.error && was.error != ENOENT && was.error != ENOTDIR)) return false;
    if (!(of(paths_[i]) == was)) return false;
  }
  return true;
}

PathStates::State PathStates::of(const std::string& path) {
  State s;
  // Filesystems stamp changes with this clock (the kernel's coarse time),
  // read before the path: a change after the stat is stamped no earlier.
  timespec tick{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &tick);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    s.error = errno;
    return s;
  }
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.mode = st.st_mode;
  s.mtime = st.st_mtim;
  s.ctime = st.st_ctim;
  s.racy = stamped_in_tick(st.st_mtim, tick) || stamped_in_tick(st.st_ctim, tick);
  return s;
}

bool stamped_in_tick(const timespec& stamp, const timespec& tick) {
  // A filesystem stamps with its own granularity, rounded down: whole
  // seconds on ext4's small inodes and some network filesystems, two on
  // FAT. Taken from the stamp's trailing zeros (2 s for none at all): a
  // stamp that fine by chance costs a prepared session, not a miss.
  int64_t grain = 1;
  if (stamp.tv_nsec == 0) {
    grain = 2'000'000'000;
  } else {
    while (grain < 1'000'000'000 && stamp.tv_nsec % (grain * 10) == 0) grain *= 10;
  }
  // Seconds first: a stamp set far off (utimensat takes any) would
  // overflow in ns.
  if (stamp.tv_sec > tick.tv_sec) return true;
  if (stamp.tv_sec < tick.tv_sec - 3) return false;
  const int64_t s = int64_t{stamp.tv_sec - tick.tv_sec} * 1'000'000'000 + stamp.tv_nsec;
  // a change later in the same grain would leave the same stamp
  return s + grain > tick.tv_nsec;
}

bool PathStates::State::operator==(const State& o) const {
  auto same = [](const timespec& a, const timespec& b) {
    return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
  };
  return error == o.error && dev == o.dev && ino == o.ino && mode == o.mode &&
         same(mtime, o.mtime) && same(ctime, o.ctime);
}

MountPlanArgs::MountPlanArgs(const MountPlan& plan) : plan_(plan) {
  auto fill = [](std::vector<std::string>& from, std::vector<char*>& to) {
    for (auto& s : from) to.push_back(s.data());
    to.push_back(nullptr);
  };
  fill(plan_.writable, writable_);
  fill(plan_.hidden, hidden_);
  fill(plan_.readonly, readonly_);
  // volatile: unmounting an overlay otherwise syncs the whole upper
  // filesystem (a repository's freshly checked-out worktree: 0.1-0.3 s);
  // git does not sync its objects either, and corral empties the upper and
  // work directories after every session (what a crash leaves is taken in).
  for (auto& o : plan_.overlays) {
    options_.push_back("lowerdir=" + o.target + ",upperdir=" + o.upper + ",workdir=" + o.work +
                       ",volatile");
    overlay_targets_.push_back(o.target.data());
  }
  for (auto& o : options_) overlay_options_.push_back(o.data());
  overlay_targets_.push_back(nullptr);
  overlay_options_.push_back(nullptr);
}

MountFailure setup_session_mounts(const MountPlanArgs& args) {
  auto fail = [](int step, int index = -1) { return MountFailure{errno, step, index}; };
  // A private copy: mounts made on the host later do not appear here
  // unwatched, and nothing done here reaches the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return fail(kPrivate);

  // The writable trees are cloned before the host turns read-only, so the
  // clones keep their read-write state; attached after /tmp is private, so
  // a project under /tmp stays visible.
  int fds[kMaxWritable];
  size_t n = 0;
  for (char* const* w = args.writable(); *w && n < kMaxWritable; ++w, ++n) {
    fds[n] = static_cast<int>(
        ::open_tree(AT_FDCWD, *w, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
    // A writable path that does not exist is nothing to mount; the project
    // directory must.
    if (fds[n] < 0 && (errno != ENOENT || n == 0)) return fail(kClone, static_cast<int>(n));
  }

  // Before the host turns read-only: their upper directories are in the
  // repository's common dir, which the session itself never sees writable.
  // The session writes into them, never into the real directories.
  for (int k = 0; args.overlay_targets()[k]; ++k)
    if (::mount("overlay", args.overlay_targets()[k], "overlay", MS_NOSUID | MS_NODEV,
                args.overlay_options()[k]) != 0)
      return fail(kOverlay, k);

  mount_attr ro{};
  ro.attr_set = MOUNT_ATTR_RDONLY;
  if (::mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &ro, sizeof ro) != 0) return fail(kReadOnly);

  for (const char* t : kPrivateTmp)
    if (::mount("tmpfs", t, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777") != 0 && errno != ENOENT)
      return fail(kTmp);
  // Terminals of the session's own: the host's /dev/pts holds the user's
  // other shells, whose input an agent running as the user could read and
  // write. Descriptors passed in (its stdio) keep working.
  if (::mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
              "newinstance,ptmxmode=0666,mode=0620") != 0 ||
      ::mount("/dev/pts/ptmx", "/dev/ptmx", nullptr, MS_BIND, nullptr) != 0)
    return fail(kTmp);

  for (size_t i = 0; i < n; ++i) {
    if (fds[i] < 0) continue;
    const char* path = args.writable()[i];
    if (int e = make_mount_point(fds[i], path)) {
      errno = e;
      return fail(kAttach, static_cast<int>(i));
    }
    if (::move_mount(fds[i], "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH) != 0)
      return fail(kAttach, static_cast<int>(i));
    ::syscall(SYS_close, fds[i]);
  }

  // Made writable again, alone: the overlays write into their private copy
  // of the upper directories' mount, which stays read-write.
  mount_attr rw{};
  rw.attr_clr = MOUNT_ATTR_RDONLY;
  for (int k = 0; args.overlay_targets()[k]; ++k)
    if (::mount_setattr(AT_FDCWD, args.overlay_targets()[k], 0, &rw, sizeof rw) != 0)
      return fail(kOverlay, k);

  // A hidden directory becomes an empty read-only tmpfs; a hidden file, the
  // empty read-only /dev/null. Gone since the plan was made: nothing to hide.
  int i = 0;
  for (char* const* h = args.hidden(); *h; ++h, ++i) {
    struct stat st;
    if (::stat(*h, &st) != 0) {
      if (errno == ENOENT) continue;
      return fail(kHide, i);
    }
    if (S_ISDIR(st.st_mode)) {
      if (::mount("tmpfs", *h, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "mode=0555,size=4k,nr_inodes=2") != 0)
        return fail(kHide, i);
    } else if (::mount("/dev/null", *h, nullptr, MS_BIND, nullptr) != 0 ||
               ::mount(nullptr, *h, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      return fail(kHide, i);
    }
  }

  // Protected paths inside the writable ones: what an open-time guard cannot
  // stop (rename, link, unlink, truncate) fails here with EROFS.
  i = 0;
  for (char* const* p = args.readonly(); *p; ++p, ++i) {
    if (::mount(*p, *p, nullptr, MS_BIND, nullptr) != 0 ||
        ::mount(nullptr, *p, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0) {
      if (errno != ENOENT) return fail(kProtect, i);  // gone since the policy was read
    }
  }

  // The init is pid 1 of the session's PID namespace: this /proc shows the
  // session's processes only.
  if (::mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    return fail(kProc);
  // The cwd inherited from the supervisor is the host's (now read-only)
  // view of the directory; the agent must start in the writable one.
  if (::chdir(args.writable()[0]) != 0) return fail(kChdir);
  return {};
}

}  // namespace corral
