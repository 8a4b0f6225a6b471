// The session's namespaces (agent/mnt.cc, agent/process.cc): the host is
// read-only but for the project directory, /tmp is private, credential
// directories are empty, host processes are invisible, host name and IPC
// are the session's own; and ordinary work in the project still succeeds.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "harness.h"

namespace corral::test {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kRoot = {"--allow-root"};

// DIR/policy.yaml: the default policy and one rule `id` in `section`
// (writable, hidden...) over `paths` (a YAML flow list's items); its path.
std::string extend_default(const std::string& dir, const std::string& section,
                           const std::string& id, const std::string& paths) {
  std::string policy = dir + "/policy.yaml";
  write_file(policy, "version: 1\nextends: default\n" + section + ":\n  - {id: " + id +
                         ", paths: [" + paths + "]}\n");
  return policy;
}

std::string trim_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::vector<const audit::Record*> failed_opens(const RunResult& r, const std::string& path) {
  return select(r, [&](const audit::Record& rec) {
    return rec.has_open() && rec.open().path() == path && rec.open().result() < 0;
  });
}

// Writes anywhere but the project directory fail with EROFS, and the trail
// has each attempt; the project directory and the private /tmp work, and
// what the session put in /tmp never reaches the host's.
TEST(Sandbox, OnlyTheProjectIsWritable) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string d = dir.path();
  const std::string status = d + "/status";
  const std::string outside = "/var/tmp/corral-sandbox-" + std::to_string(::getpid());
  fs::remove(outside);
  InDir cwd(d);
  auto r = run_corral(kRoot, {"/bin/bash", "-c",
                              prelude(status) +
                                  "t project sh -c 'echo built > out.txt'\n"
                                  "t etc sh -c 'echo x > /etc/corral-sandbox'\n"
                                  "t vartmp sh -c 'echo x > " + outside + "'\n"
                                  "t usr touch /usr/bin/corral-sandbox\n"
                                  "t tmp sh -c 'echo scratch > /tmp/corral-scratch && "
                                  "cat /tmp/corral-scratch'\n"
                                  "t rm rm -f /etc/hostname\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto st = read_status(status);
  EXPECT_EQ(st["project"], "0");
  EXPECT_EQ(read_file(d + "/out.txt"), "built\n");
  EXPECT_EQ(st["etc"], "2");
  EXPECT_EQ(st["vartmp"], "2");
  EXPECT_EQ(st["usr"], "1");
  EXPECT_EQ(st["rm"], "1");
  EXPECT_EQ(st["tmp"], "0");
  EXPECT_FALSE(fs::exists("/etc/corral-sandbox"));
  EXPECT_FALSE(fs::exists(outside));
  EXPECT_FALSE(fs::exists("/tmp/corral-scratch")) << "the session's /tmp is its own";
  EXPECT_TRUE(fs::exists("/etc/hostname"));
  for (const std::string& p : {std::string("/etc/corral-sandbox"), outside}) {
    auto opens = failed_opens(r, p);
    ASSERT_EQ(opens.size(), 1u) << p;
    EXPECT_EQ(opens[0]->open().error(), "EROFS");
  }
  auto unlinks = select(r, [](const audit::Record& rec) {
    return rec.has_unlink() && rec.unlink().path() == "/etc/hostname";
  });
  ASSERT_EQ(unlinks.size(), 1u);
  EXPECT_EQ(unlinks[0]->unlink().error(), "EROFS");
}

// A policy's writable path may be a symlink (dotfiles managers make them):
// it is writable where it leads; its neighbours stay read-only.
TEST(Sandbox, WritablePathThroughASymlink) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir("/var/tmp");
  const std::string d = dir.path();
  fs::create_directories(d + "/real");
  fs::create_directories(d + "/proj");
  fs::create_symlink(d + "/real", d + "/cache");
  const std::string policy = extend_default(d, "writable", "c", d + "/cache");
  InDir cwd(d + "/proj");
  auto r = run_corral({"--allow-root", "--policy", policy},
                      {"/bin/sh", "-c", "echo x > " + d + "/cache/f && ! echo y > " + d + "/g"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(read_file(d + "/real/f"), "x\n");
  EXPECT_FALSE(fs::exists(d + "/g"));
}

// A hidden directory is an empty, read-only one in the session, by its path
// and by every alias of it; its files stay readable on the host.
TEST(Sandbox, HiddenDirectoriesAreEmptyByEveryAlias) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string d = dir.path();
  const std::string proj = d + "/proj";
  const std::string keys = d + "/home/.ssh";
  fs::create_directories(proj);
  fs::create_directories(keys);
  write_file(keys + "/id_ed25519", "PRIVATE KEY\n");
  fs::create_symlink(keys, proj + "/ssh-link");
  const std::string policy = extend_default(d, "hidden", "test-keys", keys);
  const std::string status = proj + "/status";
  InDir cwd(proj);
  auto r = run_corral({"--allow-root", "--policy", policy},
                      {"/bin/bash", "-c",
                       prelude(status) +
                           "o path " + keys + "/id_ed25519\n"
                           "o symlink ssh-link/id_ed25519\n"
                           "o procroot /proc/self/root" + keys + "/id_ed25519\n"
                           "t list sh -c 'test -z \"$(ls -A " + keys + ")\"'\n"
                           "t plant sh -c 'echo evil > " + keys + "/authorized_keys'\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto st = read_status(status);
  EXPECT_EQ(st["path"], "-2");  // ENOENT: nothing there
  EXPECT_EQ(st["symlink"], "-2");
  EXPECT_EQ(st["procroot"], "-2");
  EXPECT_EQ(st["list"], "0") << "the hidden directory lists empty";
  EXPECT_EQ(st["plant"], "2");
  EXPECT_FALSE(fs::exists(keys + "/authorized_keys"));
  EXPECT_EQ(read_file(keys + "/id_ed25519"), "PRIVATE KEY\n");
  auto attempts = select(r, [](const audit::Record& rec) {
    return rec.has_open() && rec.open().requested().ends_with("/id_ed25519") &&
           rec.open().error() == "ENOENT";
  });
  EXPECT_EQ(attempts.size(), 3u) << "every attempt is on record";
}

// A hidden file reads empty in the session (it is /dev/null there: a write
// goes nowhere) and cannot be removed; on the host it keeps its content.
TEST(Sandbox, HiddenFilesReadEmptyAndStayUnchanged) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir("/var/tmp");
  const std::string d = dir.path();
  const std::string proj = d + "/proj";
  const std::string token = d + "/home/.tool-token";
  fs::create_directories(proj);
  fs::create_directories(d + "/home");
  write_file(token, "token-123\n");
  const std::string policy =
      extend_default(d, "hidden", "test-token", token + ", " + d + "/home/missing");
  const std::string status = proj + "/status";
  InDir cwd(proj);
  auto r = run_corral({"--allow-root", "--policy", policy},
                      {"/bin/bash", "-c",
                       prelude(status) +
                           "t empty test ! -s " + token + "\n"
                           "sh -c 'echo evil > " + token + "' 2>/dev/null\n"
                           "t still-empty test ! -s " + token + "\n"
                           "t remove rm -f " + token + "\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto st = read_status(status);
  EXPECT_EQ(st["empty"], "0") << "the hidden file reads empty";
  EXPECT_EQ(st["still-empty"], "0") << "a write goes nowhere";
  EXPECT_NE(st["remove"], "0");
  EXPECT_EQ(read_file(token), "token-123\n");
}

// The session has its own /proc, host name and System V IPC: a host
// process can be neither seen nor signalled.
TEST(Sandbox, HostProcessesHostNameAndIpcAreOutOfReach) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string status = dir.path() + "/status";
  pid_t host = ::fork();
  if (host == 0) {
    ::execl("/bin/sleep", "sleep", "30", nullptr);
    _exit(127);
  }
  char name[256] = {};
  ::gethostname(name, sizeof name - 1);
  InDir cwd(dir.path());
  const std::string pid = std::to_string(host);
  auto r = run_corral(kRoot, {"/bin/bash", "-c",
                              prelude(status) +
                                  "t see test -e /proc/" + pid + "\n"
                                  "t signal kill -0 " + pid + "\n"
                                  "t count sh -c 'test $(ls -d /proc/[0-9]* | wc -l) -lt 10'\n"
                                  "t hostname hostname corral-sandbox-test\n"
                                  "t ipc ipcmk -Q\n"});
  ::kill(host, SIGKILL);
  ::waitpid(host, nullptr, 0);
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto st = read_status(status);
  EXPECT_EQ(st["see"], "1") << "a host process is visible in /proc";
  EXPECT_EQ(st["signal"], "1") << "a host process could be signalled";
  EXPECT_EQ(st["count"], "0") << "the session's /proc lists more than its own processes";
  EXPECT_NE(st["hostname"], "0") << "an agent without capabilities set a host name";
  char after[256] = {};
  ::gethostname(after, sizeof after - 1);
  EXPECT_STREQ(after, name) << "the session changed the host's name";
  EXPECT_EQ(st["ipc"], "0");
  auto ipcs = run_command({"/usr/bin/ipcs", "-q"});
  EXPECT_EQ(ipcs.output.find("0x"), std::string::npos) << "a session's queue is on the host:\n"
                                                       << ipcs.output;
}

// The agent holds no capability, even as root (--allow-root): not in any of
// its sets, nor in the bounding set an exec could grant them from again.
TEST(Sandbox, NoCapabilitiesEvenAsRoot) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string status = dir.path() + "/status";
  InDir cwd(dir.path());
  auto r = run_corral(kRoot, {"/bin/bash", "-c",
                              prelude(status) +
                                  "grep ^Cap /proc/self/status > caps.txt\n"
                                  "t uid test $(id -u) -eq 0\n"
                                  "t chown sh -c 'touch f && chown 1:1 f'\n"
                                  "t mknod mknod node c 1 3\n"
                                  "t readmem sh -c 'head -c1 /proc/1/mem'\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  std::string caps = read_file(dir.path() + "/caps.txt");
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"})
    EXPECT_NE(caps.find(std::string(set) + ":\t0000000000000000"), std::string::npos)
        << set << " is not empty:\n" << caps;
  auto st = read_status(status);
  EXPECT_EQ(st["uid"], "0");
  EXPECT_NE(st["chown"], "0") << "chown to another user worked";
  EXPECT_NE(st["mknod"], "0") << "mknod of a device worked";
  EXPECT_NE(st["readmem"], "0") << "the agent read its init's memory";
}

// Pid 1 of the session is corral-init, a small static program of its own:
// not a copy of the supervisor's memory (its keys, its maps' contents), as
// a fork of the supervisor would be; and the agent's environment (API keys)
// is not on its command line, which anyone may read.
TEST(Sandbox, TheInitHoldsNoCopyOfTheSupervisor) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  InDir cwd(dir.path());
  ::setenv("CORRAL_TEST_API_KEY", "sk-test-4e1d", 1);
  auto r = run_corral(kRoot, {"/bin/bash", "-c",
                              "cat /proc/1/comm > comm.txt && "
                              "awk '/^VmSize:/ { print $2 }' /proc/1/status > vm.txt && "
                              "tr '\\0' ' ' < /proc/1/cmdline > cmdline.txt && "
                              "echo $CORRAL_TEST_API_KEY > key.txt"});
  ::unsetenv("CORRAL_TEST_API_KEY");
  ASSERT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(read_file(dir.path() + "/key.txt"), "sk-test-4e1d\n") << "the agent lost its environment";
  const std::string cmdline = read_file(dir.path() + "/cmdline.txt");
  EXPECT_NE(cmdline.find("corral-init"), std::string::npos) << cmdline;
  EXPECT_EQ(cmdline.find("sk-test-4e1d"), std::string::npos) << "pid 1 shows the environment: " << cmdline;
  EXPECT_EQ(read_file(dir.path() + "/comm.txt"), "corral-init\n");
  const long vm_kb = std::stol(read_file(dir.path() + "/vm.txt"));
  EXPECT_LT(vm_kb, 4 * 1024) << "pid 1 maps " << vm_kb << " kB, more than corral-init needs";
}

// What an agent normally does: build, run tests, commit in its repository.
TEST(Sandbox, OrdinaryWorkInTheProjectSucceeds) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string repo = dir.path() + "/repo";
  ASSERT_EQ(std::system(("git init -q " + repo).c_str()), 0);
  write_file(repo + "/main.c", "int main(void) { return 0; }\n");
  InDir cwd(repo);
  auto r = run_corral(kRoot, {"/bin/bash", "-c",
                              "set -e\n"
                              "cc -o main main.c && ./main\n"
                              "mkdir -p node_modules/.cache && echo {} > node_modules/.cache/x\n"
                              "git add main.c\n"
                              "git -c user.name=a -c user.email=a@example.com commit -qm work\n"
                              "git status --short > status.txt\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_TRUE(fs::exists(repo + "/main"));
  auto log = run_command({"/usr/bin/git", "-C", repo, "log", "--format=%s"});
  EXPECT_EQ(log.output, "work\n");
}

// Limits: a fork bomb stays under --max-pids, a memory hog is OOM-killed
// inside the session, --timeout ends it; each is on record, the host fine.
TEST(Sandbox, LimitsContainForkBombsMemoryAndTime) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  InDir cwd(dir.path());
  auto bomb = run_corral({"--allow-root", "--max-pids", "32", "--timeout", "3"},
                         {"/bin/bash", "-c", "b() { b | b & }; b 2>/dev/null; sleep 30"});
  EXPECT_EQ(bomb.exit_code, 137) << bomb.stderr_text;
  auto hits = select(bomb, [](const audit::Record& r) {
    return r.has_limit() && r.limit().resource() == "pids";
  });
  ASSERT_FALSE(hits.empty()) << "no record of refused forks";
  for (const auto* h : hits) EXPECT_LE(h->limit().current(), 32u);
  ASSERT_TRUE(bomb.records.back().has_session_end());
  const auto& end = bomb.records.back().session_end();
  EXPECT_TRUE(end.timed_out());
  EXPECT_LE(end.usage().pids_peak(), 32u);
  EXPECT_GT(end.usage().pids_max_hits(), 0u);
  EXPECT_EQ(select(bomb, [](const audit::Record& r) {
              return r.has_limit() && r.limit().resource() == "time";
            }).size(),
            1u);
  ASSERT_TRUE(bomb.records.front().has_session_start());
  EXPECT_EQ(bomb.records.front().session_start().limits().max_pids(), 32u);

  // tail holds a 200 MiB line (no newline in /dev/zero) against 64 MiB.
  auto hog = run_corral({"--allow-root", "--max-memory-mib", "64"},
                        {"/bin/sh", "-c", "head -c 200M /dev/zero | tail > /dev/null"});
  EXPECT_NE(hog.exit_code, 0) << hog.stderr_text;
  ASSERT_TRUE(hog.records.back().has_session_end());
  EXPECT_GE(hog.records.back().session_end().usage().oom_kills(), 1u);
  EXPECT_FALSE(hog.records.back().session_end().timed_out());
}

// Two agents side by side in two worktrees of one repository: each commits
// in its own, neither can write the other's, the user's checkout, or
// another branch; the user merges one and discards the other.
TEST(Sandbox, TwoWorktreesSideBySideThenMergeAndDiscard) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir("/var/tmp");  // the host's view, read-only in sessions (not a private /tmp)
  const std::string d = dir.path();
  const std::string repo = d + "/repo";
  const std::string wts = d + "/worktrees";
  ASSERT_EQ(std::system(("git init -q -b main " + repo + " && git -C " + repo +
                         " -c user.name=u -c user.email=u@example.com commit -q --allow-empty "
                         "-m init")
                            .c_str()),
            0);
  InDir cwd(repo);
  auto agent = [&](const std::string& name, const std::string& script) {
    return run_corral({"--allow-root", "--worktree", name, "--worktrees-dir", wts},
                      {"/bin/bash", "-c",
                       "git config user.name agent 2>/dev/null; export GIT_AUTHOR_NAME=agent "
                       "GIT_AUTHOR_EMAIL=a@example.com GIT_COMMITTER_NAME=agent "
                       "GIT_COMMITTER_EMAIL=a@example.com\n" +
                           script});
  };
  auto b = agent("b", "echo B > b.txt && git add b.txt && git commit -qm b");
  ASSERT_EQ(b.exit_code, 0) << b.stderr_text;
  const std::string b_tip = run_command({"/usr/bin/git", "-C", repo, "rev-parse", "corral/b"}).output;
  // b's commit object, as a loose file of the shared store
  const std::string b_obj = trim_line(b_tip);
  const std::string b_obj_file = repo + "/.git/objects/" + b_obj.substr(0, 2) + "/" + b_obj.substr(2);
  ASSERT_TRUE(fs::exists(b_obj_file)) << b_obj_file;
  const std::string b_obj_bytes = read_file(b_obj_file);
  ASSERT_TRUE(b.records.front().has_session_start());
  const std::string b_path = b.records.front().session_start().cwd();
  EXPECT_EQ(b.records.front().session_start().worktree(), "b");
  EXPECT_TRUE(b_path.starts_with(wts)) << b_path;

  // The status file is relative: in a's worktree, the one place it may write.
  auto a = agent("a", prelude("status-a") +
                          "t commit sh -c 'echo A > a.txt && git add a.txt && git commit -qm a'\n"
                          "t checkout sh -c 'echo x > " + repo + "/evil'\n"
                          "t other sh -c 'echo x > " + b_path + "/evil'\n"
                          "t main git update-ref refs/heads/main HEAD\n"
                          "t hook sh -c 'echo x > " + repo + "/.git/hooks/pre-commit'\n"
                          "t remote git remote add evil https://evil.example/x.git\n"
                          // another session's branch, and an object of the shared store
                          "t branch git update-ref refs/heads/corral/b HEAD\n"
                          "t object sh -c 'chmod u+w " + b_obj_file + " && echo junk > " +
                          b_obj_file + "'\n");
  ASSERT_EQ(a.exit_code, 0) << a.stderr_text;
  const std::string a_path = a.records.front().session_start().cwd();
  auto st = read_status(a_path + "/status-a");
  fs::remove(a_path + "/status-a");  // untracked files would block the merge
  EXPECT_EQ(st["commit"], "0");
  EXPECT_EQ(st["checkout"], "2");  // sh: cannot create (EROFS)
  EXPECT_EQ(st["other"], "2");
  EXPECT_NE(st["main"], "0");
  EXPECT_EQ(st["hook"], "2");
  EXPECT_NE(st["remote"], "0") << "the agent added a remote to the repository's config";
  auto remotes = run_command({"/usr/bin/git", "-C", repo, "remote"});
  EXPECT_EQ(remotes.output, "");
  EXPECT_FALSE(fs::exists(repo + "/.git/hooks/pre-commit"));
  EXPECT_TRUE(fs::exists(a_path + "/a.txt"));
  EXPECT_FALSE(fs::exists(repo + "/evil")) << "the user's checkout was written";
  EXPECT_FALSE(fs::exists(b_path + "/evil")) << "the other worktree was written";
  auto main_ref = run_command({"/usr/bin/git", "-C", repo, "rev-parse", "main"});
  auto init_ref = run_command({"/usr/bin/git", "-C", repo, "rev-list", "--max-parents=0", "main"});
  EXPECT_EQ(main_ref.output, init_ref.output) << "an agent moved the user's branch";
  auto a_log = run_command({"/usr/bin/git", "-C", a_path, "log", "--format=%s", "-1"});
  EXPECT_EQ(a_log.output, "a\n") << "git commit in the worktree did not work";
  // Inside, both seemed to work (the session writes through overlays);
  // after it, only its own branch moved, and no object changed.
  EXPECT_EQ(st["branch"], "0");
  EXPECT_EQ(st["object"], "0");
  EXPECT_EQ(run_command({"/usr/bin/git", "-C", repo, "rev-parse", "corral/b"}).output, b_tip)
      << "a session moved another session's branch";
  EXPECT_EQ(read_file(b_obj_file), b_obj_bytes) << "a session rewrote an object of the store";
  EXPECT_EQ(run_command({"/usr/bin/git", "-C", repo, "log", "--format=%s", "-1", "corral/a"}).output,
            "a\n")
      << "the session's own commit is not on its branch";
  // Resumed, the worktree's next session goes on from there.
  auto again = agent("a", "echo A2 >> a.txt && git commit -qam a2");
  ASSERT_EQ(again.exit_code, 0) << again.stderr_text;
  EXPECT_EQ(run_command({"/usr/bin/git", "-C", repo, "log", "--format=%s", "-2", "corral/a"}).output,
            "a2\na\n");
  auto fsck = run_command({"/usr/bin/git", "-C", repo, "fsck", "--no-dangling"});
  EXPECT_EQ(fsck.exit_code, 0) << fsck.output;
  EXPECT_NE(a.stderr_text.find("refs/heads/corral/b"), std::string::npos)
      << "the dropped change is not reported:\n" << a.stderr_text;

  auto review = run_command({corral_bin(), "review", "--no-pager", "--color", "never", "a"});
  EXPECT_EQ(review.exit_code, 0) << review.output;
  EXPECT_NE(review.output.find("a.txt"), std::string::npos) << review.output;
  auto merge = run_command({corral_bin(), "merge", "a"});
  EXPECT_EQ(merge.exit_code, 0) << merge.output;
  EXPECT_EQ(read_file(repo + "/a.txt"), "A\nA2\n");
  auto discard = run_command({corral_bin(), "discard", "b"});
  EXPECT_EQ(discard.exit_code, 0) << discard.output;
  EXPECT_FALSE(fs::exists(b_path));
  EXPECT_FALSE(fs::exists(repo + "/b.txt"));
  auto branches = run_command({"/usr/bin/git", "-C", repo, "branch", "--list", "corral/*"});
  EXPECT_EQ(branches.output.find("corral/b"), std::string::npos) << branches.output;
  // Merging again is refused: nothing to merge.
  EXPECT_NE(run_command({corral_bin(), "merge", "a"}).exit_code, 0);
}

// One session per worktree at a time: a second would take in, and empty,
// the first one's overlays while it runs.
TEST(Sandbox, OneSessionPerWorktree) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir("/var/tmp");
  const std::string repo = dir.path() + "/repo";
  ASSERT_EQ(std::system(("git init -q " + repo + " && git -C " + repo +
                         " -c user.name=u -c user.email=u@example.com commit -q --allow-empty -m i")
                            .c_str()),
            0);
  InDir cwd(repo);
  const std::vector<std::string> options = {"--allow-root", "--worktree", "w", "--worktrees-dir",
                                            dir.path() + "/wts"};
  const std::string audit = dir.path() + "/first.jsonl";
  pid_t first = spawn_corral(options, {"/bin/sleep", "30"}, audit, dir.path() + "/first.err");
  ASSERT_TRUE(wait_for_session_start(audit)) << read_file(dir.path() + "/first.err");
  auto second = run_corral(options, {"/bin/true"});
  ::kill(first, SIGTERM);
  ::waitpid(first, nullptr, 0);
  EXPECT_EQ(second.exit_code, 125);
  EXPECT_NE(second.stderr_text.find("worktree w has a session running"), std::string::npos)
      << second.stderr_text;
  // once it has ended, the worktree resumes
  EXPECT_EQ(run_corral(options, {"/bin/true"}).exit_code, 0);
}

}  // namespace
}  // namespace corral::test
