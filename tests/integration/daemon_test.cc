// `corral daemon` and warm `corral run`: sessions hosted by a running
// daemon are recorded in its log and enforced by its programs, and die when
// either end goes away.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "control.h"
#include "harness.h"

namespace corral::test {
namespace {

using namespace std::chrono_literals;

sockaddr_un unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  return addr;
}

bool can_connect(const std::string& path) {
  int s = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
  sockaddr_un addr = unix_address(path);
  bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  ::close(s);
  return ok;
}

template <typename Cond>
bool eventually(Cond cond, std::chrono::milliseconds limit = 10s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

// A `corral daemon` of the test's own: its log, socket and output in `dir`.
class DaemonProcess {
 public:
  explicit DaemonProcess(const std::string& dir)
      : audit(dir + "/audit.jsonl"), socket(dir + "/control.sock"), output(dir + "/daemon.out") {
    pid = spawn_command({corral_bin(), "daemon", "--quiet", "--audit", audit, "--audit-key",
                         audit_key(), "--socket", socket},
                        output);
    ready = eventually([&] { return can_connect(socket) || !running(pid); }, 30s) &&
            can_connect(socket);
  }
  ~DaemonProcess() {
    if (pid > 0) stop();
  }
  // SIGTERM; the daemon's exit status, or -1 (and SIGKILL) when it is
  // still there after `limit`.
  int stop(std::chrono::milliseconds limit = 20s) {
    ::kill(pid, SIGTERM);
    int status = 0;
    bool exited = eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, limit);
    if (!exited) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
    }
    pid = -1;
    if (!exited) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // `corral run --daemon-socket` with `options`, waited for.
  CommandResult run(const std::vector<std::string>& options,
                    const std::vector<std::string>& command) const {
    std::vector<std::string> args = {corral_bin(), "run", "--daemon-socket", socket};
    args.insert(args.end(), options.begin(), options.end());
    args.push_back("--");
    args.insert(args.end(), command.begin(), command.end());
    return run_command(args);
  }
  pid_t spawn_run(const std::vector<std::string>& command, const std::string& out) const {
    std::vector<std::string> args = {corral_bin(), "run", "--daemon-socket", socket,
                                     "--allow-root", "--"};
    args.insert(args.end(), command.begin(), command.end());
    return spawn_command(args, out);
  }

  std::string audit, socket, output;
  pid_t pid = -1;
  bool ready = false;
};

// Each test: a scratch project under /var/tmp (a session's /tmp is its own)
// as the cwd, and a daemon of its own there.
class Daemon : public ::testing::Test {
 protected:
  void SetUp() override {
    CORRAL_REQUIRE_ROOT();
    ASSERT_TRUE(d.ready) << read_file(d.output);
  }
  TempDir dir{"/var/tmp"};
  InDir in{dir.path()};
  DaemonProcess d{dir.path()};
};

std::string session_of(const std::vector<audit::Record>& records, const std::string& argv0) {
  for (const auto& r : records)
    if (r.has_session_start() && !r.session_start().command().empty() &&
        r.session_start().command(0) == argv0)
      return r.session();
  return "";
}

// The warm path end to end: the agent gets the client's stdout and stderr,
// its exit code comes back, the daemon's programs and guard enforce the
// policy, and every record lands in the daemon's log under one session id.
TEST_F(Daemon, WarmSessionsAreRecordedAndEnforced) {
  write_file(dir.path() + "/.env", "API_KEY=sk-daemon-test\n");

  auto r = d.run({"--allow-root"},
                 {"/bin/bash", "-c",
                  "echo out-of-the-agent; echo err-of-the-agent >&2; "
                  "cat .env >/dev/null 2>&1 && exit 9; exit 3"});
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("out-of-the-agent"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("err-of-the-agent"), std::string::npos) << r.output;
  auto second = d.run({"--allow-root"}, {"/bin/true"});
  EXPECT_EQ(second.exit_code, 0) << second.output;

  EXPECT_EQ(d.stop(), 0) << read_file(d.output);
  EXPECT_FALSE(std::filesystem::exists(d.socket));
  auto v = verify_audit({d.audit});
  EXPECT_EQ(v.exit_code, 0) << v.output;

  auto records = read_audit(d.audit);
  std::string bash = session_of(records, "/bin/bash");
  std::string truth = session_of(records, "/bin/true");
  ASSERT_FALSE(bash.empty());
  ASSERT_FALSE(truth.empty());
  EXPECT_NE(bash, truth);
  bool exec = false, denied = false, ended = false;
  for (const auto& rec : records) {
    if (rec.session() != bash) continue;
    if (rec.has_exec() && rec.exec().path() == "/usr/bin/bash") exec = true;
    if (rec.has_open() && rec.open().path() == dir.path() + "/.env" && rec.has_decision() &&
        rec.decision().action() == "deny")
      denied = true;
    if (rec.has_session_end()) {
      ended = true;
      EXPECT_EQ(rec.session_end().exit_code(), 3);
    }
  }
  EXPECT_TRUE(exec) << "no exec record of the agent";
  EXPECT_TRUE(denied) << "no denial of .env";
  EXPECT_TRUE(ended) << "no session_end";
}

// When the process started, in clock ticks since boot (/proc/PID/stat).
uint64_t start_ticks(pid_t pid) {
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  std::istringstream rest(stat.substr(stat.rfind(')') + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; i++) {
  }
  return std::stoull(field);
}

// The session init of `daemon` waiting that no session_start names (a
// prepared session: its corral-init, a child of the daemon), or 0.
pid_t prepared_init(pid_t daemon, const std::vector<audit::Record>& records) {
  std::set<pid_t> started;
  for (const auto& r : records)
    if (r.has_session_start()) started.insert(static_cast<pid_t>(r.session_start().pid()));
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = read_file(entry.path().string() + "/stat");  // "" once gone
    size_t close = stat.rfind(')');
    if (close == std::string::npos || stat.find("(corral-init)") == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 2));
    std::string state;
    pid_t ppid = 0;
    rest >> state >> ppid;
    if (ppid == daemon && !started.count(std::stoi(name))) return std::stoi(name);
  }
  return 0;
}

// A SOCK_SEQPACKET socket listening at `path` (none on failure), with
// `backlog`, that accepts nothing by itself.
UniqueFd listen_at(const std::string& path, int backlog) {
  UniqueFd s(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  sockaddr_un addr = unix_address(path);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(s.get(), backlog) != 0)
    return UniqueFd();
  return s;
}

std::vector<const audit::Record*> session_starts(const std::vector<audit::Record>& records) {
  std::vector<const audit::Record*> out;
  for (const auto& r : records)
    if (r.has_session_start()) out.push_back(&r);
  return out;
}

// A session in `proj` (made here), and the one the daemon prepares as it
// ends, waiting.
void run_and_await_prepared(const DaemonProcess& d, const std::string& proj) {
  std::filesystem::create_directory(proj);
  InDir in_proj(proj);
  auto first = d.run({"--allow-root"}, {"/bin/true"});
  ASSERT_EQ(first.exit_code, 0) << first.output;
  ASSERT_TRUE(eventually([&] { return prepared_init(d.pid, read_audit(d.audit)) != 0; }, 1s));
}

// As a session ends the daemon prepares the next one like it (its init
// waiting in its namespaces, behind its guard): the next request from the
// same user and project only releases the agent. The agent is the one asked
// for, with the client's output and exit code.
// A control socket removed from under a running daemon (a cleanup of /run,
// a mistaken rm) is bound again: else every `corral run` found no daemon and
// ran on its own, under the default policy and log instead of the daemon's.
// Its socket is removed at its end, and only its own.
TEST_F(Daemon, ARemovedSocketIsBoundAgain) {
  ASSERT_EQ(::unlink(d.socket.c_str()), 0);
  ASSERT_TRUE(eventually([&] { return can_connect(d.socket); }, 10s)) << read_file(d.output);
  EXPECT_NE(read_file(d.output).find("was removed; listening there again"), std::string::npos)
      << read_file(d.output);
  auto r = d.run({"--allow-root"}, {"/bin/true"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(d.stop(), 0) << read_file(d.output);
  EXPECT_FALSE(std::filesystem::exists(d.socket));
  EXPECT_FALSE(session_of(read_audit(d.audit), "/bin/true").empty()) << "not hosted by the daemon";
}

// A stranger's socket in its place that accepts nothing, its backlog full:
// asking whether anyone listens there must not wait (a blocking connect
// would stall the daemon's loop, its sessions' records and signals with
// it, for as long as the stranger pleases).
TEST_F(Daemon, AStrangersSocketThatAcceptsNothingDoesNotStallIt) {
  // Made beside it and renamed over it: no moment without a socket there,
  // in which the daemon's watch would bind the path again.
  const std::string beside = d.socket + ".stranger";
  UniqueFd stranger = listen_at(beside, 0);
  ASSERT_TRUE(stranger) << std::strerror(errno);
  ASSERT_EQ(::rename(beside.c_str(), d.socket.c_str()), 0);
  sockaddr_un addr = unix_address(d.socket);
  // a backlog of 0 holds one connection: the next connect(2) would block
  UniqueFd pending(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  ASSERT_EQ(::connect(pending.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  UniqueFd more(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  ASSERT_NE(::connect(more.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(errno, EAGAIN);

  EXPECT_TRUE(eventually([&] {
    return read_file(d.output).find("another corral daemon listens there now") != std::string::npos;
  }, 10s)) << read_file(d.output);
  EXPECT_EQ(d.stop(), 0) << "the daemon did not stop: " << read_file(d.output);
  EXPECT_TRUE(std::filesystem::exists(d.socket)) << "the stranger's socket was removed";
}

TEST_F(Daemon, NextSessionIsPreparedBeforeItIsAsked) {
  // a project of its own: the daemon's files and the client's output
  // change the test's directory
  const std::string proj = dir.path() + "/proj";
  ASSERT_NO_FATAL_FAILURE(run_and_await_prepared(d, proj));
  InDir in_proj(proj);
  // apart in /proc's start times, well within the spare's age
  std::this_thread::sleep_for(300ms);
  const std::string out = dir.path() + "/run.out";
  pid_t client = d.spawn_run({"/bin/bash", "-c", "sleep 1; echo from-the-spare; exit 5"}, out);
  std::vector<audit::Record> records;
  ASSERT_TRUE(eventually([&] {
    records = read_audit(d.audit);
    return session_starts(records).size() == 2;
  }));
  const pid_t init = static_cast<pid_t>(session_starts(records)[1]->session_start().pid());
  EXPECT_LT(start_ticks(init), start_ticks(client))
      << "the second session's init was not made before its request";
  int status = 0;
  ASSERT_EQ(::waitpid(client, &status, 0), client);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 5) << status << read_file(out);
  EXPECT_NE(read_file(out).find("from-the-spare"), std::string::npos) << read_file(out);

  EXPECT_EQ(d.stop(), 0) << read_file(d.output);
  records = read_audit(d.audit);
  // Only sessions asked for are in the trail: nothing of a prepared one
  // that nobody used.
  std::set<std::string> started, seen;
  for (const auto* r : session_starts(records)) started.insert(r->session());
  for (const auto& r : records)
    if (!r.session().empty()) seen.insert(r.session());
  EXPECT_EQ(started.size(), 2u);
  EXPECT_EQ(seen, started);
}

// A prepared session is not used once a path its mounts were made from
// changed: here the project, removed and made again — a session in the
// old one would find its files gone.
TEST_F(Daemon, PreparedSessionIsNotUsedOnceTheProjectChanged) {
  const std::string proj = dir.path() + "/proj";
  ASSERT_NO_FATAL_FAILURE(run_and_await_prepared(d, proj));
  std::filesystem::remove_all(proj);
  std::filesystem::create_directory(proj);
  write_file(proj + "/f", "fresh\n");
  InDir in_proj(proj);
  auto second = d.run({"--allow-root"}, {"/bin/cat", "f"});
  EXPECT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("fresh"), std::string::npos) << second.output;
}

// Nor once the host's mount table changed: its namespace is a private
// copy of the table as it was when it was made. Here a filesystem mounted
// since, outside the project (a mount in it changes a directory the
// spare's check stats): a session from the spare would find the empty
// directory under it.
TEST_F(Daemon, PreparedSessionIsNotUsedOnceTheHostMountsChanged) {
  TempDir outside("/var/tmp");  // the host's, in a session (its /tmp is private)
  const std::string mnt = outside.path() + "/mnt";
  std::filesystem::create_directory(mnt);
  const std::string proj = dir.path() + "/proj";
  ASSERT_NO_FATAL_FAILURE(run_and_await_prepared(d, proj));
  ASSERT_EQ(::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  write_file(mnt + "/f", "mounted since\n");
  InDir in_proj(proj);
  auto second = d.run({"--allow-root"}, {"/bin/cat", mnt + "/f"});
  EXPECT_EQ(second.exit_code, 0) << second.output;
  EXPECT_NE(second.output.find("mounted since"), std::string::npos) << second.output;
}

// A prepared session outlives a pause of several seconds (an agent run
// again after a look at its work): its inputs are checked at its use.
TEST_F(Daemon, PreparedSessionIsUsedAfterAPause) {
  const std::string proj = dir.path() + "/proj";
  ASSERT_NO_FATAL_FAILURE(run_and_await_prepared(d, proj));
  std::this_thread::sleep_for(3s);
  const pid_t init = prepared_init(d.pid, read_audit(d.audit));
  ASSERT_NE(init, 0) << "the prepared session was dropped";
  InDir in_proj(proj);
  auto second = d.run({"--allow-root"}, {"/bin/true"});
  EXPECT_EQ(second.exit_code, 0) << second.output;
  auto records = read_audit(d.audit);
  auto starts = session_starts(records);
  ASSERT_EQ(starts.size(), 2u);
  EXPECT_EQ(starts[1]->session_start().pid(), static_cast<uint32_t>(init));
}

// The small `corral` command hands this run to the daemon itself: a
// command given by a relative path is found where the user typed it.
TEST_F(Daemon, RelativeCommandRunsInTheDaemon) {
  write_file(dir.path() + "/hello.sh", "#!/bin/sh\necho hello from $1; exit 4\n");
  ASSERT_EQ(::chmod((dir.path() + "/hello.sh").c_str(), 0755), 0);
  auto r = d.run({"--allow-root"}, {"./hello.sh", "the-agent"});
  EXPECT_EQ(r.exit_code, 4) << r.output;
  EXPECT_NE(r.output.find("hello from the-agent"), std::string::npos) << r.output;
  EXPECT_EQ(d.stop(), 0) << read_file(d.output);
  auto records = read_audit(d.audit);
  std::string s = session_of(records, "./hello.sh");
  ASSERT_FALSE(s.empty()) << "the session did not run in the daemon";
}

// The daemon reads the run with the caller's environment, not its own:
// the agent's user (SUDO_UID), the PATH its command is found on, the
// variables it gets. What the daemon does not host is handed back to
// corral-core, which says why.
TEST_F(Daemon, RunIsReadWithTheCallersEnvironment) {
  ASSERT_EQ(::mkdir((dir.path() + "/bin").c_str(), 0755), 0);
  write_file(dir.path() + "/bin/corral-test-tool", "#!/bin/sh\necho \"$(id -u) $CORRAL_MARK $1\"\n");
  ASSERT_EQ(::chmod((dir.path() + "/bin/corral-test-tool").c_str(), 0755), 0);
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  // Not UTF-8, as an argument or a variable may be.
  auto r = run_command({"/usr/bin/env", "SUDO_UID=65534", "SUDO_GID=65534",
                        "CORRAL_MARK=from-the-caller\xff", "PATH=" + dir.path() + "/bin:/usr/bin:/bin",
                        corral_bin(), "run", "--daemon-socket", d.socket, "--", "corral-test-tool",
                        "arg\xfe"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("65534 from-the-caller\xff arg\xfe"), std::string::npos) << r.output;

  auto root = d.run({}, {"/bin/true"});  // no SUDO_UID: the caller is root
  EXPECT_EQ(root.exit_code, 125);
  EXPECT_NE(root.output.find("refusing to run the agent as root"), std::string::npos) << root.output;
  auto missing = d.run({"--allow-root"}, {"no-such-command-corral"});
  EXPECT_EQ(missing.exit_code, 127);
  EXPECT_NE(missing.output.find("command not found: no-such-command-corral"), std::string::npos)
      << missing.output;

  // What the corral command sends, answered by the daemon itself: a run
  // it hosts starts and ends there; one it does not is handed back.
  auto ask = [&](std::vector<std::string> flags) {
    UniqueFd sock = connect_control(d.socket);
    control::ClientMessage m;
    auto* inv = m.mutable_invocation();
    inv->add_args("run");
    inv->add_args("--daemon-socket=" + d.socket);
    for (const auto& f : flags) inv->add_args(f);
    for (const auto& a : {"--allow-root", "--", "/bin/true"}) inv->add_args(a);
    inv->add_env("PATH=/usr/bin:/bin");
    inv->set_cwd(dir.path());
    UniqueFd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
    send_packet(sock.get(), m, {null.get(), null.get(), null.get()});
    std::vector<control::DaemonMessage::BodyCase> replies;
    control::DaemonMessage reply;
    while (recv_packet(sock.get(), reply)) {
      replies.push_back(reply.body_case());
      if (reply.has_ended()) {
        EXPECT_EQ(reply.ended().exit_code(), 0);
      }
    }
    return replies;
  };
  using B = control::DaemonMessage::BodyCase;
  EXPECT_EQ(ask({}), (std::vector<B>{B::kStarted, B::kEnded}));
  {  // a request of a kind this daemon does not know: an answer, not a hang
    UniqueFd sock = connect_control(d.socket);
    ASSERT_GE(send_with_fds(sock.get(), std::string("\xfa\x07\x00", 3), {}), 0);
    control::DaemonMessage reply;
    ASSERT_TRUE(recv_packet(sock.get(), reply));
    EXPECT_NE(reply.error().find("does not know this request"), std::string::npos) << reply.error();
  }
  EXPECT_EQ(ask({"--embedded"}), std::vector<B>{B::kHandBack});
  EXPECT_EQ(ask({"--worktree", "w"}), std::vector<B>{B::kHandBack});

  EXPECT_EQ(d.stop(), 0) << read_file(d.output);
  auto records = read_audit(d.audit);
  EXPECT_FALSE(session_of(records, "corral-test-tool").empty()) << "the run did not reach the daemon";
  int starts = 0;
  for (const auto& rec : records) starts += rec.has_session_start();
  EXPECT_EQ(starts, 2) << "a refused or handed back run started a session";
}

// A worktree run is handed back by the daemon (corral-core makes the
// worktree, then asks the daemon again): its session runs in the daemon,
// in the worktree, and what it commits lands on the worktree's branch.
TEST_F(Daemon, WorktreeRunIsHandedBackAndHostedByTheDaemon) {
  const std::string repo = dir.path() + "/repo";
  ASSERT_EQ(std::system(("git init -q " + repo + " && git -C " + repo +
                         " -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m init")
                            .c_str()),
            0);
  auto r = run_command({"/bin/sh", "-c",
                        "cd " + repo + " && exec " + corral_bin() + " run --daemon-socket " + d.socket +
                            " --allow-root --worktree w --worktrees-dir " + dir.path() +
                            "/wts -- /bin/sh -c 'pwd; echo data > f && git add f && git -c user.name=a "
                            "-c user.email=a@example.com commit -qm agent'"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find(dir.path() + "/wts/"), std::string::npos) << r.output;
  auto log = run_command({"/usr/bin/git", "-C", repo, "log", "--format=%s", "corral/w"});
  EXPECT_EQ(log.output, "agent\ninit\n") << log.output;
  EXPECT_EQ(d.stop(), 0) << read_file(d.output);
  bool hosted = false;
  for (const auto& rec : read_audit(d.audit))
    hosted |= rec.has_session_start() && rec.session_start().worktree() == "w";
  EXPECT_TRUE(hosted) << "the worktree's session did not run in the daemon";
}

// Fail closed: the sessions are the daemon's children; killed outright, it
// takes them with it (double-forked daemons too), and the client says so.
TEST_F(Daemon, DaemonDeathKillsItsSessions) {
  std::string out = dir.path() + "/run.out";
  pid_t client = d.spawn_run(
      {"/bin/bash", "-c", "(setsid /bin/sleep 300 &); /bin/sleep 300"}, out);
  ASSERT_TRUE(wait_for_session_start(d.audit));
  std::string cgroup = read_audit(d.audit).front().session_start().cgroup();
  ASSERT_TRUE(eventually([&] { return cgroup_pids(cgroup).size() >= 3; }));
  auto members = cgroup_pids(cgroup);

  ASSERT_EQ(::kill(d.pid, SIGKILL), 0);
  ::waitpid(d.pid, nullptr, 0);
  d.pid = -1;
  EXPECT_TRUE(eventually([&] { return cgroup_pids(cgroup).empty(); }, 5s))
      << "session processes outlived their daemon";
  for (pid_t p : members) EXPECT_FALSE(running(p)) << "pid " << p << " still running";

  int status = 0;
  ASSERT_EQ(::waitpid(client, &status, 0), client);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 126) << status;
  EXPECT_NE(read_file(out).find("the corral daemon went away"), std::string::npos)
      << read_file(out);
}

// A session whose `corral run` is gone has nobody to answer to: the daemon
// kills it, records its end, and goes on serving.
TEST_F(Daemon, ClientDeathKillsItsSession) {
  pid_t client = d.spawn_run({"/bin/sleep", "300"}, dir.path() + "/run.out");
  ASSERT_TRUE(wait_for_session_start(d.audit));
  std::string cgroup = read_audit(d.audit).front().session_start().cgroup();
  ASSERT_TRUE(eventually([&] { return !cgroup_pids(cgroup).empty(); }));

  ASSERT_EQ(::kill(client, SIGKILL), 0);
  ::waitpid(client, nullptr, 0);
  EXPECT_TRUE(eventually([&] { return !std::filesystem::exists(cgroup); }, 5s))
      << "the session outlived its client";
  auto again = d.run({"--allow-root"}, {"/bin/true"});
  EXPECT_EQ(again.exit_code, 0) << again.output;

  EXPECT_EQ(d.stop(), 0);
  bool killed = false;
  for (const auto& rec : read_audit(d.audit))
    if (rec.has_session_end() && rec.session_end().signal() == SIGKILL) killed = true;
  EXPECT_TRUE(killed) << "no session_end recording the kill";
}

// A resized terminal reaches the agent through its client (its tty is not
// the agent's controlling terminal, so the kernel does not tell it).
TEST_F(Daemon, WindowResizeReachesTheAgent) {
  const std::string mark = dir.path() + "/winched";
  pid_t client = d.spawn_run(
      {"/bin/bash", "-c",
       "trap 'echo yes > " + mark + "' WINCH; touch " + mark + ".ready; "
       "for i in $(seq 200); do [ -s " + mark + " ] && exit 0; sleep 0.05; done; exit 7"},
      dir.path() + "/run.out");
  ASSERT_TRUE(eventually([&] { return std::filesystem::exists(mark + ".ready"); }));
  ASSERT_EQ(::kill(client, SIGWINCH), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(client, &status, 0), client);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << status << " " << read_file(dir.path() + "/run.out");
}

// A `corral run` of the daemon on a terminal of the test's own (a pty whose
// master it holds), as from an interactive shell.
class TerminalClient {
 public:
  // `prefix`: what runs corral run (e.g. in a namespace of its own).
  TerminalClient(const std::string& socket, const std::vector<std::string>& command,
                 const std::vector<std::string>& prefix = {},
                 const std::vector<std::string>& flags = {"--allow-root", "--"}) {
    winsize size{};
    size.ws_row = 33;
    size.ws_col = 101;
    pid = ::forkpty(&master, nullptr, nullptr, &size);
    if (pid == 0) {
      ::signal(SIGINT, SIG_DFL);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      std::vector<std::string> args = prefix;
      for (const auto& a : {corral_bin(), std::string("run"), std::string("--daemon-socket"), socket})
        args.push_back(a);
      args.insert(args.end(), flags.begin(), flags.end());
      args.insert(args.end(), command.begin(), command.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      _exit(120);
    }
  }
  ~TerminalClient() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    if (master >= 0) ::close(master);
  }
  // Reads what the agent shows until `text` appears (true) or 10 s pass.
  bool await(const std::string& text) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (seen.find(text) == std::string::npos) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      pollfd p = {master, POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      char buf[512];
      ssize_t n = ::read(master, buf, sizeof(buf));
      if (n > 0) seen.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  void type(const std::string& keys) { ASSERT_EQ(::write(master, keys.data(), keys.size()), ssize_t(keys.size())); }
  int exit_code() {
    int status = 0;
    if (!eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, 15s)) return -1;
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  int master = -1;
  pid_t pid = -1;
  std::string seen;
};

// On a terminal the agent gets a pty of its own as its controlling
// terminal: /dev/tty opens, the window size is the user's and follows a
// resize, the keys reach it, Ctrl-C is its terminal's SIGINT; corral puts
// the user's terminal back as it was.
TEST_F(Daemon, TerminalIsTheAgentsOwn) {
  termios before;
  TerminalClient t(d.socket, {"/bin/bash", "-c",
                       "stty size; exec 3</dev/tty && echo ctty-ok; read line; echo got-$line; "
                       "stty size; exec sleep 30"});
  ASSERT_EQ(::tcgetattr(t.master, &before), 0);
  ASSERT_TRUE(t.await("ctty-ok")) << t.seen;
  EXPECT_NE(t.seen.find("33 101"), std::string::npos) << t.seen;
  winsize bigger{};
  bigger.ws_row = 40;
  bigger.ws_col = 120;
  ASSERT_EQ(::ioctl(t.master, TIOCSWINSZ, &bigger), 0);  // the client is told: SIGWINCH
  std::this_thread::sleep_for(200ms);
  t.type("hello\r");
  ASSERT_TRUE(t.await("got-hello")) << t.seen;
  ASSERT_TRUE(t.await("40 120")) << t.seen;
  std::this_thread::sleep_for(200ms);
  t.type("\x03");
  EXPECT_EQ(t.exit_code(), 128 + SIGINT) << t.seen;
  termios after;
  ASSERT_EQ(::tcgetattr(t.master, &after), 0);
  EXPECT_EQ(after.c_lflag & (ICANON | ECHO | ISIG), before.c_lflag & (ICANON | ECHO | ISIG))
      << "the user's terminal was left in raw mode";
}

// Until the daemon has started the session nothing of corral's is on the
// user's terminal: with a daemon that takes the request and never answers
// (one too old to know it), the terminal is as it was and Ctrl-C ends the
// run; a run the daemon hands back (--help) leaves it as it was too.
TEST_F(Daemon, TerminalIsTheUsersUntilTheSessionStarts) {
  const std::string silent = dir.path() + "/silent.sock";
  UniqueFd listener = listen_at(silent, 4);
  ASSERT_TRUE(listener) << std::strerror(errno);
  const auto modes = ICANON | ECHO | ISIG;
  {
    TerminalClient t(silent, {"/bin/true"});
    termios before;
    ASSERT_EQ(::tcgetattr(t.master, &before), 0);
    pollfd p = {listener.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1) << "the client did not connect";
    UniqueFd conn(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    ASSERT_TRUE(conn);
    pollfd r = {conn.get(), POLLIN, 0};
    ASSERT_EQ(::poll(&r, 1, 10000), 1) << "no request came";
    std::this_thread::sleep_for(100ms);
    termios waiting;
    ASSERT_EQ(::tcgetattr(t.master, &waiting), 0);
    EXPECT_EQ(waiting.c_lflag & modes, before.c_lflag & modes) << "raw before the session started";
    t.type("\x03");  // the terminal's own SIGINT, to the client
    EXPECT_EQ(t.exit_code(), 128 + SIGINT) << t.seen;
  }
  {
    TerminalClient t(d.socket, {}, {}, {"--help"});
    termios before;
    ASSERT_EQ(::tcgetattr(t.master, &before), 0);
    EXPECT_TRUE(t.await("guarded session")) << t.seen;
    EXPECT_EQ(t.exit_code(), 0) << t.seen;
    termios after;
    ASSERT_EQ(::tcgetattr(t.master, &after), 0);
    EXPECT_EQ(after.c_lflag & modes, before.c_lflag & modes) << "left raw after a hand back";
  }
}

// The client itself stopped (SIGTSTP sent to it: the user's Ctrl-Z goes
// to the agent) leaves the user's terminal as it was, not raw; continued
// in the foreground, it is raw again and proxies on. Run as a job-control
// shell runs it: in a process group of its own, in the terminal's
// foreground, under a parent in the same session (the kernel does not stop
// an orphaned group: no one would continue it).
TEST_F(Daemon, StoppedClientLeavesTheTerminalCooked) {
  int master = -1, slave = -1;
  ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
  termios before;
  ASSERT_EQ(::tcgetattr(master, &before), 0);
  const auto modes = ICANON | ECHO | ISIG;
  auto lflag = [&] {
    termios now;
    EXPECT_EQ(::tcgetattr(master, &now), 0);
    return now.c_lflag & modes;
  };
  int pid_pipe[2];
  ASSERT_EQ(::pipe(pid_pipe), 0);
  std::vector<std::string> args = {corral_bin(), "run", "--daemon-socket", d.socket, "--allow-root",
                                   "--", "/bin/bash", "-c",
                                   "echo ready; read line; echo got-$line; exec sleep 30"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t shell = ::fork();
  ASSERT_GE(shell, 0);
  if (shell == 0) {
    ::setsid();
    ::ioctl(slave, TIOCSCTTY, 0);
    for (int i = 0; i < 3; i++) ::dup2(slave, i);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    pid_t job = ::fork();
    if (job == 0) {
      ::setpgid(0, 0);
      ::signal(SIGTTOU, SIG_IGN);  // handing ourselves the terminal, from the background
      ::tcsetpgrp(0, ::getpgrp());
      ::signal(SIGTTOU, SIG_DFL);
      ::signal(SIGINT, SIG_DFL);
      ::execv(argv[0], argv.data());
      _exit(120);
    }
    ::setpgid(job, job);
    (void)!::write(pid_pipe[1], &job, sizeof(job));
    int status = 0;
    while (::waitpid(job, &status, 0) < 0 && errno == EINTR) {
    }
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
  }
  ::close(slave);
  ::close(pid_pipe[1]);
  pid_t job = -1;
  ASSERT_EQ(::read(pid_pipe[0], &job, sizeof(job)), ssize_t(sizeof(job)));
  ::close(pid_pipe[0]);
  std::string seen;
  auto await = [&](const std::string& text) {
    return eventually([&] {
      pollfd p = {master, POLLIN, 0};
      if (::poll(&p, 1, 20) == 1) {
        char buf[512];
        ssize_t n = ::read(master, buf, sizeof(buf));
        if (n > 0) seen.append(buf, static_cast<size_t>(n));
      }
      return seen.find(text) != std::string::npos;
    });
  };
  auto state = [&] {
    std::string stat = read_file("/proc/" + std::to_string(job) + "/stat");
    size_t paren = stat.rfind(')');
    return paren == std::string::npos || paren + 2 >= stat.size() ? '?' : stat[paren + 2];
  };
  ASSERT_TRUE(await("ready")) << seen;
  ASSERT_NE(lflag(), before.c_lflag & modes) << "not raw while proxying";
  ASSERT_EQ(::kill(job, SIGTSTP), 0);
  ASSERT_TRUE(eventually([&] { return state() == 'T'; })) << "the client did not stop: " << state();
  EXPECT_EQ(lflag(), before.c_lflag & modes) << "stopped with the terminal raw";
  ASSERT_EQ(::kill(job, SIGCONT), 0);
  ASSERT_TRUE(eventually([&] { return lflag() != (before.c_lflag & modes); }))
      << "not raw again after SIGCONT";
  ASSERT_EQ(::write(master, "hello\r", 6), 6);
  ASSERT_TRUE(await("got-hello")) << seen;
  ASSERT_EQ(::write(master, "\x03", 1), 1);
  int status = 0;
  ASSERT_TRUE(eventually([&] { return ::waitpid(shell, &status, WNOHANG) == shell; }, 15s));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGINT) << status << " " << seen;
  ::close(master);
}

// Where no pty can be made (here: /dev/ptmx hidden from the client), the
// session still runs, on the user's terminal as it is, and says so.
TEST_F(Daemon, WithoutAPtyTheTerminalIsPassedAsIs) {
  TerminalClient t(d.socket, {"/bin/bash", "-c", "[ -t 0 ] && echo tty-yes; exec 3</dev/tty || echo no-ctty"},
                   {"/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c",
                    "mount --bind /dev/null /dev/ptmx && exec \"$0\" \"$@\""});
  EXPECT_TRUE(t.await("no-ctty")) << t.seen;
  EXPECT_EQ(t.exit_code(), 0) << t.seen;
  EXPECT_NE(t.seen.find("warning"), std::string::npos) << t.seen;
  EXPECT_NE(t.seen.find("tty-yes"), std::string::npos) << t.seen;
}

// Job control is the agent's: an interactive shell in the session stops
// its foreground job on Ctrl-Z, brings it back with fg, and Ctrl-C ends it.
TEST_F(Daemon, CtrlZStopsTheAgentsForegroundJob) {
  TerminalClient t(d.socket, {"/bin/bash", "--norc", "--noprofile", "-i"});
  ASSERT_TRUE(t.await("# ")) << t.seen;  // its prompt: readline took the terminal
  t.type("echo ready-$((6*7))\r");
  ASSERT_TRUE(t.await("ready-42")) << t.seen;
  t.type("sleep 30\r");
  std::this_thread::sleep_for(500ms);
  t.type("\x1a");  // Ctrl-Z
  ASSERT_TRUE(t.await("Stopped")) << t.seen;
  t.seen.erase(0, t.seen.find("Stopped"));
  ASSERT_TRUE(t.await("# ")) << t.seen;  // the shell has the terminal back
  std::this_thread::sleep_for(300ms);
  t.seen.clear();
  t.type("fg\r");  // back in the foreground, where Ctrl-C ends it
  ASSERT_TRUE(t.await("sleep 30\r\n")) << t.seen;
  std::this_thread::sleep_for(300ms);
  t.type("\x03");
  t.seen.clear();
  ASSERT_TRUE(t.await("# ")) << t.seen;
  std::this_thread::sleep_for(300ms);
  t.type("exit 3\r");
  EXPECT_EQ(t.exit_code(), 3) << t.seen;
  EXPECT_EQ(t.seen.find("no job control"), std::string::npos) << t.seen;
}

// corral ps lists the daemon's live sessions; corral kill ends one by an id
// prefix, and its client reports the kill.
TEST_F(Daemon, PsListsAndKillEnds) {
  auto empty = run_command({corral_bin(), "ps", "--daemon-socket", d.socket});
  EXPECT_EQ(empty.exit_code, 0) << "ps of a daemon with no session: " << empty.output;
  EXPECT_NE(empty.output.find("SESSION"), std::string::npos) << empty.output;
  pid_t first = d.spawn_run({"/bin/sleep", "301"}, dir.path() + "/first.out");
  pid_t second = d.spawn_run({"/bin/sleep", "302"}, dir.path() + "/second.out");
  std::vector<std::string> ids;
  ASSERT_TRUE(eventually([&] {
    ids.clear();
    for (const auto& rec : read_audit(d.audit))
      if (rec.has_session_start()) ids.push_back(rec.session());
    return ids.size() == 2;
  }));
  auto ps = run_command({corral_bin(), "ps", "--daemon-socket", d.socket});
  EXPECT_EQ(ps.exit_code, 0) << ps.output;
  for (const auto& id : ids) EXPECT_NE(ps.output.find(id), std::string::npos) << ps.output;
  EXPECT_NE(ps.output.find("/bin/sleep 301"), std::string::npos) << ps.output;
  EXPECT_NE(ps.output.find("/bin/sleep 302"), std::string::npos) << ps.output;

  const std::string& victim = read_audit(d.audit).front().session_start().command(1) == "301"
                                  ? ids[0]
                                  : ids[1];
  auto kill = run_command({corral_bin(), "kill", victim.substr(0, 8), "--daemon-socket", d.socket});
  EXPECT_EQ(kill.exit_code, 0) << kill.output;
  EXPECT_NE(kill.output.find("killed " + victim), std::string::npos) << kill.output;
  int status = 0;
  ASSERT_EQ(::waitpid(first, &status, 0), first);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL) << status;

  ps = run_command({corral_bin(), "ps", "--daemon-socket", d.socket});
  EXPECT_EQ(ps.output.find(victim), std::string::npos) << ps.output;
  EXPECT_NE(ps.output.find("/bin/sleep 302"), std::string::npos) << ps.output;
  auto none = run_command({corral_bin(), "kill", "nosuchid", "--daemon-socket", d.socket});
  EXPECT_EQ(none.exit_code, 125);
  EXPECT_NE(none.output.find("no live session 'nosuchid'"), std::string::npos) << none.output;

  EXPECT_EQ(d.stop(), 0);
  ::waitpid(second, nullptr, 0);
}

// SIGTERM ends the live sessions (their agents get it) and then the daemon,
// whether or not their clients are still there.
TEST_F(Daemon, StopEndsLiveSessions) {
  pid_t kept = d.spawn_run({"/bin/sleep", "300"}, dir.path() + "/kept.out");
  pid_t gone = d.spawn_run({"/bin/sleep", "300"}, dir.path() + "/gone.out");
  ASSERT_TRUE(eventually([&] {
    int starts = 0;
    for (const auto& rec : read_audit(d.audit)) starts += rec.has_session_start();
    return starts == 2;
  }));
  // at once: the client-less session still ends after the stop began
  ASSERT_EQ(::kill(gone, SIGKILL), 0);
  EXPECT_EQ(d.stop(), 0) << "the daemon did not stop\n" << read_file(d.output);
  ::waitpid(gone, nullptr, 0);
  int status = 0;
  ASSERT_EQ(::waitpid(kept, &status, 0), kept);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGTERM) << status;
  int ends = 0;
  for (const auto& rec : read_audit(d.audit)) ends += rec.has_session_end();
  EXPECT_EQ(ends, 2);
}

// Only root reaches the socket; a second daemon does not steal it; a run
// that asks for a supervisor of its own is refused rather than half-obeyed.
TEST_F(Daemon, RefusesWhatItMustNotServe) {

  pid_t child = ::fork();
  if (child == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) _exit(2);
    int s = ::socket(AF_UNIX, SOCK_SEQPACKET, 0);
    sockaddr_un addr = unix_address(d.socket);
    int rc = ::connect(s, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    _exit(rc == 0 ? 0 : errno == EACCES ? 1 : 3);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1)
      << "an unprivileged user could connect to the control socket";

  auto second = run_command({corral_bin(), "daemon", "--quiet", "--audit", dir.path() + "/b.jsonl",
                             "--audit-key", audit_key(), "--socket", d.socket});
  EXPECT_EQ(second.exit_code, 125);
  EXPECT_NE(second.output.find("a corral daemon already listens on " + d.socket),
            std::string::npos)
      << second.output;
  EXPECT_TRUE(can_connect(d.socket));

  auto own = d.run({"--allow-root", "--policy", CORRAL_OBSERVE_POLICY}, {"/bin/true"});
  EXPECT_EQ(own.exit_code, 125);
  EXPECT_NE(own.output.find("--policy configures a supervisor of this run's own"),
            std::string::npos)
      << own.output;
}

}  // namespace
}  // namespace corral::test
