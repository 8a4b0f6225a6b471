// SessionLimits against the real kernel, as root: a fork bomb stays under its
// pids limit, a memory hog is OOM-killed inside its group (the test, outside
// it, lives on), bad limits are refused in one line, and no group is left behind.
// Whichever hierarchy the host offers is used: v2 or, on hybrid hosts, v1.
#include "cgroup_limits.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "cgroup2.h"

namespace corral {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr uint64_t kPids = 50;
constexpr uint64_t kMemory = 64ull << 20;

bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Why this host cannot limit pids and memory; "" when it can.
std::string missing_controllers() {
  std::string root = find_cgroup2_mount();
  if (root.empty()) return "cgroup2 is not mounted";
  std::istringstream v2(slurp(root + "/cgroup.controllers"));
  std::vector<std::string> offered{std::istream_iterator<std::string>(v2), {}};
  std::string mountinfo = slurp("/proc/self/mountinfo");
  for (const char* c : {"pids", "memory"})
    if (std::find(offered.begin(), offered.end(), c) == offered.end() &&
        find_cgroup1_mount(mountinfo, c).empty())
      return std::string("no cgroup hierarchy offers the ") + c + " controller";
  return "";
}

// Under CI=true a missing privilege or controller is a failure; elsewhere a
// skip.
#define LIMITS_REQUIRE(why)                                  \
  do {                                                       \
    std::string reason = (why);                              \
    if (!reason.empty()) {                                   \
      if (running_in_ci()) FAIL() << reason << " (CI=true)"; \
      GTEST_SKIP() << reason;                                \
    }                                                        \
  } while (0)

bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

// Reaps the orphans a killed group hands to us (the test is their subreaper):
// until then they hold their pids.
void reap_orphans() {
  while (::waitpid(-1, nullptr, WNOHANG | __WALL) > 0) {
  }
}

// A child that waits for go() before running `body`, so that it is in its
// groups before it forks or allocates. Killed and reaped at destruction.
class HeldChild {
 public:
  explicit HeldChild(void (*body)()) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      throw std::system_error(errno, std::generic_category(), "pipe2");
    pid_ = ::fork();
    if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
    if (pid_ == 0) {
      ::close(fds[1]);
      char c;
      if (::read(fds[0], &c, 1) != 1) ::_exit(127);
      body();
      ::_exit(0);
    }
    ::close(fds[0]);
    go_ = fds[1];
  }
  ~HeldChild() {
    if (go_ >= 0) ::close(go_);
    if (!reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  HeldChild(const HeldChild&) = delete;
  HeldChild& operator=(const HeldChild&) = delete;

  pid_t pid() const { return pid_; }
  void go() {
    ASSERT_EQ(::write(go_, "g", 1), 1);
    ::close(go_);
    go_ = -1;
  }
  // The wait status, or -1 when the child is still running at the timeout.
  int wait(std::chrono::milliseconds timeout) {
    int status = -1;
    eventually([&] { return ::waitpid(pid_, &status, WNOHANG) == pid_; }, timeout);
    reaped_ = status != -1;
    return status;
  }

 private:
  pid_t pid_ = -1;
  int go_ = -1;
  bool reaped_ = false;
};

void pause_forever() {
  for (;;) ::pause();
}

// Forks made by the bomb, shared by all its processes: should the limit not
// hold, the bomb stops at kBombCap instead of taking the host's pids.
constexpr int kBombCap = 1000;
std::atomic<int>* bomb_forks = nullptr;

// A counter the test's children share, unmapped at destruction.
class SharedCounter {
 public:
  SharedCounter() {
    void* p = ::mmap(nullptr, sizeof(std::atomic<int>), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::system_error(errno, std::generic_category(), "mmap");
    counter_ = new (p) std::atomic<int>(0);
  }
  ~SharedCounter() { ::munmap(counter_, sizeof(std::atomic<int>)); }
  SharedCounter(const SharedCounter&) = delete;
  SharedCounter& operator=(const SharedCounter&) = delete;
  std::atomic<int>* get() const { return counter_; }

 private:
  std::atomic<int>* counter_;
};

// Every process forks for ever; at the limit, fork fails and it tries again.
void fork_bomb() {
  for (;;) {
    if (bomb_forks->load() >= kBombCap) pause_forever();
    pid_t child = ::fork();
    if (child < 0)
      ::usleep(10000);  // gently: two cores are shared
    else if (child > 0)
      bomb_forks->fetch_add(1);
  }
}

// Touches 200 MiB; exits 0 only if no limit stopped it.
void memory_hog() {
  constexpr size_t kSize = 200ull << 20;
  auto* p = static_cast<char*>(
      ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (p == MAP_FAILED) ::_exit(2);
  for (size_t i = 0; i < kSize; i += 4096) p[i] = 1;
  ::_exit(0);
}

void three_children_then_pause() {
  for (int i = 0; i < 3; i++)
    if (::fork() == 0) pause_forever();
  pause_forever();
}

bool is_v1(const std::string& group, const std::string& v2_root) {
  return !group.empty() && group.rfind(v2_root + "/", 0) != 0;
}

class LimitsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LIMITS_REQUIRE(::geteuid() == 0 ? "" : "limits tests need root");
    LIMITS_REQUIRE(missing_controllers());
    root_ = find_cgroup2_mount();
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  }
  void TearDown() override {
    eventually(
        [] {
          reap_orphans();
          return ::waitpid(-1, nullptr, WNOHANG | __WALL) < 0 && errno == ECHILD;
        },
        5s);
  }

  // `<supervisor pid>-<id>`, the form the sweeps parse.
  static std::string session_name() {
    return std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
  }

  std::string root_;
};

TEST_F(LimitsTest, ForkBombStaysUnderPidsLimit) {
  std::string pids_group;
  std::string memory_group;
  {
    std::string name = session_name();
    Cgroup session(root_, name);
    SessionLimits limits(root_, name, {.max_pids = kPids, .max_memory_bytes = kMemory});
    pids_group = limits.pids_group();
    memory_group = limits.memory_group();
    ASSERT_FALSE(pids_group.empty());
    std::cout << "pids in " << pids_group << ", memory in " << memory_group << "\n";

    SharedCounter forks;
    bomb_forks = forks.get();
    HeldChild bomb(fork_bomb);
    session.add_pid(bomb.pid());
    limits.add_pid(bomb.pid());
    bomb.go();

    uint64_t most = 0;
    SessionLimits::Usage u;
    bool saturated = eventually(
        [&] {
          u = limits.read();
          most = std::max<uint64_t>(most, u.pids_current);
          return u.pids_current == kPids && u.pids_max_hits > 0;
        },
        20s);
    // Watch it push against the limit a while longer.
    for (int i = 0; i < 100; i++) {
      u = limits.read();
      most = std::max<uint64_t>(most, u.pids_current);
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_TRUE(saturated) << "pids.current " << u.pids_current << ", refused forks "
                           << u.pids_max_hits;
    EXPECT_LE(most, kPids);
    EXPECT_LE(u.pids_peak, kPids);  // 0 on kernels without pids.peak
    EXPECT_GT(u.pids_max_hits, 0u);
    EXPECT_LE(session.pids().size(), kPids);
    std::cout << "most " << most << ", peak " << u.pids_peak << ", refused forks "
              << u.pids_max_hits << "\n";

    // The host still forks.
    pid_t probe = ::fork();
    if (probe == 0) ::_exit(7);
    ASSERT_GT(probe, 0);
    int status = 0;
    ASSERT_EQ(::waitpid(probe, &status, 0), probe);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 7);

    session.kill();
    status = bomb.wait(10s);
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
    EXPECT_TRUE(eventually(
        [&] {
          reap_orphans();
          return limits.read().pids_current == 0;
        },
        10s));
  }
  EXPECT_FALSE(fs::exists(pids_group)) << pids_group;
  EXPECT_FALSE(fs::exists(memory_group)) << memory_group;
}

TEST_F(LimitsTest, MemoryHogIsOomKilledInItsGroup) {
  std::string memory_group;
  {
    std::string name = session_name();
    Cgroup session(root_, name);
    SessionLimits limits(root_, name, {.max_pids = kPids, .max_memory_bytes = kMemory});
    memory_group = limits.memory_group();
    ASSERT_FALSE(memory_group.empty());

    HeldChild hog(memory_hog);
    session.add_pid(hog.pid());
    limits.add_pid(hog.pid());
    hog.go();
    int status = hog.wait(60s);
    ASSERT_NE(status, -1) << "the hog still runs after 60 s";
    EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "the hog was not OOM-killed: status " << status;

    SessionLimits::Usage u = limits.read();
    std::cout << "oom kills " << u.oom_kills << ", peak " << u.memory_peak_bytes << " bytes\n";
    EXPECT_GE(u.oom_kills, 1u);
    EXPECT_LE(u.memory_peak_bytes, kMemory);
    EXPECT_GT(u.memory_peak_bytes, kMemory / 2) << "the hog never reached the limit";
  }
  EXPECT_FALSE(fs::exists(memory_group)) << memory_group;
}

TEST_F(LimitsTest, KernelRefusalNamesTheFileAndLeavesNothing) {
  std::string name = session_name();
  Cgroup session(root_, name);
  std::string mountinfo = slurp("/proc/self/mountinfo");
  std::string v1_pids = find_cgroup1_mount(mountinfo, "pids");
  std::string v1_memory = find_cgroup1_mount(mountinfo, "memory");
  // Above PID_MAX_LIMIT: pids.max refuses it, in v1 and v2 alike.
  try {
    SessionLimits limits(root_, name, {.max_pids = 5'000'000, .max_memory_bytes = kMemory});
    FAIL() << "a pids limit above PID_MAX_LIMIT was accepted";
  } catch (const std::system_error& e) {
    std::string what = e.what();
    std::cout << what << "\n";
    EXPECT_NE(what.find("/pids.max"), std::string::npos) << what;
    EXPECT_NE(what.find("Invalid argument"), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
  for (const std::string& mount : {v1_pids, v1_memory}) {
    if (!mount.empty()) {
      EXPECT_FALSE(fs::exists(mount + "/corral/" + name)) << mount;
    }
  }
}

TEST_F(LimitsTest, DestructorKillsWhatIsLeftInV1Groups) {
  std::string name = session_name();
  Cgroup session(root_, name);
  auto limits = std::make_unique<SessionLimits>(root_, name, LimitSpec{.max_pids = kPids});
  std::string group = limits->pids_group();
  if (!is_v1(group, root_))
    GTEST_SKIP() << "pids is limited in the v2 session directory, which Cgroup removes";

  HeldChild family(three_children_then_pause);
  limits->add_pid(family.pid());
  family.go();
  ASSERT_TRUE(eventually([&] { return limits->read().pids_current == 4; }, 10s));

  limits.reset();
  int status = family.wait(10s);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  EXPECT_FALSE(fs::exists(group)) << group;
}

TEST_F(LimitsTest, SweepRemovesGroupsOfDeadSupervisors) {
  std::string mountinfo = slurp("/proc/self/mountinfo");
  std::vector<std::string> mounts;
  for (const char* c : {"pids", "memory"})
    if (std::string m = find_cgroup1_mount(mountinfo, c); !m.empty()) mounts.push_back(m);
  if (mounts.empty()) GTEST_SKIP() << "no v1 hierarchy: stale v2 groups are Cgroup::sweep_stale's";

  pid_t dead = ::fork();
  if (dead == 0) ::_exit(0);
  ASSERT_EQ(::waitpid(dead, nullptr, 0), dead);
  std::string name = std::to_string(dead) + "-stale";

  // What a supervisor killed with -9 leaves: groups with a process inside.
  struct Dirs {
    std::vector<std::string> paths;
    ~Dirs() {
      for (const auto& p : paths) ::rmdir(p.c_str());
    }
  } dirs;
  HeldChild orphan(pause_forever);
  for (const auto& m : mounts) {
    ::mkdir((m + "/corral").c_str(), 0755);
    std::string dir = m + "/corral/" + name;
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0) << dir << ": " << std::strerror(errno);
    dirs.paths.push_back(dir);
    std::ofstream(dir + "/cgroup.procs") << orphan.pid();
  }
  orphan.go();

  SessionLimits::sweep_stale();
  int status = orphan.wait(10s);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "status " << status;
  for (const auto& dir : dirs.paths) EXPECT_FALSE(fs::exists(dir)) << dir;
}

// ---- no kernel needed ------------------------------------------------------

TEST(LimitSpec, BelowMinimumIsRefusedInOneLine) {
  auto message = [](const LimitSpec& spec) {
    try {
      validate_limits(spec);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(message({.max_pids = 1}),
            "max pids 1 is below the minimum of 2 (the session's init and the agent)");
  EXPECT_EQ(message({.max_memory_bytes = 64}), "max memory 64 bytes is below the minimum of 8 MiB");
  EXPECT_EQ(message({.max_open_files = 3}), "max open files 3 is below the minimum of 16");
  EXPECT_EQ(message({.max_pids = 2, .max_memory_bytes = 8 << 20, .max_open_files = 16}),
            "accepted");
  // The constructor refuses before it touches any cgroup.
  EXPECT_THROW(SessionLimits("/nonexistent", "1-x", {.max_pids = 0}), std::invalid_argument);
}

TEST(LimitSpec, NoLimitsTouchesNothing) {
  SessionLimits limits("/nonexistent", "1-x", {});
  EXPECT_EQ(limits.pids_group(), "");
  EXPECT_EQ(limits.memory_group(), "");
  SessionLimits::Usage u = limits.read();
  EXPECT_EQ(u.pids_current + u.pids_max_hits + u.memory_peak_bytes + u.oom_kills, 0u);
}

TEST(FindCgroup1Mount, ControllerIsASuperOption) {
  const char* mountinfo =
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
      "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
      "35 31 0:32 / /sys/fs/cgroup/mem\\040ory rw,relatime - cgroup cgroup rw,memory\n"
      "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
      "50 31 0:40 / /mnt/pids shared:9 - cgroup none rw,nosuid,pids\n";
  EXPECT_EQ(find_cgroup1_mount(mountinfo, "cpuacct"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(find_cgroup1_mount(mountinfo, "cpu"), "/sys/fs/cgroup/cpu,cpuacct");
  EXPECT_EQ(find_cgroup1_mount(mountinfo, "memory"), "/sys/fs/cgroup/mem ory");
  EXPECT_EQ(find_cgroup1_mount(mountinfo, "pids"), "/mnt/pids");
  EXPECT_EQ(find_cgroup1_mount(mountinfo, "systemd"), "");
  EXPECT_EQ(find_cgroup1_mount(mountinfo, "hugetlb"), "");
  EXPECT_EQ(find_cgroup1_mount("", "pids"), "");
}

TEST(SessionRlimits, NoCoreAndOpenFilesUnderTheHardLimit) {
  auto none = session_rlimits({}, 1048576);
  ASSERT_EQ(none.size(), 1u);
  EXPECT_EQ(none[0].resource, RLIMIT_CORE);
  EXPECT_EQ(none[0].value.rlim_cur, 0u);
  EXPECT_EQ(none[0].value.rlim_max, 0u);

  auto files = session_rlimits({.max_open_files = 4096}, 1048576);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[1].resource, RLIMIT_NOFILE);
  EXPECT_EQ(files[1].value.rlim_cur, 4096u);
  EXPECT_EQ(files[1].value.rlim_max, 4096u);

  auto capped = session_rlimits({.max_open_files = 4096}, 1024);
  EXPECT_EQ(capped[1].value.rlim_cur, 1024u);
  EXPECT_EQ(capped[1].value.rlim_max, 1024u);
  EXPECT_EQ(session_rlimits({.max_open_files = 4096}, RLIM_INFINITY)[1].value.rlim_max, 4096u);
}

}  // namespace
}  // namespace corral
