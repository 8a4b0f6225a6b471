// FanotifyGuard against the real kernel, as root: a forked "session" child
// in its own private mount namespace opens files on command, the guard
// answers on a thread of the test process (which stays in the host
// namespace and must never be asked about its own opens).
#include "fanotify.h"
#include "mountinfo.h"

#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/openat2.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

namespace corral {
namespace {

namespace fs = std::filesystem;

bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

// Under CI=true a missing privilege is a failure; elsewhere a skip.
#define FANOTIFY_REQUIRE_ROOT()                                                   \
  do {                                                                            \
    if (::geteuid() != 0) {                                                       \
      if (running_in_ci()) FAIL() << "fanotify tests need root (CI=true)";        \
      GTEST_SKIP() << "fanotify tests need root";                                 \
    }                                                                             \
  } while (0)

// ---- the session child -----------------------------------------------------

enum class Op : int {
  kOpen,        // variant: 0 openat (glibc open), 1 SYS_open, 2 SYS_creat, 3 openat2
  kChdir,
  kBindMount,   // path -> path2
  kOpenLoop,    // count times: open path (a = successes), open path2 (b = failures)
  kTimeOpens,   // count opens of path: a = p50 ns, b = p99 ns
  kExec,        // fork + execve(path): errno of execve, 0 when it ran
  kNestedOpen,  // fork; become nobody; unshare(USER|NS); open(path): errno
  kExit,
};

struct Command {
  Op op;
  int variant;
  int flags;
  int count;
  char path[1024];
  char path2[1024];
};

struct Reply {
  int err;
  int64_t a, b;
};

int open_variant(int variant, const char* path, int flags) {
  int fd = -1;
  switch (variant) {
    case 0:
      fd = ::open(path, flags | O_CLOEXEC, 0644);
      break;
    case 1:
      fd = static_cast<int>(::syscall(SYS_open, path, flags | O_CLOEXEC, 0644));
      break;
    case 2:
      fd = static_cast<int>(::syscall(SYS_creat, path, 0644));
      break;
    case 3: {
      struct open_how how = {};
      how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
      how.mode = (flags & O_CREAT) ? 0644 : 0;
      fd = static_cast<int>(::syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how)));
      break;
    }
  }
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

int64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

int wait_status_errno(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return ECHILD;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

Reply serve_one(const Command& c) {
  Reply r = {};
  switch (c.op) {
    case Op::kOpen:
      r.err = open_variant(c.variant, c.path, c.flags);
      break;
    case Op::kChdir:
      r.err = ::chdir(c.path) == 0 ? 0 : errno;
      break;
    case Op::kBindMount:
      r.err = ::mount(c.path, c.path2, nullptr, MS_BIND, nullptr) == 0 ? 0 : errno;
      break;
    case Op::kOpenLoop:
      for (int i = 0; i < c.count; i++) {
        if (open_variant(0, c.path, O_RDONLY) == 0) r.a++;
        if (c.path2[0] && open_variant(0, c.path2, O_RDONLY) != 0) r.b++;
      }
      break;
    case Op::kTimeOpens: {
      std::vector<int64_t> ns;
      ns.reserve(c.count);
      for (int i = 0; i < c.count; i++) {
        int64_t t0 = now_ns();
        int fd = ::open(c.path, O_RDONLY | O_CLOEXEC);
        int64_t t1 = now_ns();
        if (fd < 0) {
          r.err = errno;
          break;
        }
        ::close(fd);
        ns.push_back(t1 - t0);
      }
      if (!r.err && !ns.empty()) {
        std::sort(ns.begin(), ns.end());
        r.a = ns[ns.size() / 2];
        r.b = ns[std::min(ns.size() - 1, ns.size() * 99 / 100)];
      }
      break;
    }
    case Op::kExec: {
      int p[2];
      if (::pipe2(p, O_CLOEXEC) != 0) {
        r.err = errno;
        break;
      }
      pid_t pid = ::fork();
      if (pid == 0) {
        char* argv[] = {const_cast<char*>(c.path), nullptr};
        char* envp[] = {nullptr};
        ::execve(c.path, argv, envp);
        int e = errno;
        (void)!::write(p[1], &e, sizeof(e));
        _exit(127);
      }
      ::close(p[1]);
      int e = 0;
      if (::read(p[0], &e, sizeof(e)) != sizeof(e)) e = 0;  // EOF: exec worked
      ::close(p[0]);
      ::waitpid(pid, nullptr, 0);
      r.err = e;
      break;
    }
    case Op::kNestedOpen: {
      pid_t pid = ::fork();
      if (pid == 0) {
        if (::setgroups(0, nullptr) != 0 || ::setresgid(65534, 65534, 65534) != 0 ||
            ::setresuid(65534, 65534, 65534) != 0)
          _exit(200);
        if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) _exit(201);
        _exit(open_variant(0, c.path, O_RDONLY));
      }
      r.err = wait_status_errno(pid);
      break;
    }
    case Op::kExit:
      break;
  }
  return r;
}

int serve(int sock) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  Reply ready = {};
  if (::unshare(CLONE_NEWNS) != 0)
    ready.err = errno;
  else if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    ready.err = errno;
  if (::send(sock, &ready, sizeof(ready), 0) != sizeof(ready) || ready.err) return 1;
  Command c;
  while (::recv(sock, &c, sizeof(c), 0) == sizeof(c)) {
    if (c.op == Op::kExit) return 0;
    Reply r = serve_one(c);
    if (::send(sock, &r, sizeof(r), 0) != sizeof(r)) return 1;
  }
  return 0;
}

class SessionChild {
 public:
  SessionChild() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
      throw std::runtime_error(std::string("socketpair: ") + std::strerror(errno));
    pid_ = ::fork();
    if (pid_ < 0) throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    if (pid_ == 0) {
      ::close(sv[0]);
      _exit(serve(sv[1]));
    }
    ::close(sv[1]);
    sock_.reset(sv[0]);
    timeval tv = {30, 0};  // a guard that stops answering fails the test, not hangs it
    ::setsockopt(sock_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    Reply r = {};
    if (::recv(sock_.get(), &r, sizeof(r), 0) != sizeof(r))
      throw std::runtime_error("session child did not start");
    if (r.err) throw std::runtime_error(std::string("session child: ") + std::strerror(r.err));
  }
  ~SessionChild() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  pid_t pid() const { return pid_; }

  void send(Op op, const std::string& path, int flags = 0, int variant = 0, int count = 0,
            const std::string& path2 = "") {
    Command c = {};
    c.op = op;
    c.flags = flags;
    c.variant = variant;
    c.count = count;
    std::snprintf(c.path, sizeof(c.path), "%s", path.c_str());
    std::snprintf(c.path2, sizeof(c.path2), "%s", path2.c_str());
    if (::send(sock_.get(), &c, sizeof(c), 0) != sizeof(c))
      throw std::runtime_error(std::string("send to session child: ") + std::strerror(errno));
  }
  bool reply_ready(int timeout_ms) {
    pollfd p = {sock_.get(), POLLIN, 0};
    return ::poll(&p, 1, timeout_ms) == 1;
  }
  Reply receive() {
    Reply r = {};
    if (::recv(sock_.get(), &r, sizeof(r), 0) != sizeof(r))
      throw std::runtime_error("no reply from the session child (blocked in an open?)");
    return r;
  }
  Reply call(Op op, const std::string& path, int flags = 0, int variant = 0, int count = 0,
             const std::string& path2 = "") {
    send(op, path, flags, variant, count, path2);
    return receive();
  }
  int open(const std::string& path, int flags = O_RDONLY, int variant = 0) {
    return call(Op::kOpen, path, flags, variant).err;
  }

 private:
  pid_t pid_ = -1;
  UniqueFd sock_;
};

std::string errno_name(int e) { return e ? std::strerror(e) : "success"; }

std::string fmt_us(int64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", static_cast<double>(ns) / 1000.0);
  return buf;
}

class FanotifyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FANOTIFY_REQUIRE_ROOT();
    char tmpl[] = "/tmp/corral-fanotify-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    ::chmod(dir_.c_str(), 0755);
    // Forked before any thread exists.
    child_ = std::make_unique<SessionChild>();
  }
  void TearDown() override {
    child_.reset();  // killed first: nothing is left waiting for an answer
    guard_.reset();
    if (!dir_.empty()) {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }

  void start_guard() {
    guard_ = std::make_unique<FanotifyGuard>(child_->pid(), [this](const FileAccess& a) {
      std::function<Verdict(const FileAccess&)> decide;
      // read while the opener is still blocked: the copy keeps them
      (void)a.pid();
      (void)a.exec();
      {
        std::lock_guard lock(mu_);
        seen_.push_back(a);
        decide = decide_;
      }
      return decide ? decide(a) : Verdict::kAllow;
    });
    guard_->start();
  }
  void set_decider(std::function<Verdict(const FileAccess&)> d) {
    std::lock_guard lock(mu_);
    decide_ = std::move(d);
  }
  std::vector<FileAccess> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }
  size_t calls_for(const std::string& path) {
    std::lock_guard lock(mu_);
    return std::count_if(seen_.begin(), seen_.end(), [&](const FileAccess& a) { return a.path == path; });
  }
  size_t calls() {
    std::lock_guard lock(mu_);
    return seen_.size();
  }
  // The guard places a cache mark just after its answer: waits until `n`
  // are in, so that the next open meets them.
  void await_cached(uint64_t n) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (guard_->stats().cached < n && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ASSERT_GE(guard_->stats().cached, n) << "no cache mark placed";
  }
  std::string file(const std::string& rel, const std::string& content = "data\n") {
    std::string p = dir_ + "/" + rel;
    fs::create_directories(fs::path(p).parent_path());
    std::ofstream(p) << content;
    ::chmod(p.c_str(), 0644);
    return p;
  }

  std::string dir_;
  std::unique_ptr<SessionChild> child_;
  std::unique_ptr<FanotifyGuard> guard_;
  std::mutex mu_;
  std::function<Verdict(const FileAccess&)> decide_;
  std::vector<FileAccess> seen_;
};

bool ends_with(const std::string& s, std::string_view suffix) { return s.ends_with(suffix); }

// 1. A secret is denied in the session; the host opens it without the
// supervisor ever hearing of it.
TEST_F(FanotifyTest, SecretDeniedInSessionOnly) {
  std::string secret = file("project/.env", "TOKEN=hunter2\n");
  std::string plain = file("project/main.c");
  set_decider([](const FileAccess& a) { return ends_with(a.path, ".env") ? Verdict::kDeny : Verdict::kAllow; });
  start_guard();

  EXPECT_EQ(child_->open(secret), EPERM);
  EXPECT_EQ(child_->open(plain), 0);
  EXPECT_EQ(calls_for(secret), 1u);

  struct stat st;
  ASSERT_EQ(::stat(secret.c_str(), &st), 0);
  auto log = seen();
  auto it = std::find_if(log.begin(), log.end(), [&](const FileAccess& a) { return a.path == secret; });
  ASSERT_NE(it, log.end());
  EXPECT_EQ(it->pid(), child_->pid());
  EXPECT_EQ(it->tid, child_->pid());
  EXPECT_EQ(it->dev, st.st_dev);
  EXPECT_EQ(it->ino, st.st_ino);
  EXPECT_TRUE(it->write_known());
  EXPECT_FALSE(it->write());
  EXPECT_FALSE(it->exec());
  EXPECT_FALSE(it->deleted);

  size_t before = calls();
  std::ifstream host(secret);
  std::string content;
  std::getline(host, content);
  EXPECT_EQ(content, "TOKEN=hunter2");
  int fd = ::open(secret.c_str(), O_RDWR | O_CLOEXEC);
  EXPECT_GE(fd, 0) << std::strerror(errno);
  if (fd >= 0) ::close(fd);
  EXPECT_EQ(calls(), before) << "the host's opens reached the decider";

  auto s = guard_->stats();
  EXPECT_GE(s.events, 2u);
  EXPECT_EQ(s.denied, 1u);
}

// 2. Other names for the same file: all denied when the decider matches
// on identity; a mount made after marking is seen only after a rescan.
TEST_F(FanotifyTest, AliasesDeniedByIdentity) {
  std::string secret = file("a/.env", "TOKEN=1\n");
  fs::create_directories(dir_ + "/b");
  fs::create_directories(dir_ + "/mnt");
  std::string hardlink = dir_ + "/b/notes.txt";
  ASSERT_EQ(::link(secret.c_str(), hardlink.c_str()), 0) << std::strerror(errno);
  std::string symlink = dir_ + "/b/link";
  ASSERT_EQ(::symlink(secret.c_str(), symlink.c_str()), 0) << std::strerror(errno);
  struct stat st;
  ASSERT_EQ(::stat(secret.c_str(), &st), 0);
  dev_t dev = st.st_dev;
  ino_t ino = st.st_ino;
  set_decider([=](const FileAccess& a) {
    return (a.dev == dev && a.ino == ino) || ends_with(a.path, ".env") ? Verdict::kDeny : Verdict::kAllow;
  });
  start_guard();

  EXPECT_EQ(child_->open(secret), EPERM);
  EXPECT_EQ(child_->open(hardlink), EPERM);
  EXPECT_EQ(calls_for(hardlink), 1u) << "a hard link shows its own name: identity caught it";
  EXPECT_EQ(child_->open(symlink), EPERM);
  EXPECT_EQ(child_->open("/proc/self/root" + secret), EPERM);
  EXPECT_EQ(child_->open(dir_ + "/b/../a/./.env"), EPERM);
  ASSERT_EQ(child_->call(Op::kChdir, dir_ + "/b").err, 0);
  EXPECT_EQ(child_->open("../a/.env"), EPERM);
  EXPECT_EQ(child_->open("notes.txt"), EPERM);
  EXPECT_EQ(child_->open("/proc/self/cwd/notes.txt"), EPERM);
  EXPECT_EQ(child_->open(dir_ + "/b/main.c", O_WRONLY | O_CREAT), 0) << "other files still open";

  // A bind mount made inside the session after the guard marked the
  // namespace is a new, unmarked mount: not seen until rescan_mounts().
  ASSERT_EQ(child_->call(Op::kBindMount, dir_ + "/a", 0, 0, 0, dir_ + "/mnt").err, 0);
  size_t before = calls();
  EXPECT_EQ(child_->open(dir_ + "/mnt/.env"), 0) << "documented gap: new mounts are unmarked";
  EXPECT_EQ(calls(), before);
  EXPECT_EQ(guard_->rescan_mounts(), 1u);
  EXPECT_EQ(guard_->rescan_mounts(), 0u);
  EXPECT_EQ(child_->open(dir_ + "/mnt/.env"), EPERM);
  // The host never saw the bind mount (private propagation).
  EXPECT_FALSE(fs::exists(dir_ + "/mnt/.env"));
}

// 3. Write intent from the blocked thread's syscall.
TEST_F(FanotifyTest, WriteIntent) {
  std::string prot = file("protected.txt");
  std::string tool = dir_ + "/forbidden-tool";
  std::string ok_tool = dir_ + "/ok-tool";
  fs::copy_file("/bin/true", tool);
  fs::copy_file("/bin/true", ok_tool);
  ::chmod(tool.c_str(), 0755);
  ::chmod(ok_tool.c_str(), 0755);
  set_decider([](const FileAccess& a) {
    if (ends_with(a.path, "/protected.txt") && a.write()) return Verdict::kDeny;
    if (ends_with(a.path, "/forbidden-tool") && a.exec()) return Verdict::kDeny;
    return Verdict::kAllow;
  });
  start_guard();

  EXPECT_EQ(child_->open(prot, O_RDONLY), 0);
  EXPECT_EQ(child_->open(prot, O_RDONLY, 1), 0) << "open(2)";
  EXPECT_EQ(child_->open(prot, O_WRONLY), EPERM);
  EXPECT_EQ(child_->open(prot, O_RDWR, 1), EPERM) << "open(2)";
  EXPECT_EQ(child_->open(prot, O_RDONLY | O_TRUNC), EPERM);
  EXPECT_EQ(child_->open(prot, O_WRONLY | O_APPEND), EPERM);
  EXPECT_EQ(child_->open(prot, 0, 2), EPERM) << "creat(2)";
  EXPECT_EQ(child_->open(prot, O_RDWR | O_CREAT, 3), EPERM) << "openat2";
  // openat2's flags live in user memory another thread could rewrite: not
  // trusted, so even a read-only openat2 counts as a write (fail closed).
  size_t before = seen().size();
  EXPECT_EQ(child_->open(prot, O_RDONLY, 3), EPERM) << "openat2 read-only";
  auto log = seen();
  ASSERT_GT(log.size(), before);
  EXPECT_FALSE(log.back().write_known());
  EXPECT_TRUE(log.back().write());

  std::ifstream in(prot);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "data") << "a denied write open must not have truncated the file";

  EXPECT_EQ(child_->call(Op::kExec, tool).err, EPERM);
  EXPECT_EQ(child_->call(Op::kExec, ok_tool).err, 0);
  log = seen();
  bool saw_exec = false;
  for (const auto& a : log) {
    if (a.path != ok_tool) continue;
    EXPECT_FALSE(a.write());
    EXPECT_TRUE(a.write_known());
    EXPECT_TRUE(a.exec());
    saw_exec = true;
  }
  EXPECT_TRUE(saw_exec);
}

// An unlinked file: the kernel's " (deleted)" suffix is stripped, flagged.
TEST_F(FanotifyTest, UnlinkedFileIsFlagged) {
  set_decider([](const FileAccess&) { return Verdict::kAllow; });
  start_guard();
  EXPECT_EQ(child_->open(dir_, O_TMPFILE | O_RDWR), 0);
  auto log = seen();
  ASSERT_EQ(log.size(), 1u);
  EXPECT_TRUE(log[0].deleted);
  EXPECT_TRUE(log[0].path.starts_with(dir_ + "/")) << log[0].path;
  EXPECT_FALSE(log[0].path.ends_with(" (deleted)")) << log[0].path;
  EXPECT_TRUE(log[0].write());
  EXPECT_TRUE(log[0].write_known());
}

// A group-writable file's access ACL is seen: its group bits are the
// ACL's mask, and a named user may write it though neither its owner nor
// in its group (so an allow of it is not cached for that user).
TEST_F(FanotifyTest, AccessAclIsSeen) {
  const std::string acl = file("acl.txt"), plain = file("plain.txt");
  ASSERT_EQ(::chmod(plain.c_str(), 0664), 0);
  // user::rw- user:65534:rw- group::r-- mask::rw- other::r--, as the kernel
  // stores it (version 2, then tag, permissions, id per entry)
  struct __attribute__((packed)) Entry {
    uint16_t tag, perm;
    uint32_t id;
  };
  struct __attribute__((packed)) {
    uint32_t version = 2;
    Entry e[5] = {{0x01, 6, ~0u}, {0x02, 6, 65534}, {0x04, 4, ~0u}, {0x10, 6, ~0u}, {0x20, 4, ~0u}};
  } xattr;
  ASSERT_EQ(::setxattr(acl.c_str(), "system.posix_acl_access", &xattr, sizeof(xattr), 0), 0)
      << std::strerror(errno);
  set_decider([](const FileAccess&) { return Verdict::kAllow; });
  start_guard();
  ASSERT_EQ(child_->open(acl), 0);
  ASSERT_EQ(child_->open(plain), 0);
  auto log = seen();
  ASSERT_EQ(log.size(), 2u);
  EXPECT_EQ(log[0].path, acl);
  EXPECT_TRUE(log[0].mode & S_IWGRP);
  EXPECT_TRUE(log[0].acl_write);
  EXPECT_EQ(log[1].path, plain);
  EXPECT_FALSE(log[1].acl_write);
  // a local filesystem: its mode bits decide
  EXPECT_FALSE(log[0].foreign_permissions);
  EXPECT_FALSE(log[1].foreign_permissions);
}

// 4. kAllowCache: asked once, then the kernel lets the inode through
// until the file changes.
TEST_F(FanotifyTest, CacheAsksOnce) {
  std::string cached = file("cached.txt");
  std::string uncached = file("uncached.txt");
  set_decider([&](const FileAccess& a) { return a.path == cached ? Verdict::kAllowCache : Verdict::kAllow; });
  start_guard();

  ASSERT_EQ(child_->open(cached), 0);
  await_cached(1);
  for (int i = 0; i < 99; i++) ASSERT_EQ(child_->open(cached), 0);
  for (int i = 0; i < 5; i++) ASSERT_EQ(child_->open(uncached), 0);
  EXPECT_EQ(calls_for(cached), 1u);
  EXPECT_EQ(calls_for(uncached), 5u);
  EXPECT_EQ(guard_->stats().cached, 1u);

  // A change of the file, by anyone, drops the mark (root updating a
  // system library the agent cannot write, say).
  std::ofstream(cached, std::ios::app) << "changed\n";
  ASSERT_EQ(child_->open(cached), 0);
  EXPECT_EQ(calls_for(cached), 2u) << "a cached allow outlived a change of the file";
}

// 5. reset_cache(): cached allows are dropped, enforcement never pauses.
TEST_F(FanotifyTest, ResetCache) {
  std::string cached = file("cached.txt");
  std::string secret = file("secret.env");
  std::atomic<bool> deny_cached{false};
  set_decider([&](const FileAccess& a) {
    if (a.path == secret) return Verdict::kDeny;
    if (a.path == cached) return deny_cached ? Verdict::kDeny : Verdict::kAllowCache;
    return Verdict::kAllow;
  });
  start_guard();

  ASSERT_EQ(child_->open(cached), 0);
  await_cached(1);
  for (int i = 0; i < 9; i++) ASSERT_EQ(child_->open(cached), 0);
  EXPECT_EQ(calls_for(cached), 1u);
  guard_->reset_cache();
  EXPECT_EQ(child_->open(cached), 0);
  EXPECT_EQ(calls_for(cached), 2u) << "asked again after reset_cache()";
  await_cached(2);

  // A policy reload that now denies the cached file: the stale allow holds
  // until the reset, and no longer after it.
  deny_cached = true;
  EXPECT_EQ(child_->open(cached), 0) << "cached allow (kernel side) before the reset";
  guard_->reset_cache();
  EXPECT_EQ(child_->open(cached), EPERM);
  deny_cached = false;
  guard_->reset_cache();

  // Resets in a tight loop while the child opens the secret and the
  // cached file: the secret never opens, the cached file never fails.
  child_->send(Op::kOpenLoop, secret, 0, 0, 3000, cached);
  int resets = 0;
  while (!child_->reply_ready(0)) {
    guard_->reset_cache();
    resets++;
  }
  Reply r = child_->receive();
  EXPECT_EQ(r.a, 0) << "opens of the secret that slipped through during " << resets << " resets";
  EXPECT_EQ(r.b, 0) << "opens of an allowed file that failed during resets";
  EXPECT_GT(resets, 10);
  EXPECT_EQ(guard_->stats().denied, 3001u);
}

// 6. Never the host's mounts.
TEST_F(FanotifyTest, RefusesHostNamespace) {
  auto allow = [](const FileAccess&) { return Verdict::kAllow; };
  try {
    FanotifyGuard g(::getpid(), allow);
    ADD_FAILURE() << "guarded our own mount namespace";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("shares the supervisor's mount namespace"), std::string::npos)
        << e.what();
  }
  pid_t host_child = ::fork();
  if (host_child == 0) {
    ::pause();
    _exit(0);
  }
  EXPECT_THROW(FanotifyGuard(host_child, allow), std::runtime_error);
  ::kill(host_child, SIGKILL);
  ::waitpid(host_child, nullptr, 0);
  try {
    FanotifyGuard g(host_child, allow);
    ADD_FAILURE() << "guarded a pid that is gone";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
  }
}

// 7. A decider that throws: deny, keep going.
TEST_F(FanotifyTest, DeciderFailureDenies) {
  std::string boom = file("boom.txt");
  std::string fine = file("fine.txt");
  set_decider([&](const FileAccess& a) {
    if (a.path == boom) throw std::runtime_error("policy exploded");
    return Verdict::kAllow;
  });
  start_guard();
  EXPECT_EQ(child_->open(boom), EPERM);
  EXPECT_EQ(child_->open(fine), 0);
  EXPECT_EQ(child_->open(boom), EPERM);
  EXPECT_EQ(child_->open(fine), 0);
  auto s = guard_->stats();
  EXPECT_EQ(s.errors, 2u);
  EXPECT_EQ(s.denied, 2u);
}

// Opening a FIFO, or a device whose open waits, must not stall the guard:
// the kernel opens the event's file for us inside read(), so without
// O_NONBLOCK that read() would wait for a writer that never comes (on
// kernels that send permission events for FIFOs).
TEST_F(FanotifyTest, FifoDoesNotStallTheGuard) {
  std::string fifo = dir_ + "/pipe";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0644), 0) << std::strerror(errno);
  std::string fine = file("fine.txt");
  set_decider([](const FileAccess&) { return Verdict::kAllow; });
  start_guard();
  EXPECT_EQ(child_->open(fifo, O_RDONLY | O_NONBLOCK), 0);
  EXPECT_EQ(child_->open(fine), 0);
  // 6.14+ sends permission events for regular files and directories only.
  EXPECT_LE(calls_for(fifo), 1u);
}

// Known gap, pinned: a new mount namespace made inside the session is a copy
// of NEW struct mounts, which carry no mark, and an unprivileged process can
// make one behind a user namespace. The launcher must forbid it (seccomp on
// unshare/clone/clone3/setns); when it does, this test moves to the
// launcher's suite with the opposite expectation.
TEST_F(FanotifyTest, KnownGapNestedMountNamespaceIsNotGuarded) {
  std::string secret = file("secret.env");
  set_decider([&](const FileAccess& a) { return a.path == secret ? Verdict::kDeny : Verdict::kAllow; });
  start_guard();
  ASSERT_EQ(child_->open(secret), EPERM);
  int e = child_->call(Op::kNestedOpen, secret).err;
  if (e == 201) GTEST_SKIP() << "unprivileged user namespaces are disabled here: no gap";
  EXPECT_EQ(e, 0) << errno_name(e);
  EXPECT_EQ(calls_for(secret), 1u);
}

TEST_F(FanotifyTest, Latency) {
  std::string plain = file("lat-plain.txt");
  std::string uncached = file("lat-uncached.txt");
  std::string cached = file("lat-cached.txt");
  constexpr int kOpens = 2000;
  Reply base = child_->call(Op::kTimeOpens, plain, 0, 0, kOpens);
  ASSERT_EQ(base.err, 0) << errno_name(base.err);
  set_decider([&](const FileAccess& a) { return a.path == cached ? Verdict::kAllowCache : Verdict::kAllow; });
  start_guard();
  Reply u = child_->call(Op::kTimeOpens, uncached, 0, 0, kOpens);
  ASSERT_EQ(u.err, 0) << errno_name(u.err);
  ASSERT_EQ(child_->open(cached), 0);  // decided, then cached
  await_cached(1);
  Reply c = child_->call(Op::kTimeOpens, cached, 0, 0, kOpens);
  ASSERT_EQ(c.err, 0) << errno_name(c.err);
  EXPECT_EQ(calls_for(uncached), static_cast<size_t>(kOpens));
  EXPECT_EQ(calls_for(cached), 1u);
  auto us = [](int64_t ns) { return fmt_us(ns); };
  std::printf("fanotify open latency: uncached p50=%sus p99=%sus; cached p50=%sus p99=%sus "
              "(no guard: p50=%sus p99=%sus)\n",
              us(u.a).c_str(), us(u.b).c_str(), us(c.a).c_str(), us(c.b).c_str(), us(base.a).c_str(),
              us(base.b).c_str());
}

TEST(FanotifyMountinfo, DecodesMountpoints) {
  std::string text =
      "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n"
      "60 27 0:50 / /home/a\\040b/x\\134y rw shared:3 master:1 - tmpfs tmpfs rw\n"
      "61 27 0:51 / /mnt/tab\\011 rw - overlay overlay rw,lowerdir=/a\n"
      "bogus line\n";
  auto m = parse_mountinfo(text);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[0].id, 27);
  EXPECT_EQ(m[0].mountpoint, "/");
  EXPECT_EQ(m[0].fstype, "ext4");
  EXPECT_EQ(m[1].id, 60);
  EXPECT_EQ(m[1].mountpoint, "/home/a b/x\\y");
  EXPECT_EQ(m[1].fstype, "tmpfs");
  EXPECT_EQ(m[2].mountpoint, "/mnt/tab\t");
  EXPECT_EQ(m[2].fstype, "overlay");
}

}  // namespace
}  // namespace corral
