// The terminal passes through: on a real pty, Ctrl-C reaches the agent
// (which shares corral's process group) and corral survives it to record
// the end of the session and exit with the agent's status.
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "harness.h"

namespace corral::test {
namespace {

TEST(Terminal, CtrlCReachesTheAgent) {
  CORRAL_REQUIRE_ROOT();
  std::string audit = "/tmp/corral-it-pty-" + std::to_string(::getpid()) + ".jsonl";
  std::filesystem::remove(audit);
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // as from an interactive shell, whatever the test runner ignores
    ::signal(SIGINT, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // the agent reads the terminal, as an interactive one would. `exec
    // sleep`: a Ctrl-C landing while sh forks a child can reach the child
    // before it resets sh's SIGINT handler; the child then sleeps on (sh
    // dies of it only when the child ends: 30 s).
    ::execl(CORRAL_BIN, "corral", "run", "--quiet", "--allow-root", "--audit", audit.c_str(),
            "--audit-key", audit_key().c_str(), "--",
            "/bin/sh", "-c", "read line; echo got-$line; exec sleep 30", nullptr);
    _exit(120);
  }
  ASSERT_TRUE(wait_for_session_start(audit));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(::write(master, "hello\n", 6), 6);  // stdin reaches the agent
  std::string seen;
  char buf[256];
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (seen.find("got-hello") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    ssize_t n = ::read(master, buf, sizeof(buf));
    if (n > 0) seen.append(buf, n);
  }
  EXPECT_NE(seen.find("got-hello"), std::string::npos) << seen;
  ASSERT_EQ(::write(master, "\x03", 1), 1);  // Ctrl-C: SIGINT to the foreground group

  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  ASSERT_TRUE(WIFEXITED(status)) << "corral itself must not die of the terminal's SIGINT";
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGINT);
  auto records = read_audit(audit);
  ASSERT_FALSE(records.empty());
  EXPECT_TRUE(records.back().has_session_end());
  EXPECT_EQ(records.back().session_end().signal(), SIGINT);
  std::filesystem::remove(audit);
  std::filesystem::remove(audit + ".lock");
}

// An agent sharing the user's terminal cannot type into it: what it pushed
// with TIOCSTI would be read by the user's shell after the session, and run
// outside it. Refused (EPERM), and on record.
TEST(Terminal, AgentCannotTypeIntoTheUsersTerminal) {
  CORRAL_REQUIRE_ROOT();
  std::string audit = "/tmp/corral-it-tiocsti-" + std::to_string(::getpid()) + ".jsonl";
  std::filesystem::remove(audit);
  int master = -1;
  pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::execl(CORRAL_BIN, "corral", "run", "--embedded", "--quiet", "--allow-root", "--audit",
            audit.c_str(), "--audit-key", audit_key().c_str(), "--", CORRAL_ACTOR_BIN, "tiocsti",
            "id\n", nullptr);
    _exit(120);
  }
  std::string seen;
  char buf[256];
  ssize_t n;
  while ((n = ::read(master, buf, sizeof(buf))) > 0) seen.append(buf, static_cast<size_t>(n));
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::close(master);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << " " << seen;
  EXPECT_NE(seen.find("tiocsti pushed 0 of 3\r\n"), std::string::npos) << seen;
  auto records = read_audit(audit);
  size_t refused = 0;
  for (const auto& r : records)
    if (r.has_refused() && r.refused().syscall() == "ioctl") {
      refused++;
      EXPECT_EQ(r.refused().error(), "EPERM");
      EXPECT_EQ(r.decision().rule(), "seccomp");
    }
  EXPECT_EQ(refused, 3u) << "each refusal is on record";
  std::filesystem::remove(audit);
  std::filesystem::remove(audit + ".lock");
}

}  // namespace
}  // namespace corral::test
