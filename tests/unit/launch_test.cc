// Pure parts of starting a session: cgroup2 discovery, user and binary
// resolution, exit codes.
#include <algorithm>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>

#include "cgroup2.h"
#include "file_guard.h"
#include "mnt.h"
#include "process.h"

namespace corral {
namespace {

TEST(FindCgroup2Mount, HybridHost) {
  const char* mountinfo =
      "25 30 0:22 / /sys rw,nosuid - sysfs sysfs rw\n"
      "33 25 0:28 / /sys/fs/cgroup ro - tmpfs tmpfs ro,mode=755\n"
      "34 33 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
      "35 33 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw\n";
  EXPECT_EQ(find_cgroup2_mount(mountinfo), "/sys/fs/cgroup/unified");
}

TEST(FindCgroup2Mount, NoneMounted) {
  EXPECT_EQ(find_cgroup2_mount("34 33 0:29 / /sys/fs/cgroup/memory rw - cgroup cgroup rw\n"), "");
}

TEST(FindExecutable, SearchesPathLikeExecvp) {
  EXPECT_EQ(find_executable("sh", "/nonexistent:/bin", "/"), "/bin/sh");
  EXPECT_EQ(find_executable("/bin/sh", "", "/"), "/bin/sh");
  EXPECT_FALSE(find_executable("no-such-command-corral", "/bin:/usr/bin", "/").has_value());
  char plain[] = "/tmp/corral-unit-XXXXXX";
  int fd = mkstemp(plain);  // mode 0600: no execute bit
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_FALSE(find_executable(plain, "", "/").has_value()) << "not executable";
  unlink(plain);
  EXPECT_FALSE(find_executable("bin", "/", "/").has_value()) << "a directory";
}

// Relative to the directory the run was typed in, not to ours: the daemon
// looks up the commands of clients anywhere.
TEST(FindExecutable, RelativePathsAreTheCallersDirectorys) {
  EXPECT_EQ(find_executable("./sh", "", "/bin"), "/bin/./sh");
  EXPECT_EQ(find_executable("sh", "bin:", "/"), "/bin/sh");
  EXPECT_EQ(find_executable("sh", ":/usr/bin", "/bin"), "/bin/./sh") << "an empty PATH entry is .";
  EXPECT_FALSE(find_executable("./sh", "", "/usr").has_value());
}

TEST(ShellExitCode, StatusOrSignal) {
  EXPECT_EQ(shell_exit_code(3 << 8), 3);
  EXPECT_EQ(shell_exit_code(SIGKILL), 128 + SIGKILL);
}

TEST(ResolveCredentials, ByNameNumberAndSudo) {
  auto c = resolve_credentials("root", nullptr, nullptr);
  EXPECT_EQ(c.uid, 0u);
  EXPECT_EQ(c.name, "root");
  c = resolve_credentials("65534", nullptr, nullptr);
  EXPECT_EQ(c.uid, 65534u);
  c = resolve_credentials("", "65534", "65534");
  EXPECT_EQ(c.uid, 65534u);
  EXPECT_EQ(c.gid, 65534u);
  EXPECT_THROW(resolve_credentials("no-such-user-corral", nullptr, nullptr), std::runtime_error);
}

TEST(SupplementaryGroups, IncludeThePrimaryGroup) {
  auto g = supplementary_groups("root", 0);
  EXPECT_NE(std::find(g.begin(), g.end(), 0u), g.end());
  g = supplementary_groups("no-such-user-corral", 4242);
  EXPECT_EQ(g, std::vector<gid_t>{4242});
}

TEST(AgentEnvironment, HomeAndUserAreTheAgents) {
  Credentials c;
  c.name = "dev";
  c.home = "/home/dev";
  auto out = agent_environment({"HOME=/root", "PATH=/bin", "USER=root"}, c);
  EXPECT_EQ(out, (std::vector<std::string>{"PATH=/bin", "HOME=/home/dev", "USER=dev",
                                           "LOGNAME=dev"}));
}

// A spare session holds while the paths its mounts came from are as they
// were: a change to one, a new one, or one gone and made again (same name,
// new inode) is seen.
// Until the filesystem clock (the kernel's coarse time) is past every
// time stamped on `paths`: they are then no longer "racy" (mnt.h). A
// stamp may be finer than that clock and ahead of it.
void await_older(const std::vector<std::string>& paths) {
  auto later = [](const timespec& a, const timespec& b) {
    return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
  };
  timespec newest{};
  for (std::string p : paths) {
    // the path and what stands for it when it is missing: its directories
    for (; !p.empty(); p.resize(p.rfind('/') == 0 && p.size() > 1 ? 1 : p.rfind('/'))) {
      struct stat st;
      if (::stat(p.c_str(), &st) == 0)
        for (const timespec& t : {st.st_mtim, st.st_ctim})
          if (later(t, newest)) newest = t;
      if (p == "/") break;
    }
  }
  timespec now{};
  do ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
  while (!later(now, newest));
}

PathStates states_of(const std::vector<std::string>& paths) {
  await_older(paths);
  PathStates s;
  for (const auto& p : paths) s.add(p);
  return s;
}

// A time stamped in the current grain of the filesystem's clock could be
// stamped again by a later change: it proves nothing. Fine stamps are
// racy only in the clock's current tick; whole-second ones (ext4's small
// inodes, NFS) for two seconds, as FAT's can be.
TEST(PathStates, AStampInTheFilesystemsCurrentGrainProvesNothing) {
  const timespec tick{1000, 500'000'000};
  EXPECT_TRUE(stamped_in_tick({1000, 500'000'000}, tick));  // this tick
  EXPECT_FALSE(stamped_in_tick({1000, 499'999'987}, tick));
  EXPECT_TRUE(stamped_in_tick({1000, 0}, tick));  // a second-granular stamp
  EXPECT_TRUE(stamped_in_tick({999, 0}, tick));   // FAT's two seconds
  EXPECT_FALSE(stamped_in_tick({998, 0}, tick));
  // a grain of 100 ms at most: [1000.4, 1000.5) is over at the tick
  EXPECT_TRUE(stamped_in_tick({1000, 400'000'000}, {1000, 450'000'000}));
  EXPECT_FALSE(stamped_in_tick({1000, 400'000'000}, tick));
  EXPECT_FALSE(stamped_in_tick({998, 999'999'999}, tick));
  // far off either way (an agent may set any time on its files)
  EXPECT_TRUE(stamped_in_tick({INT64_MAX / 2, 1}, tick));
  EXPECT_FALSE(stamped_in_tick({INT64_MIN / 2, 1}, tick));
}

TEST(PathStates, SeeEveryChangeOfWhatTheMountsCameFrom) {
  char tmpl[] = "/tmp/corral-pathstates-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string proj = dir + "/proj", absent = dir + "/absent";
  ASSERT_EQ(::mkdir(proj.c_str(), 0755), 0);
  // an old modification time: whatever changes it next is seen, however
  // coarse the filesystem's clock
  const timespec old_times[2] = {{1000000, 0}, {1000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, proj.c_str(), old_times, 0), 0);
  PathStates states = states_of({proj, absent});
  EXPECT_TRUE(states.unchanged());

  // an entry made in the project changes its modification time
  const std::string file = proj + "/f";
  ::close(::open(file.c_str(), O_CREAT | O_WRONLY, 0644));
  EXPECT_FALSE(states.unchanged());
  PathStates after_file = states_of({proj, absent});
  EXPECT_TRUE(after_file.unchanged());

  // a path that did not exist now does
  ASSERT_EQ(::mkdir(absent.c_str(), 0755), 0);
  EXPECT_FALSE(after_file.unchanged());
  ASSERT_EQ(::rmdir(absent.c_str()), 0);

  // the project removed and made again under the same name
  ASSERT_EQ(::utimensat(AT_FDCWD, proj.c_str(), old_times, 0), 0);
  PathStates before_again = states_of({proj});
  ASSERT_EQ(::unlink(file.c_str()), 0);
  ASSERT_EQ(::rmdir(proj.c_str()), 0);
  ASSERT_EQ(::mkdir(proj.c_str(), 0755), 0);
  EXPECT_FALSE(before_again.unchanged());

  ::rmdir(proj.c_str());
  ::rmdir(dir.c_str());
}

// Paths that do not exist are checked through the directory they would be
// made in: one state for many, and still every way one of them can appear
// is seen — made there, made under a new directory there, a dangling
// symlink's target made, a file where a directory would be replaced.
TEST(PathStates, MissingPathsStandForTheirDirectory) {
  char tmpl[] = "/tmp/corral-pathstates-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const timespec old_times[2] = {{1000000, 0}, {1000000, 0}};
  auto make_old = [&] { ASSERT_EQ(::utimensat(AT_FDCWD, dir.c_str(), old_times, 0), 0); };
  make_old();
  PathStates missing = states_of({dir + "/.aws", dir + "/.kube/config", dir + "/.config/gh/hosts.yml"});
  EXPECT_EQ(missing.size(), 1u) << "one directory for three missing paths";
  EXPECT_TRUE(missing.unchanged());
  ASSERT_EQ(::mkdir((dir + "/.kube").c_str(), 0755), 0);
  EXPECT_FALSE(missing.unchanged()) << "a directory on the way to a missing path";
  ASSERT_EQ(::rmdir((dir + "/.kube").c_str()), 0);

  ASSERT_EQ(::symlink((dir + "/target").c_str(), (dir + "/link").c_str()), 0);
  ::close(::open((dir + "/file").c_str(), O_CREAT | O_WRONLY, 0644));
  make_old();
  PathStates dangling = states_of({dir + "/link", dir + "/file/x"});
  EXPECT_EQ(dangling.size(), 2u) << "the dangling link, and the file";
  EXPECT_TRUE(dangling.unchanged());
  ASSERT_EQ(::mkdir((dir + "/target").c_str(), 0755), 0);
  EXPECT_FALSE(dangling.unchanged()) << "the link's target made";
  ASSERT_EQ(::rmdir((dir + "/target").c_str()), 0);
  make_old();
  PathStates under_file = states_of({dir + "/file/x"});
  EXPECT_TRUE(under_file.unchanged());
  ASSERT_EQ(::unlink((dir + "/file").c_str()), 0);
  ASSERT_EQ(::mkdir((dir + "/file").c_str(), 0755), 0);
  ::close(::open((dir + "/file/x").c_str(), O_CREAT | O_WRONLY, 0644));
  EXPECT_FALSE(under_file.unchanged()) << "the file replaced by a directory with the path";
  std::filesystem::remove_all(dir);
}

// A path changed in the filesystem clock's current tick proves nothing: a
// change after the note, in the same tick, would leave the same times.
TEST(PathStates, AChangeInTheCurrentTickProvesNothing) {
  char tmpl[] = "/tmp/corral-pathstates-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME_COARSE, &now);
  const timespec later[2] = {{now.tv_sec + 60, 0}, {now.tv_sec + 60, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, dir.c_str(), later, 0), 0);
  PathStates racy;
  racy.add(dir);
  EXPECT_FALSE(racy.unchanged());
  const timespec old_times[2] = {{1000000, 0}, {1000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, dir.c_str(), old_times, 0), 0);
  EXPECT_TRUE(states_of({dir}).unchanged());
  ::rmdir(dir.c_str());
}

// The scan for existing secret and protected files notes every directory it
// read: an entry made deep in the project later is seen.
TEST(PathStates, TheScanNotesEveryDirectoryItWalked) {
  char tmpl[] = "/tmp/corral-pathstates-XXXXXX";
  ASSERT_NE(::mkdtemp(tmpl), nullptr);
  const std::string proj = tmpl;
  std::filesystem::create_directories(proj + "/a/b/c");
  const timespec old_times[2] = {{1000000, 0}, {1000000, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (proj + "/a/b/c").c_str(), old_times, 0), 0);
  PathStates looked_at;
  await_older({proj, proj + "/a", proj + "/a/b", proj + "/a/b/c"});
  find_existing({"**/.envrc"}, "/nonexistent-home", proj, 1000, &looked_at);
  EXPECT_GE(looked_at.size(), 4u);  // the project, a, a/b, a/b/c
  EXPECT_TRUE(looked_at.unchanged());
  ::close(::open((proj + "/a/b/c/.envrc").c_str(), O_CREAT | O_WRONLY, 0644));
  EXPECT_FALSE(looked_at.unchanged());
  std::filesystem::remove_all(proj);
}

}  // namespace
}  // namespace corral
