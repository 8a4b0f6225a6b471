// Pure parts of the supervisor: the reaper's job order, the file guard's
// matcher cache and polling window, and the request a `corral run` command
// line makes; the heap kept ready for libbpf's copies of the kernel's BTF.
#include <gtest/gtest.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "bpf_loader.h"
#include "file_guard.h"
#include "policy.h"
#include "procfs.h"
#include "reaper.h"
#include "run_command.h"
#include "session.h"

namespace corral {
namespace {

size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(::sysconf(_SC_PAGESIZE));
}

// libbpf's two buffers of the kernel's BTF come from the heap reserved for
// them (not fresh mmap()s), the heap shrinks back after finish(), and malloc
// still picks heap or mmap by its own rule afterwards (no mallopt left behind).
TEST(BtfPrefault, ServesTheBtfBuffersFromTheHeapAndGivesItBack) {
  struct stat st {};
  ASSERT_EQ(::stat("/sys/kernel/btf/vmlinux", &st), 0) << "this kernel has no BTF";
  const size_t size = static_cast<size_t>(st.st_size);
  BtfPrefault prefault;
  const size_t mapped = ::mallinfo2().hblkhd;
  void* raw = std::malloc(size);
  void* copy = std::malloc(size);
  std::memset(raw, 1, size);
  std::memset(copy, 2, size);
  EXPECT_EQ(::mallinfo2().hblkhd, mapped) << "a buffer was mmap()ed, not taken from the heap";
  const size_t held = resident_bytes();
  std::free(raw);
  std::free(copy);
  prefault.finish();
  EXPECT_LT(resident_bytes() + size, held) << "the reserved heap was not given back";
  void* after = std::malloc(size / 2);
  EXPECT_EQ(::mallinfo2().hblkhd, mapped) << "malloc's threshold went back to a fixed 128 KiB";
  std::free(after);
}

TEST(Reaper, RunsJobsInOrderOffTheCallersThread) {
  std::mutex mu;
  std::vector<int> order;
  std::thread::id caller = std::this_thread::get_id(), ran_on;
  {
    Reaper reaper;
    for (int i = 0; i < 5; i++)
      reaper.post([&, i] {
        // the first job is slow: the others wait for it, in order
        if (i == 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
        std::lock_guard lock(mu);
        order.push_back(i);
        ran_on = std::this_thread::get_id();
      });
  }  // the destructor runs what is still queued
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
  EXPECT_NE(ran_on, caller);
}

TEST(Reaper, ReleasesWhatAJobHeldOnItsThread) {
  std::atomic<bool> released{false};
  struct Holder {
    std::atomic<bool>* flag;
    ~Holder() { *flag = true; }
  };
  {
    Reaper reaper;
    auto held = std::make_shared<Holder>(Holder{&released});
    reaper.post([held] {});
    held.reset();
  }
  EXPECT_TRUE(released);
}

rules::Policy default_policy() {
  auto loaded = rules::load_default_policy();
  EXPECT_TRUE(loaded.policy) << (loaded.errors.empty() ? "" : loaded.errors[0].str());
  return *loaded.policy;
}

TEST(PathMatcherCache, OneCompilePerHomeAndGeneration) {
  rules::Policy policy = default_policy();
  PathMatcherCache cache;
  auto a = cache.get(policy, 1, "/home/a");
  EXPECT_EQ(cache.get(policy, 1, "/home/a"), a);  // reused
  auto b = cache.get(policy, 1, "/home/b");
  EXPECT_NE(b, a);
  EXPECT_TRUE(a->secrets.match("/home/a/.ssh/id_ed25519").rule);
  EXPECT_FALSE(a->secrets.match("/home/b/.ssh/id_ed25519").rule);
  EXPECT_TRUE(b->secrets.match("/home/b/.ssh/id_ed25519").rule);
  // a reload: new matchers, of the new generation; sessions keep the old
  // ones alive until they switch
  auto reloaded = cache.get(policy, 2, "/home/a");
  EXPECT_NE(reloaded, a);
  EXPECT_EQ(reloaded->generation, 2u);
  EXPECT_EQ(a->generation, 1u);
}

TEST(SpinWindow, ShrinksToNoneOnSparseEventsAndGrowsBackOnDenseOnes) {
  using namespace std::chrono_literals;
  SpinWindow w;
  EXPECT_EQ(w.get(), SpinWindow::kMax);
  // sparse: each sleep outlasts the longest poll, so polling is halved away
  for (int i = 0; i < 8; i++) w.slept(5ms);
  EXPECT_EQ(w.get(), 0us);
  // dense again: short sleeps grow it back, never past the longest
  w.slept(20us);
  EXPECT_EQ(w.get(), SpinWindow::kGrowStart);
  for (int i = 0; i < 8; i++) w.slept(20us);
  EXPECT_EQ(w.get(), SpinWindow::kMax);
  w.slept(5ms);
  EXPECT_EQ(w.get(), SpinWindow::kMax / 2);
  // an event caught while polling: polling pays, at its longest
  w.caught();
  EXPECT_EQ(w.get(), SpinWindow::kMax);
}

TEST(RunRequest, CarriesTheCommandLine) {
  CLI::App app;
  RunOptions o;
  auto* run = add_run_command(app, o);
  std::vector<std::string> args = {"corral", "run", "--net", "none", "--max-pids", "64",
                                   "--timeout", "2.5", "--", "/bin/echo", "hi"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  app.parse(static_cast<int>(argv.size()), argv.data());
  note_embedded_flags(*run, o);
  EXPECT_TRUE(o.embedded_flags.empty());
  Credentials creds{.uid = 1000, .gid = 1000, .groups = {1000, 27}, .name = "dev", .home = "/home/dev"};
  RunContext ctx{{"PATH=/nonexistent:/bin"}, "/work/project"};
  auto r = run_request(o, creds, run_executable(o, ctx), ctx);
  EXPECT_EQ(r.exe(), "/bin/echo");
  ASSERT_EQ(r.argv_size(), 2);
  EXPECT_EQ(r.argv(1), "hi");
  EXPECT_EQ(r.cwd(), "/work/project");
  EXPECT_EQ(r.net(), "none");
  EXPECT_EQ(r.max_pids(), 64u);
  EXPECT_DOUBLE_EQ(r.timeout_seconds(), 2.5);
  EXPECT_EQ(r.home(), "/home/dev");
  bool home_set = false;
  for (const auto& e : r.env()) home_set |= e == "HOME=/home/dev";
  EXPECT_TRUE(home_set);
}

TEST(RunRequest, SupervisorFlagsAreNoted) {
  CLI::App app;
  RunOptions o;
  auto* run = add_run_command(app, o);
  std::vector<std::string> args = {"corral", "run", "--policy", "p.yaml", "--ring-mib", "8",
                                   "--", "true"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  app.parse(static_cast<int>(argv.size()), argv.data());
  note_embedded_flags(*run, o);
  EXPECT_EQ(o.embedded_flags, (std::vector<std::string>{"--ring-mib", "--policy"}));
}

TEST(RunRequest, BadLimitAndMissingCommandFailWithTheirCodes) {
  RunOptions o;
  o.command = {"no-such-command-anywhere"};
  RunContext ctx{{"PATH=/bin:/usr/bin"}, "/"};
  try {
    run_executable(o, ctx);
    FAIL() << "found a command that does not exist";
  } catch (const Failure& f) {
    EXPECT_EQ(f.code, kNotFound);
    EXPECT_EQ(f.message, "command not found: no-such-command-anywhere");
  }
  o.command = {"true"};
  o.max_pids = 1;
  try {
    run_request(o, Credentials{}, "/bin/true", ctx);
    FAIL() << "a max-pids of 1 was accepted";
  } catch (const Failure& f) {
    EXPECT_EQ(f.code, kCorralFailed);
    EXPECT_NE(f.message.find("max pids 1 is below the minimum"), std::string::npos) << f.message;
  }
}

// The corral command hands the daemon the run as typed: the daemon reads
// it with the client's environment and directory, not its own, and hands
// back whatever it would not run exactly as corral-core would.
TEST(RunRequest, TheDaemonReadsTheRunAsTyped) {
  auto invocation = [](std::vector<std::string> args, std::vector<std::string> env) {
    control::Invocation inv;
    for (auto& a : args) inv.add_args(a);
    for (auto& e : env) inv.add_env(e);
    inv.set_cwd("/usr");
    return inv;
  };
  const std::string sock = "/run/test/control.sock";
  InvocationReader reader(sock);
  const std::vector<std::string> env = {"PATH=/nonexistent:bin", "SUDO_UID=0", "HOME=/elsewhere"};
  auto inv = invocation({"run", "--daemon-socket", sock, "--allow-root", "--net", "none", "--",
                         "env", "-i"},
                        env);
  inv.set_terminal(true);
  auto r = reader.request(inv);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->exe(), "/usr/bin/env") << "PATH's relative entry is from the client's directory";
  EXPECT_EQ(r->argv_size(), 2);
  EXPECT_EQ(r->cwd(), "/usr");
  EXPECT_EQ(r->net(), "none");
  EXPECT_EQ(r->uid(), 0u);
  EXPECT_EQ(r->home(), "/root");
  EXPECT_TRUE(r->terminal());
  std::set<std::string> got(r->env().begin(), r->env().end());
  EXPECT_TRUE(got.count("PATH=/nonexistent:bin"));
  EXPECT_TRUE(got.count("HOME=/root"));
  EXPECT_FALSE(got.count("HOME=/elsewhere"));

  auto with_socket = [&](std::vector<std::string> flags) {
    std::vector<std::string> args = {"run", "--daemon-socket=" + sock};
    args.insert(args.end(), flags.begin(), flags.end());
    return args;
  };
  std::vector<std::pair<std::string, control::Invocation>> handed_back = {
      {"another daemon's", invocation({"run", "--daemon-socket", "/run/other.sock", "--allow-root",
                                       "--", "true"}, env)},
      {"the default daemon's", invocation({"run", "--allow-root", "--", "true"}, env)},
      {"--embedded", invocation(with_socket({"--embedded", "--allow-root", "--", "true"}), env)},
      {"--worktree", invocation(with_socket({"--worktree", "w", "--allow-root", "--", "true"}), env)},
      {"--policy", invocation(with_socket({"--policy", "p.yaml", "--allow-root", "--", "true"}), env)},
      {"--help", invocation(with_socket({"--help"}), env)},
      {"an unknown flag", invocation(with_socket({"--no-such-flag", "--", "true"}), env)},
      {"no command", invocation(with_socket({"--allow-root"}), env)},
      {"a missing command", invocation(with_socket({"--allow-root", "--", "no-such-command-x"}), env)},
      {"root without --allow-root", invocation(with_socket({"--", "true"}), env)},
      {"a bad limit", invocation(with_socket({"--allow-root", "--max-pids", "1", "--", "true"}), env)},
      {"not run", invocation({"ps"}, env)},
  };
  for (const auto& [what, inv] : handed_back)
    EXPECT_FALSE(reader.request(inv).has_value()) << what;
  auto relative = invocation(with_socket({"--allow-root", "--", "true"}), env);
  relative.set_cwd("usr");
  EXPECT_FALSE(reader.request(relative).has_value()) << "a relative directory";

  // One parser for every run: nothing of one run's flags carries over.
  auto plain = reader.request(invocation(with_socket({"--allow-root", "--", "true"}), env));
  ASSERT_TRUE(plain.has_value());
  EXPECT_EQ(plain->net(), "allow");
  EXPECT_EQ(plain->max_pids(), 0u);
  EXPECT_EQ(plain->argv_size(), 1);
  EXPECT_FALSE(plain->terminal());
}

// What reaches the daemon is checked again there: a NUL byte would split
// an argument on its way to the agent (init_main.cc), or cut a path short.
TEST(RunRequest, TheDaemonRefusesNulBytes) {
  control::RunRequest r;
  r.set_exe("/bin/echo");
  r.add_argv("echo");
  r.add_argv("hi");
  r.set_cwd("/work");
  r.set_home("/home/dev");
  r.set_net("allow");
  EXPECT_NO_THROW(from_request(r));
  for (std::string field : {"exe", "argv", "env", "cwd", "writable"}) {
    control::RunRequest bad = r;
    const std::string nul("a\0b", 3);
    if (field == "exe") bad.set_exe("/bin/" + nul);
    else if (field == "argv") bad.set_argv(1, nul);
    else if (field == "env") bad.add_env("X=" + nul);
    else if (field == "cwd") bad.set_cwd("/work/" + nul);
    else bad.add_writable("/data/" + nul);
    try {
      from_request(bad);
      ADD_FAILURE() << "a NUL byte in " << field << " was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_EQ(std::string(e.what()), std::string("run request: ") + field + ": contains a NUL byte");
    }
  }
}

TEST(ProcStatus, NameWithSpacesAndTheRealIds) {
  auto s = parse_proc_status(
      "Name:\tWeb Content\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\n"
      "Pid:\t4250\nPPid:\t4100\nTracerPid:\t0\nUid:\t1000\t1001\t1002\t1003\n"
      "Gid:\t100\t101\t102\t103\n");
  EXPECT_EQ(s.comm, "Web Content");
  EXPECT_EQ(s.tgid, 4242);
  EXPECT_EQ(s.ppid, 4100);
  EXPECT_EQ(s.uid, 1000u);
  EXPECT_EQ(s.gid, 100u);
}

TEST(ProcStatus, OwnThreadAndAGoneOne) {
  auto self = read_proc_status(::gettid());
  ASSERT_TRUE(self);
  EXPECT_EQ(self->tgid, ::getpid());
  EXPECT_EQ(self->ppid, ::getppid());
  EXPECT_EQ(self->uid, ::getuid());
  EXPECT_FALSE(read_proc_status(0x3ffffff0));
}

}  // namespace
}  // namespace corral
