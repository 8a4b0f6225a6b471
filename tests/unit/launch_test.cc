// Pure parts of starting a session: cgroup2 discovery, user and binary
// resolution, exit codes.
#include <algorithm>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "cgroup2.h"
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
  EXPECT_EQ(find_executable("sh", "/nonexistent:/bin"), "/bin/sh");
  EXPECT_EQ(find_executable("/bin/sh", ""), "/bin/sh");
  EXPECT_FALSE(find_executable("no-such-command-corral", "/bin:/usr/bin").has_value());
  char plain[] = "/tmp/corral-unit-XXXXXX";
  int fd = mkstemp(plain);  // mode 0600: no execute bit
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_FALSE(find_executable(plain, "").has_value()) << "not executable";
  unlink(plain);
  EXPECT_FALSE(find_executable("bin", "/").has_value()) << "a directory";
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
  const char* env[] = {"HOME=/root", "PATH=/bin", "USER=root", nullptr};
  auto out = agent_environment(const_cast<char**>(env), c);
  EXPECT_EQ(out, (std::vector<std::string>{"PATH=/bin", "HOME=/home/dev", "USER=dev",
                                           "LOGNAME=dev"}));
}

}  // namespace
}  // namespace corral
