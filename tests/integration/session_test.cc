// Real sessions, real kernel: what a guarded process tree does shows up in
// the audit trail, with its session, and nothing from outside it does.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "harness.h"

namespace corral::test {
namespace {

const std::vector<std::string> kRoot = {"--allow-root", "--policy", CORRAL_OBSERVE_POLICY};

std::string session_of(const RunResult& r) {
  for (const auto& rec : r.records)
    if (rec.has_session_start()) return rec.session();
  return "";
}

// Every record carries the session's id; start and end frame them.
void expect_well_formed(const RunResult& r) {
  ASSERT_GE(r.records.size(), 2u) << r.stderr_text;
  EXPECT_TRUE(r.records.front().has_session_start());
  EXPECT_TRUE(r.records.back().has_session_end());
  std::string sid = session_of(r);
  ASSERT_EQ(sid.size(), 16u);
  uint64_t seq = 0;
  for (const auto& rec : r.records) {
    EXPECT_EQ(rec.session(), sid);
    EXPECT_EQ(rec.seq(), ++seq);
    EXPECT_FALSE(rec.has_lost()) << "events lost in a quiet test";
  }
}

const audit::Record* find_exec(const RunResult& r, const std::string& path) {
  for (const auto& rec : r.records)
    if (rec.has_exec() && rec.exec().path() == path) return &rec;
  return nullptr;
}

const audit::Record* find_open(const RunResult& r, const std::string& path) {
  for (const auto& rec : r.records)
    if (rec.has_open() && rec.open().path() == path) return &rec;
  return nullptr;
}

int listen_on(int family, uint16_t* port) {
  int s = ::socket(family, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_storage ss{};
  socklen_t len;
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(&ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = sizeof(*a);
  } else {
    auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
    a->sin6_family = AF_INET6;
    a->sin6_addr = in6addr_loopback;
    len = sizeof(*a);
  }
  EXPECT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&ss), len), 0);
  EXPECT_EQ(::listen(s, 16), 0);
  ::getsockname(s, reinterpret_cast<sockaddr*>(&ss), &len);
  *port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                  : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return s;
}

TEST(Session, ExecIsRecordedWithArgv) {
  CORRAL_REQUIRE_ROOT();
  auto r = run_corral(kRoot, {"/bin/sh", "-c", "/bin/echo one 'two words' three >/dev/null; true"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  expect_well_formed(r);
  const auto* sh = find_exec(r, "/usr/bin/dash");
  ASSERT_NE(sh, nullptr) << "/bin/sh resolved to its real file";
  const auto* echo = find_exec(r, "/usr/bin/echo");
  ASSERT_NE(echo, nullptr);
  std::vector<std::string> argv(echo->exec().argv().begin(), echo->exec().argv().end());
  EXPECT_EQ(argv, (std::vector<std::string>{"/bin/echo", "one", "two words", "three"}));
  EXPECT_EQ(echo->process().ppid(), sh->process().pid());
  EXPECT_EQ(echo->process().comm(), "echo");
}

// Secrets an agent puts on a command line are masked before the record is
// written: the trail (and so the SOC) never holds them.
TEST(Session, SecretsInArgvNeverReachTheTrail) {
  CORRAL_REQUIRE_ROOT();
  const std::string token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
  const std::string aws = "AKIAIOSFODNN7EXAMPLE";
  auto r = run_corral(kRoot, {"/bin/sh", "-c",
                              "/bin/echo --token=" + token + " " + aws + " API_KEY=hunter2 >/dev/null"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  for (const auto& rec : r.records) {
    std::string text = rec.DebugString();
    EXPECT_EQ(text.find(token), std::string::npos) << text;
    EXPECT_EQ(text.find(aws), std::string::npos) << text;
    EXPECT_EQ(text.find("hunter2"), std::string::npos) << text;
  }
  const auto* echo = find_exec(r, "/usr/bin/echo");
  ASSERT_NE(echo, nullptr);
  std::vector<std::string> argv(echo->exec().argv().begin(), echo->exec().argv().end());
  EXPECT_EQ(argv, (std::vector<std::string>{"/bin/echo", "--token=[REDACTED]", "[REDACTED]",
                                            "API_KEY=[REDACTED]"}));
  EXPECT_EQ(echo->redacted(), 3u);
  ASSERT_TRUE(r.records.front().has_session_start());
  EXPECT_GE(r.records.front().redacted(), 3u);
}

TEST(Session, LongArgvIsTruncatedAndFlagged) {
  CORRAL_REQUIRE_ROOT();
  std::vector<std::string> cmd = {"/bin/true"};
  for (int i = 0; i < 40; i++) cmd.push_back(std::string(200, 'a' + i % 26));
  auto r = run_corral(kRoot, cmd);
  const auto* t = find_exec(r, "/usr/bin/true");
  ASSERT_NE(t, nullptr) << r.stderr_text;
  EXPECT_TRUE(t->exec().argv_truncated());
  EXPECT_GE(t->exec().argv_size(), 16);
  EXPECT_EQ(t->exec().argv(16), std::string(200, 'a' + 15 % 26));
}

TEST(Session, RelativeOpenIsRecordedAbsolute) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  InDir cwd(dir.path());  // the session's writable project directory
  std::filesystem::create_directories(dir.path() + "/sub");
  std::ofstream(dir.path() + "/notes.txt") << "x";
  auto r = run_corral(kRoot, {"/bin/sh", "-c",
                              "cd " + dir.path() + "/sub && cat ../notes.txt >/dev/null && "
                              "cat ./missing 2>/dev/null; " + actor_bin() + " openat " +
                                  dir.path() + " sub/../notes.txt"});
  expect_well_formed(r);
  // found through the cwd, opened: resolved from the file itself
  const auto* ok = find_open(r, dir.path() + "/notes.txt");
  ASSERT_NE(ok, nullptr) << r.stderr_text;
  EXPECT_GE(ok->open().result(), 0);
  // failed relative open: joined to the cwd, with its error
  const auto* missing = find_open(r, dir.path() + "/sub/missing");
  ASSERT_NE(missing, nullptr);
  EXPECT_EQ(missing->open().requested(), "./missing");
  EXPECT_EQ(missing->open().error(), "ENOENT");
  // openat against a directory fd
  auto via_dirfd = select(r, [&](const audit::Record& rec) {
    return rec.has_open() && rec.open().requested() == "sub/../notes.txt";
  });
  ASSERT_EQ(via_dirfd.size(), 1u);
  EXPECT_EQ(via_dirfd[0]->open().path(), dir.path() + "/notes.txt");
}

TEST(Session, LoopbackConnectsWithPorts) {
  CORRAL_REQUIRE_ROOT();
  uint16_t port4 = 0, port6 = 0;
  int l4 = listen_on(AF_INET, &port4);
  int l6 = listen_on(AF_INET6, &port6);
  TempDir dir;
  InDir cwd(dir.path());  // the session's writable project directory
  std::string sock = dir.path() + "/s.sock";
  int lu = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un ua{};
  ua.sun_family = AF_UNIX;
  std::snprintf(ua.sun_path, sizeof(ua.sun_path), "%s", sock.c_str());
  ASSERT_EQ(::bind(lu, reinterpret_cast<sockaddr*>(&ua), sizeof(ua)), 0);
  ::listen(lu, 4);
  ::chmod(sock.c_str(), 0777);

  auto r = run_corral(kRoot, {"/bin/bash", "-c",
                              "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port4) + "; " +
                                  actor_bin() + " connect6 " + std::to_string(port6) + "; " +
                                  actor_bin() + " connect-unix " + sock});
  ::close(l4);
  ::close(l6);
  ::close(lu);
  expect_well_formed(r);
  auto connects = select(r, [](const audit::Record& rec) { return rec.has_connect(); });
  std::set<std::string> seen;
  for (auto* c : connects) {
    seen.insert(c->connect().family() + " " + c->connect().address() + " " +
                std::to_string(c->connect().port()) + " " + std::to_string(c->connect().result()));
  }
  EXPECT_TRUE(seen.count("inet 127.0.0.1 " + std::to_string(port4) + " 0")) << r.stderr_text;
  EXPECT_TRUE(seen.count("inet6 ::1 " + std::to_string(port6) + " 0"));
  EXPECT_TRUE(seen.count("unix " + sock + " 0 0"));
}

TEST(Session, RefusedConnectCarriesItsError) {
  CORRAL_REQUIRE_ROOT();
  uint16_t port = 0;
  int l = listen_on(AF_INET, &port);
  ::close(l);  // nothing listens there now
  auto r = run_corral(kRoot, {"/bin/bash", "-c",
                              "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) + " || true"});
  // Only the TCP connect: bash's own lookups (nss modules reaching for
  // their unix sockets) are connects too, and depend on the host.
  auto connects = select(r, [port](const audit::Record& rec) {
    return rec.has_connect() && rec.connect().family() == "inet" && rec.connect().port() == port;
  });
  ASSERT_EQ(connects.size(), 1u) << r.stderr_text;
  EXPECT_EQ(connects[0]->connect().error(), "ECONNREFUSED");
}

TEST(Session, GrandchildrenBelongToTheSession) {
  CORRAL_REQUIRE_ROOT();
  auto r = run_corral(kRoot, {"/bin/bash", "-c",
                              "/bin/bash -c '/bin/bash -c \"cat /etc/hostname >/dev/null; true\"; "
                              "true'; true"});
  expect_well_formed(r);
  const auto* cat = find_exec(r, "/usr/bin/cat");
  ASSERT_NE(cat, nullptr) << r.stderr_text;
  EXPECT_NE(find_open(r, "/etc/hostname"), nullptr);
  // three generations of bash, then cat
  auto bashes = select(r, [](const audit::Record& rec) {
    return rec.has_exec() && rec.exec().path() == "/usr/bin/bash";
  });
  EXPECT_EQ(bashes.size(), 3u);
}

TEST(Session, DoubleForkedChildOutlivingItsParentStays) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  InDir cwd(dir.path());  // the session's writable project directory
  std::string marker = dir.path() + "/late";
  std::ofstream(marker) << "x";
  // the subshell exits at once; its child goes on, reparented, and acts later
  auto r = run_corral(kRoot, {"/bin/bash", "-c",
                              "( /bin/sh -c 'sleep 0.3; cat " + marker +
                                  " >/dev/null' & ) ; sleep 0.05; exit 0"});
  expect_well_formed(r);
  const auto* late = find_open(r, marker);
  ASSERT_NE(late, nullptr) << r.stderr_text;
  const auto* sh = find_exec(r, "/usr/bin/dash");
  ASSERT_NE(sh, nullptr);
  // the subshell that forked it (a bash that never execs) had exited before
  const auto* main_bash = find_exec(r, "/usr/bin/bash");
  ASSERT_NE(main_bash, nullptr);
  auto subshell_exit = select(r, [&](const audit::Record& rec) {
    return rec.has_exit() && rec.process().comm() == "bash" &&
           rec.process().pid() != main_bash->process().pid();
  });
  ASSERT_EQ(subshell_exit.size(), 1u);
  EXPECT_LT(subshell_exit[0]->seq(), late->seq());
}

// Background work still running when the linger time is over is killed,
// and the end record counts it: the agent's processes, not corral's init.
TEST(Session, LeftoversAreKilledAfterTheLinger) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  InDir cwd(dir.path());
  auto options = kRoot;
  options.insert(options.end(), {"--linger", "0.3"});
  auto r = run_corral(options, {"/bin/bash", "-c", "sleep 60 & sleep 60 & exit 0"});
  expect_well_formed(r);
  const auto& end = r.records.back().session_end();
  EXPECT_EQ(end.exit_code(), 0);
  EXPECT_EQ(end.leftover_processes_killed(), 2u) << r.stderr_text;
  auto sleeps = select(r, [](const audit::Record& rec) {
    return rec.has_exit() && rec.process().comm() == "sleep";
  });
  EXPECT_EQ(sleeps.size(), 2u) << "each killed sleep's exit is recorded before the end";
}

TEST(Session, FileRemovalsRenamesAndTruncations) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  InDir cwd(dir.path());  // the session's writable project directory
  const std::string d = dir.path();
  std::filesystem::create_directories(d + "/out/empty");
  for (auto f : {"report.xml", "junit.xml", "log.txt", "big.bin"}) std::ofstream(d + "/out/" + f) << "data";
  const std::string a = actor_bin();
  auto r = run_corral(kRoot, {"/bin/sh", "-c",
                              "cd " + d + "/out && rm report.xml && " + a + " unlink ./junit.xml && " +
                                  a + " rmdir empty && " + a + " rename log.txt ../moved.txt && " +
                                  a + " truncate big.bin && " + a + " ftruncate " + d +
                                  "/moved.txt && " + a + " unlink nothing-here; true"});
  expect_well_formed(r);
  auto unlinks = select(r, [](const audit::Record& rec) { return rec.has_unlink(); });
  std::set<std::string> removed;
  for (auto* u : unlinks)
    removed.insert(u->unlink().path() + (u->unlink().directory() ? "/" : "") + " " +
                   (u->unlink().result() == 0 ? "ok" : u->unlink().error()));
  EXPECT_TRUE(removed.count(d + "/out/report.xml ok")) << r.stderr_text;
  EXPECT_TRUE(removed.count(d + "/out/junit.xml ok"));
  EXPECT_TRUE(removed.count(d + "/out/empty/ ok"));
  EXPECT_TRUE(removed.count(d + "/out/nothing-here ENOENT"));

  auto renames = select(r, [](const audit::Record& rec) { return rec.has_rename(); });
  ASSERT_EQ(renames.size(), 1u);
  EXPECT_EQ(renames[0]->rename().from(), d + "/out/log.txt");
  EXPECT_EQ(renames[0]->rename().to(), d + "/moved.txt");

  auto truncs = select(r, [](const audit::Record& rec) { return rec.has_truncate(); });
  ASSERT_EQ(truncs.size(), 2u);
  EXPECT_EQ(truncs[0]->truncate().path(), d + "/out/big.bin");
  EXPECT_EQ(truncs[0]->truncate().fd(), -1);
  EXPECT_EQ(truncs[1]->truncate().path(), d + "/moved.txt");
  EXPECT_GE(truncs[1]->truncate().fd(), 0);
  EXPECT_EQ(truncs[1]->truncate().length(), 1);
}

// Every syscall each kernel handler serves (one program per family), raw,
// so libc's choice of variant cannot hide one: each is recorded, with its
// flags and paths resolved.
TEST(Session, EveryFileSyscallOfEachFamily) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  InDir cwd(dir.path());
  const std::string d = dir.path() + "/";
  auto r = run_corral(kRoot, {actor_bin(), "file-syscalls"});
  expect_well_formed(r);
  std::set<std::string> seen;
  for (const auto& rec : r.records) {
    if (rec.has_open() && rec.open().path().starts_with(d) && rec.open().result() >= 0)
      seen.insert("open " + rec.open().path().substr(d.size()) + " " +
                  std::to_string(rec.open().raw_flags() & (O_CREAT | O_TRUNC)) + " " +
                  std::to_string(rec.open().mode()));
    if (rec.has_truncate() && rec.truncate().result() == 0)
      seen.insert("truncate " + rec.truncate().path().substr(d.size()) + " " +
                  std::to_string(rec.truncate().length()) + (rec.truncate().fd() >= 0 ? " fd" : ""));
    if (rec.has_rename() && rec.rename().result() == 0)
      seen.insert("rename " + rec.rename().from().substr(d.size()) + " " +
                  rec.rename().to().substr(d.size()) + " " + std::to_string(rec.rename().flags()));
    if (rec.has_unlink() && rec.unlink().result() == 0)
      seen.insert("unlink " + rec.unlink().path().substr(d.size()) +
                  (rec.unlink().directory() ? "/" : ""));
    // by fd (AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH: told whatever the result
    if (rec.has_link() && rec.link().symbolic() && rec.link().result() == 0)
      seen.insert("symlink " + rec.link().to().substr(d.size()) + " -> " + rec.link().from());
    else if (rec.has_link() && rec.link().from().starts_with(d))
      seen.insert("link " + rec.link().from().substr(d.size()) + " " + rec.link().to().substr(d.size()) +
                  " " + std::to_string(rec.link().flags()) + (rec.link().result() == 0 ? "" : " failed"));
  }
  for (const char* want : {"open f_open 64 420", "open f_creat 576 420", "open f_openat 64 420",
                           "open f_openat2 64 384", "truncate f_open 3", "truncate f_creat 2 fd",
                           "rename f_open r_rename 0", "rename f_creat r_renameat 0",
                           "rename f_openat r_renameat2 1", "link r_renameat2 l_link 0",
                           "link r_renameat2 l_linkat 0", "link r_renameat2 l_named 4096",
                           "symlink s_symlink -> r_renameat2",
                           "symlink s_symlinkat -> ../elsewhere", "unlink r_rename", "unlink r_renameat",
                           "unlink d_unlinkat/", "unlink d_rmdir/"})
    EXPECT_TRUE(seen.count(want)) << want << "\n" << r.stderr_text;
  // the file of the fd, whether the link was allowed or not
  EXPECT_EQ(seen.count("link r_renameat2 l_empty 4096") + seen.count("link r_renameat2 l_empty 4096 failed"),
            1u);
}

// A busy process outside the session, running throughout, leaves no trace.
TEST(Session, NothingFromOutsideTheSession) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  InDir cwd(dir.path());  // the session's writable project directory
  std::string marker = dir.path() + "/outsider-marker";
  std::ofstream(marker) << "x";
  uint16_t port = 0;
  ::close(listen_on(AF_INET, &port));  // refused at once: the loop never blocks
  pid_t outsider = ::fork();
  if (outsider == 0) {
    ::setpgid(0, 0);  // its own group, killed whole below
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 1);  // keep ctest's output pipe out of the orphans
    ::dup2(null, 2);
    std::string script = "while :; do cat " + marker + " >/dev/null; /bin/true; " +
                         "(exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(port) +
                         ") 2>/dev/null; rm -f " + dir.path() + "/nope; done";
    ::execl("/bin/bash", "bash", "-c", script.c_str(), nullptr);
    _exit(120);
  }
  ::setpgid(outsider, outsider);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto r = run_corral(kRoot, {"/bin/sh", "-c", "cat /etc/hostname >/dev/null; sleep 0.5"});
  ::kill(-outsider, SIGKILL);
  ::waitpid(outsider, nullptr, 0);

  expect_well_formed(r);
  for (const auto& rec : r.records) {
    EXPECT_NE(rec.process().pid(), static_cast<uint32_t>(outsider));
    EXPECT_NE(rec.process().ppid(), static_cast<uint32_t>(outsider));
    EXPECT_FALSE(rec.has_connect()) << rec.ShortDebugString();
    EXPECT_FALSE(rec.has_unlink()) << rec.ShortDebugString();
    if (rec.has_open()) {
      EXPECT_NE(rec.open().path(), marker);
    }
  }
  EXPECT_NE(find_open(r, "/etc/hostname"), nullptr);
}

TEST(Session, ExitStatusIsTheAgents) {
  CORRAL_REQUIRE_ROOT();
  auto r = run_corral(kRoot, {"/bin/sh", "-c", "exit 7"});
  EXPECT_EQ(r.exit_code, 7);
  EXPECT_EQ(r.records.back().session_end().exit_code(), 7);
  r = run_corral(kRoot, {"/bin/sh", "-c", "kill -9 $$"});
  EXPECT_EQ(r.exit_code, 128 + 9);
  EXPECT_EQ(r.records.back().session_end().signal(), 9);
  auto exits = select(r, [](const audit::Record& rec) { return rec.has_exit(); });
  ASSERT_EQ(exits.size(), 1u);
  EXPECT_EQ(exits[0]->exit().signal(), 9);
}

TEST(Session, RunsAsTheRequestedUser) {
  CORRAL_REQUIRE_ROOT();
  auto r = run_corral({"--user", "nobody"}, {"/bin/sh", "-c", "test \"$(id -u)\" = 65534 && test \"$HOME\" = /nonexistent"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  const auto* sh = find_exec(r, "/usr/bin/dash");
  ASSERT_NE(sh, nullptr);
  EXPECT_EQ(sh->process().uid(), 65534u);
}

TEST(Session, RefusesRootAgentWithoutAllowRoot) {
  CORRAL_REQUIRE_ROOT();
  ::unsetenv("SUDO_UID");
  auto r = run_corral({}, {"/bin/true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.stderr_text.find("refusing to run the agent as root"), std::string::npos)
      << r.stderr_text;
  EXPECT_TRUE(r.records.empty());
}

TEST(Session, ClearErrors) {
  CORRAL_REQUIRE_ROOT();
  auto r = run_corral(kRoot, {"no-such-agent-binary"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.stderr_text.find("command not found: no-such-agent-binary"), std::string::npos);

  std::string err_path = "/tmp/corral-it-unwritable.stderr";
  pid_t pid = spawn_corral(kRoot, {"/bin/true"}, "/proc/corral/audit.jsonl", err_path);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(WEXITSTATUS(status), 125);
  std::ifstream in(err_path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("failed to open audit log /proc/corral/audit.jsonl for appending"),
            std::string::npos)
      << text;
  std::filesystem::remove(err_path);
}

// SIGTERM to corral: passed to the agent, session recorded as ended, and
// no cgroup left behind.
TEST(Session, SigtermEndsTheSessionCleanly) {
  CORRAL_REQUIRE_ROOT();
  auto r = run_corral(kRoot, {"/bin/sleep", "30"}, [](pid_t corral) { ::kill(corral, SIGTERM); });
  EXPECT_EQ(r.exit_code, 128 + SIGTERM) << r.stderr_text;
  ASSERT_FALSE(r.records.empty());
  EXPECT_TRUE(r.records.back().has_session_end());
  ASSERT_TRUE(r.records.front().has_session_start());
  const std::string& cgroup = r.records.front().session_start().cgroup();
  EXPECT_FALSE(cgroup.empty());
  EXPECT_FALSE(std::filesystem::exists(cgroup)) << "the session's cgroup was removed";
}

// A stalled reader makes the ring buffer overflow: the loss is audited with
// its count, never silent. (Unlinks of a missing file: opens would wait for
// the stopped supervisor's guard instead of piling up.) The agent's unlinks
// start only once it runs and the supervisor is stopped, or a fast machine
// could finish them first.
TEST(Session, RingBufferDropsAreAudited) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir("/var/tmp");
  InDir cwd(dir.path());
  const std::string go = dir.path() + "/go";
  auto r = run_corral({"--allow-root", "--policy", CORRAL_OBSERVE_POLICY, "--ring-mib", "1"},
                      {actor_bin(), "unlinks", "200000", "/nonexistent-corral", go},
                      [&](pid_t corral) {
                        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
                        while (!std::filesystem::exists(go + ".ready") &&
                               std::chrono::steady_clock::now() < deadline)
                          std::this_thread::sleep_for(std::chrono::milliseconds(10));
                        ::kill(corral, SIGSTOP);
                        write_file(go, "");
                        std::this_thread::sleep_for(std::chrono::milliseconds(1500));
                        ::kill(corral, SIGCONT);
                      });
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  uint64_t dropped = 0;
  for (const auto& rec : r.records)
    if (rec.has_lost()) dropped += rec.lost().ringbuf_dropped();
  auto unlinks = select(r, [](const audit::Record& rec) {
    return rec.has_unlink() && rec.unlink().path() == "/nonexistent-corral";
  });
  EXPECT_GT(dropped, 0u);
  // every unlink was either delivered or counted as dropped
  EXPECT_GE(unlinks.size() + dropped, 200000u);
  EXPECT_TRUE(r.records.back().has_session_end());
}

}  // namespace
}  // namespace corral::test

namespace corral::test {
namespace {

// Fail closed: when the supervisor is killed outright, every process of its
// session dies with it, double-forked daemons included; the next run sweeps
// the cgroup it left.
TEST(Session, SupervisorDeathKillsTheSession) {
  CORRAL_REQUIRE_ROOT();
  std::string audit = "/tmp/corral-it-failclosed-" + std::to_string(::getpid()) + ".jsonl";
  std::string err = audit + ".stderr";
  std::filesystem::remove(audit);
  pid_t corral = spawn_corral(kRoot,
                              {"/bin/bash", "-c",
                               "(setsid /bin/sleep 300 &); (trap '' HUP TERM; /bin/sleep 300 &); "
                               "/bin/sleep 300"},
                              audit, err);
  ASSERT_TRUE(wait_for_session_start(audit));
  auto records = read_audit(audit);
  ASSERT_FALSE(records.empty());
  std::string cgroup = records.front().session_start().cgroup();
  // all three sleeps and the agent are running
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (cgroup_pids(cgroup).size() < 4 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto members = cgroup_pids(cgroup);
  ASSERT_GE(members.size(), 4u);

  ASSERT_EQ(::kill(corral, SIGKILL), 0);
  ::waitpid(corral, nullptr, 0);
  // Killed mid-write or not, the log verifies up to its last whole record.
  auto v = verify_audit({audit});
  EXPECT_EQ(v.exit_code, 0) << v.output;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!cgroup_pids(cgroup).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(cgroup_pids(cgroup).empty()) << "session processes outlived their supervisor";
  for (pid_t p : members) EXPECT_FALSE(running(p)) << "pid " << p << " still running";

  auto r = run_corral(kRoot, {"/bin/true"});  // sweeps what the dead one left
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(cgroup));
  std::filesystem::remove(audit);
  std::filesystem::remove(audit + ".lock");
  std::filesystem::remove(err);
}

}  // namespace
}  // namespace corral::test

namespace corral::test {
namespace {

// New namespaces would be made of mounts the session's guard does not
// watch; the agent cannot create any, nor mount, nor load BPF.
TEST(Session, NoNewNamespacesOrMounts) {
  CORRAL_REQUIRE_ROOT();
  auto r = run_corral({"--user", "nobody"},
                      {"/bin/sh", "-c",
                       "unshare --user --mount true 2>/dev/null && exit 1; "
                       "unshare --user --map-root-user true 2>/dev/null && exit 2; "
                       "exit 0"});
  EXPECT_EQ(r.exit_code, 0) << "1: a user+mount namespace, 2: a user namespace was created";
  auto unshares = select(r, [](const audit::Record& rec) {
    return rec.has_exec() && rec.exec().path() == "/usr/bin/unshare";
  });
  EXPECT_EQ(unshares.size(), 2u) << "both attempts ran";
  // Each refusal is on record, by the process that tried.
  auto refused = select(r, [](const audit::Record& rec) {
    return rec.has_refused() && rec.refused().syscall() == "unshare";
  });
  ASSERT_EQ(refused.size(), 2u);
  for (const auto* rec : refused) {
    EXPECT_EQ(rec->refused().error(), "EPERM");
    EXPECT_EQ(rec->decision().rule(), "seccomp");
    EXPECT_EQ(rec->process().comm(), "unshare");
    EXPECT_EQ(rec->process().uid(), 65534u);
  }
  // as root inside the session, too
  auto root = run_corral(kRoot, {"/bin/sh", "-c",
                                 "unshare --mount true || unshare --user true || "
                                 "mount -t tmpfs none /mnt || "
                                 "/usr/sbin/bpftool prog list >/dev/null 2>&1 || exit 0; exit 1"});
  EXPECT_EQ(root.exit_code, 0) << "an unshare, mount or bpf call succeeded inside the session";
  std::multiset<std::string> calls;
  for (const auto& rec : root.records)
    if (rec.has_refused()) calls.insert(rec.refused().syscall());
  EXPECT_EQ(calls.count("mount"), 1u);
  EXPECT_EQ(calls.count("unshare"), 2u);
  EXPECT_GE(calls.count("bpf"), 1u) << "loading BPF was refused without a record";
}

// Signals ignored where corral was started (nohup, a script's `&`) are not
// ignored in the agent: Ctrl-C and hangups reach it.
TEST(Session, AgentStartsWithNoSignalIgnored) {
  CORRAL_REQUIRE_ROOT();
  std::string audit = "/tmp/corral-it-sigign-" + std::to_string(::getpid()) + ".jsonl";
  auto r = run_command({"/bin/sh", "-c",
                        "trap '' INT HUP QUIT; exec \"$0\" \"$@\"", corral_bin(), "run",
                        "--embedded", "--quiet", "--allow-root", "--audit", audit, "--audit-key",
                        audit_key(), "--", "/bin/grep", "SigIgn", "/proc/self/status"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("SigIgn:\t0000000000000000"), std::string::npos) << r.output;
  std::filesystem::remove(audit);
  std::filesystem::remove(audit + ".lock");
}

// The host's terminals (the user's other shells) are out of the session's
// reach: its /dev/pts is its own.
TEST(Session, HostTerminalsAreNotVisible) {
  CORRAL_REQUIRE_ROOT();
  int master = ::posix_openpt(O_RDWR | O_NOCTTY);
  ASSERT_GE(master, 0);
  ASSERT_EQ(::grantpt(master) | ::unlockpt(master), 0);
  std::string name = ::ptsname(master);
  auto r = run_corral(kRoot, {"/bin/sh", "-c", "[ -e " + name + " ] && exit 3; [ -c /dev/ptmx ] || exit 4; exit 0"});
  ::close(master);
  EXPECT_EQ(r.exit_code, 0) << "3: " << name << " is visible in the session; " << r.stderr_text;
}

// The seccomp refusals of `syscall` on record.
size_t refusals(const RunResult& r, const std::string& syscall) {
  return std::count_if(r.records.begin(), r.records.end(), [&](const audit::Record& rec) {
    return rec.has_refused() && rec.refused().syscall() == syscall;
  });
}

// Address randomisation stays on, whatever else the persona asks for.
TEST(Session, AslrCannotBeTurnedOff) {
  CORRAL_REQUIRE_ROOT();
  auto r = run_corral(kRoot, {actor_bin(), "aslr-off"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(refusals(r, "personality"), 2u);
}

// Packet sockets are the filter's to refuse (and record), not only the
// kernel's for want of CAP_NET_RAW, however the domain is spelled: the
// kernel reads it as an int, ignoring the argument's upper half.
TEST(Session, PacketSocketsAreRefusedHoweverAsked) {
  CORRAL_REQUIRE_ROOT();
  auto r = run_corral(kRoot, {actor_bin(), "packet-sockets"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(refusals(r, "socket"), 2u);
}

// The audit log on a tmpfs of its own, mounted in this test's own mount
// namespace (ctest runs each test in a process of its own); the session's
// project beside it. full() fills the tmpfs, the agent waits for the file
// `full` in its project to go on.
class AuditLogFull : public ::testing::Test {
 protected:
  void start(const char* size, const std::string& agent) {
    CORRAL_REQUIRE_ROOT();
    ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << std::strerror(errno);
    ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
    std::string opts = std::string("size=") + size;
    ASSERT_EQ(::mount("tmpfs", logs.path().c_str(), "tmpfs", 0, opts.c_str()), 0) << std::strerror(errno);
    mounted = true;
    pid = spawn_corral(kRoot, {"/bin/bash", "-c", "until [ -e full ]; do sleep 0.01; done; " + agent},
                       audit, err);
    ASSERT_TRUE(wait_for_session_start(audit));
    std::ofstream filler(logs.path() + "/filler", std::ios::binary);
    std::string chunk(64 << 10, 'x');
    while (filler.write(chunk.data(), chunk.size())) filler.flush();
    std::ofstream(proj.path() + "/full").close();
  }
  // corral's exit status and stderr, once it has ended.
  std::pair<int, std::string> finish() {
    int status = 0;
    EXPECT_EQ(::waitpid(pid, &status, 0), pid);
    pid = -1;
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), read_file(err)};
  }
  void TearDown() override {
    if (pid > 0) finish();
    if (mounted) ::umount2(logs.path().c_str(), MNT_DETACH);
  }

  TempDir logs{"/var/tmp"};
  TempDir proj{"/var/tmp"};
  InDir cwd{proj.path()};
  const std::string audit = logs.path() + "/audit.jsonl", err = proj.path() + "/stderr";
  pid_t pid = -1;
  bool mounted = false;
};

// The log's filesystem fills up while a session works (an agent can fill
// the disk it shares with /var/log): its records are held in memory, the
// session goes on, and once there is room they are written, in order, on
// an unbroken chain. Before, the first failed write ended corral and every
// session with it, and the records it held were lost.
TEST_F(AuditLogFull, RecordsAreHeldAndWrittenOnceThereIsRoom) {
  ASSERT_NO_FATAL_FAILURE(start("8m",
                                "for i in $(seq 50); do /bin/cat /etc/hostname >/dev/null; done; "
                                ": > done; until [ -e freed ]; do sleep 0.01; done; sleep 2.5"));
  const std::string at = proj.path() + "/";
  for (int i = 0; i < 3000 && !std::filesystem::exists(at + "done"); i++) ::usleep(10000);
  ASSERT_TRUE(std::filesystem::exists(at + "done"));
  ::usleep(1500000);  // corral tries, and fails, again
  std::filesystem::remove(logs.path() + "/filler");
  std::ofstream(at + "freed").close();
  auto [code, stderr_text] = finish();
  ASSERT_EQ(code, 0) << stderr_text;
  EXPECT_NE(stderr_text.find("No space left on device"), std::string::npos) << stderr_text;
  EXPECT_NE(stderr_text.find("records are held in memory"), std::string::npos) << stderr_text;
  // while the session still runs (not only at the end)
  EXPECT_NE(stderr_text.find("written again"), std::string::npos) << stderr_text;

  auto v = verify_audit(audit_files(audit));
  EXPECT_EQ(v.exit_code, 0) << v.output;
  int cats = 0;
  bool ended = false;
  for (const auto& rec : read_audit(audit)) {
    if (rec.has_exec() && rec.exec().argv_size() == 2 && rec.exec().argv(1) == "/etc/hostname") cats++;
    ended |= rec.has_session_end();
  }
  EXPECT_EQ(cats, 50) << "every exec made while the disk was full is in the trail";
  EXPECT_TRUE(ended);
}

// And when there is never room again: the run does not end as if its trail
// were whole. corral tries for a few seconds, says how many records are
// lost, and exits 125 whatever the agent's status.
TEST_F(AuditLogFull, ARunWhoseTrailCannotBeWrittenFails) {
  ASSERT_NO_FATAL_FAILURE(start("1m", "/bin/cat /etc/hostname; exit 7"));
  auto [code, stderr_text] = finish();
  EXPECT_EQ(code, 125) << "the agent's 7 would say all is well\n" << stderr_text;
  EXPECT_NE(stderr_text.find("could not be written and are lost"), std::string::npos) << stderr_text;
}

}  // namespace
}  // namespace corral::test
