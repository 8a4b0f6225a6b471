// Enforcement on real sessions: exec rules kill in the kernel, secret and
// protected files are refused through fanotify, the policy reloads on SIGHUP
// all or nothing, and nothing outside the session is touched. Each denial
// has its audit record naming the rule.
#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "harness.h"

namespace corral::test {
namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kRoot = {"--allow-root"};
const std::vector<std::string> kNobody = {"--user", "nobody"};


// Whole or nothing, as an editor that saves through a rename does: corral
// never reads half a policy.
void replace_file(const std::string& path, const std::string& text) {
  write_file(path + ".new", text);
  fs::rename(path + ".new", path);
}

void mkdir_open(const std::string& path, fs::perms mode = fs::perms(0755)) {
  fs::create_directories(path);
  fs::permissions(path, mode);
}

bool wait_for_file(const std::string& path, int timeout_ms = 5000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (fs::exists(path)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

// corral's cwd is the session's: the agent starts there, and `**/` globs
// find the secrets that exist at load (for their identity) below it.
// A git repository with one commit, made outside any session (git init
// writes .git/hooks and .git/config, which policies protect).
std::string make_repo(const std::string& path) {
  std::string cmd = "git init -q " + path + " && git -C " + path +
                    " -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m init";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return path;
}

// The agents below are bash scripts of prelude() (harness.h): t NAME CMD
// records CMD's exit status (137: SIGKILL), o NAME PATH the fd or -errno of
// an open, await FILE waits for the test.
bool is_fd(const std::string& v) { return !v.empty() && v.find_first_not_of("0123456789") == std::string::npos; }

std::string join(const google::protobuf::RepeatedPtrField<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : " ") + s;
  return out;
}

std::vector<const audit::Record*> exec_decisions(const RunResult& r) {
  return select(r, [](const audit::Record& rec) { return rec.has_exec() && rec.has_decision(); });
}

std::vector<const audit::Record*> open_decisions(const RunResult& r) {
  return select(r, [](const audit::Record& rec) { return rec.has_open() && rec.has_decision(); });
}

const audit::Record* exit_of(const RunResult& r, uint32_t pid) {
  for (const auto& rec : r.records)
    if (rec.has_exit() && rec.process().pid() == pid) return &rec;
  return nullptr;
}

std::string dump(const std::vector<const audit::Record*>& recs) {
  std::string out;
  for (const auto* r : recs) out += "\n  " + r->ShortDebugString();
  return out;
}

// The trail as it is now, complete lines only (corral may be mid-write).
std::vector<audit::Record> read_complete(const std::string& path) {
  std::vector<audit::Record> out;
  std::string text = read_file(path);
  size_t pos = 0;
  for (size_t nl; (nl = text.find('\n', pos)) != std::string::npos; pos = nl + 1) {
    audit::Record r;
    if (google::protobuf::util::JsonStringToMessage(text.substr(pos, nl - pos), &r).ok())
      out.push_back(std::move(r));
  }
  return out;
}

template <typename Pred>
bool wait_for_record(const std::string& audit_path, Pred pred, int timeout_ms = 5000) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    for (const auto& rec : read_complete(audit_path))
      if (pred(rec)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// A corral run by spawn_corral, killed (and with it its session) if a test
// ends before it did.
struct Spawned {
  pid_t pid = -1;
  ~Spawned() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  int wait() {
    int status = 0;
    ::waitpid(pid, &status, 0);
    pid = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
};

// A command run by the test process itself, outside every session.
struct HostRun {
  int status = -1;  // raw wait status
  std::string out, err;
};

HostRun run_on_host(const std::vector<std::string>& argv, const std::string& scratch) {
  std::string out_path = scratch + "/host.out", err_path = scratch + "/host.err";
  pid_t pid = ::fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_RDONLY);
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(null, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(120);
  }
  HostRun r;
  ::waitpid(pid, &r.status, 0);
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

// ---------------------------------------------------------------- exec

// The default policy's no-git-push: whatever way git push is reached, the
// kernel kills it before it runs, and the trail says which rule did.
TEST(Enforcement, DefaultPolicyKillsGitPushHoweverItIsRun) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string repo = make_repo(dir.path() + "/repo");
  const std::string status = repo + "/status";  // the project directory: writable
  InDir cwd(repo);
  auto r = run_corral(kRoot, {"/bin/bash", "-c",
                              prelude(status) +
                                  "t plain git push\n"
                                  "t sh sh -c 'git push'\n"
                                  "t env env git push\n"
                                  "t dotdot /usr/bin/../bin/git push\n"
                                  "t dashC git -C . push\n"
                                  "t dashc git -c core.pager=cat push\n"
                                  "t nopager git --no-pager push --force\n"
                                  "t argv0 bash -c 'exec -a notgit git push'\n"
                                  "t status git status\n"
                                  "t log git log\n"
                                  "t logpush git log push\n"
                                  "t Cvalue git -C push status\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto st = read_status(status);
  for (auto name : {"plain", "sh", "env", "dotdot", "dashC", "dashc", "nopager", "argv0"})
    EXPECT_EQ(st[name], "137") << name << " was not killed";
  EXPECT_EQ(st["status"], "0");
  EXPECT_EQ(st["log"], "0");
  // push is not the subcommand / push is -C's value: git's own error
  EXPECT_EQ(st["logpush"], "128");
  EXPECT_EQ(st["Cvalue"], "128");

  auto denied = exec_decisions(r);
  std::multiset<std::string> argvs;
  for (const auto* d : denied) {
    argvs.insert(join(d->exec().argv()));
    EXPECT_EQ(d->exec().path(), "/usr/bin/git");
    EXPECT_EQ(d->decision().action(), "deny");
    EXPECT_EQ(d->decision().rule(), "no-git-push");
    EXPECT_EQ(d->decision().mode(), "enforce");
    EXPECT_EQ(d->decision().policy_generation(), 1u);
    EXPECT_EQ(d->decision().rule_index(), 0u);
    EXPECT_NE(d->decision().reason().find("git"), std::string::npos) << d->decision().reason();
    const auto* ex = exit_of(r, d->process().pid());
    ASSERT_NE(ex, nullptr) << d->ShortDebugString();
    EXPECT_EQ(ex->exit().signal(), SIGKILL);
  }
  // git push three times (plain, through sh, through env), then the others
  EXPECT_EQ(argvs, (std::multiset<std::string>{
                       "git push", "git push", "git push", "/usr/bin/../bin/git push",
                       "git -C . push", "git -c core.pager=cat push",
                       "git --no-pager push --force", "notgit push"}))
      << dump(denied);
  // the allowed ones ran, undecided
  auto allowed = select(r, [](const audit::Record& rec) {
    return rec.has_exec() && rec.exec().path() == "/usr/bin/git" && rec.exec().argv_size() >= 2 &&
           (rec.exec().argv(1) == "status" || rec.exec().argv(1) == "log");
  });
  EXPECT_EQ(allowed.size(), 3u);
  for (const auto* a : allowed) EXPECT_FALSE(a->has_decision()) << a->ShortDebugString();
}

// A user policy that extends the default and turns no-git-push off: push
// runs (and fails on its own, for want of a remote).
TEST(Enforcement, RuleTurnedOffByAnExtendingPolicyDoesNothing) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string repo = make_repo(dir.path() + "/repo");
  const std::string status = repo + "/status";  // the project directory: writable
  const std::string policy = dir.path() + "/policy.yaml";
  write_file(policy,
             "version: 1\n"
             "extends: default\n"
             "exec:\n"
             "  - {id: no-git-push, mode: off, binary: git, args: [push]}\n");
  InDir cwd(repo);
  auto r = run_corral({"--allow-root", "--policy", policy},
                      {"/bin/bash", "-c",
                       prelude(status) + "t plain git push\nt sh sh -c 'git push --force'\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto st = read_status(status);
  EXPECT_EQ(st["plain"], "128") << "not killed: git's own 'no configured push destination'";
  EXPECT_EQ(st["sh"], "128");
  EXPECT_TRUE(exec_decisions(r).empty()) << dump(exec_decisions(r));
  auto pushes = select(r, [](const audit::Record& rec) {
    return rec.has_exec() && rec.exec().path() == "/usr/bin/git";
  });
  EXPECT_EQ(pushes.size(), 2u);
  // the rest of the default is still there
  ASSERT_GE(r.records.size(), 2u);
  ASSERT_TRUE(r.records[1].has_policy_load()) << r.records[1].ShortDebugString();
  EXPECT_TRUE(r.records[1].policy_load().accepted());
  EXPECT_NE(r.records[1].policy_load().summary().find("8 exec"), std::string::npos)
      << r.records[1].policy_load().summary();
  EXPECT_NE(r.records[1].policy_load().summary().find("1 off"), std::string::npos);
}

// Shadow mode: the command runs to its end, the trail says it would have
// been denied.
TEST(Enforcement, ShadowExecRuleRunsAndRecordsWouldDeny) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string status = dir.path() + "/status";
  const std::string policy = dir.path() + "/policy.yaml";
  write_file(policy,
             "version: 1\n"
             "exec:\n"
             "  - {id: watch-id, mode: shadow, binary: id}\n");
  InDir cwd(dir.path());
  auto r = run_corral({"--user", "nobody", "--policy", policy},
                      {"/bin/bash", "-c", prelude(status) + "t id id -u\nt true true\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto st = read_status(status);
  EXPECT_EQ(st["id"], "0");
  EXPECT_EQ(st["true"], "0");
  auto decided = exec_decisions(r);
  ASSERT_EQ(decided.size(), 1u) << dump(decided);
  const auto& d = *decided[0];
  EXPECT_EQ(d.exec().path(), "/usr/bin/id");
  EXPECT_EQ(d.decision().action(), "would_deny");
  EXPECT_EQ(d.decision().rule(), "watch-id");
  EXPECT_EQ(d.decision().mode(), "shadow");
  EXPECT_EQ(d.decision().policy_generation(), 1u);
  EXPECT_EQ(d.decision().rule_index(), 0u);
  const auto* ex = exit_of(r, d.process().pid());
  ASSERT_NE(ex, nullptr);
  EXPECT_EQ(ex->exit().signal(), 0);
  EXPECT_EQ(ex->exit().code(), 0);
}

// no-privilege: by the binary's own name (a copy), by the name it is run by
// (a symlink), and the real su and runuser.
TEST(Enforcement, DefaultPolicyKillsPrivilegeTools) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string d = dir.path();
  const std::string status = d + "/status";
  mkdir_open(d + "/bin");
  mkdir_open(d + "/alias");
  for (auto name : {"sudo", "doas", "not-sudo"}) {
    fs::copy_file("/usr/bin/true", d + "/bin/" + name);
    fs::permissions(d + "/bin/" + name, fs::perms(0755));
  }
  fs::create_symlink("/usr/bin/true", d + "/alias/sudo");
  InDir cwd(d);
  auto r = run_corral(kNobody, {"/bin/bash", "-c",
                                prelude(status) +
                                    "t copy " + d + "/bin/sudo true\n"
                                    "t path env PATH=" + d + "/bin:/usr/bin sudo -u root true\n"
                                    "t doas " + d + "/bin/doas true\n"
                                    "t symlink " + d + "/alias/sudo true\n"
                                    "t su /usr/bin/su -c true\n"
                                    "t runuser /usr/sbin/runuser -u nobody true\n"
                                    "t control " + d + "/bin/not-sudo\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto st = read_status(status);
  for (auto name : {"copy", "path", "doas", "symlink", "su", "runuser"})
    EXPECT_EQ(st[name], "137") << name << " was not killed";
  EXPECT_EQ(st["control"], "0");
  auto decided = exec_decisions(r);
  EXPECT_EQ(decided.size(), 6u) << dump(decided);
  std::set<std::string> paths;
  for (const auto* x : decided) {
    paths.insert(x->exec().path());
    EXPECT_EQ(x->decision().action(), "deny");
    EXPECT_EQ(x->decision().rule(), "no-privilege");
    EXPECT_EQ(x->decision().rule_index(), 1u);
    EXPECT_EQ(x->process().uid(), 65534u);
  }
  EXPECT_EQ(paths, (std::set<std::string>{d + "/bin/sudo", d + "/bin/doas", "/usr/bin/true",
                                          "/usr/bin/su", "/usr/sbin/runuser"}));
}

// The kernel sees the name a binary was run by as the task's comm, cut to 15
// bytes; a rule on a longer name matches it through that cut, and through
// the resolved file's full name.
TEST(Enforcement, LongBinaryNamesMatchByResolvedNameAndByComm) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string d = dir.path();
  const std::string status = d + "/status";
  const std::string policy = d + "/policy.yaml";
  write_file(policy,
             "version: 1\n"
             "exec:\n"
             "  - {id: long-name, binary: a-very-long-tool-name}\n");
  mkdir_open(d + "/bin");
  mkdir_open(d + "/alias");
  fs::copy_file("/usr/bin/true", d + "/bin/a-very-long-tool-name");
  fs::permissions(d + "/bin/a-very-long-tool-name", fs::perms(0755));
  fs::create_symlink("/usr/bin/true", d + "/alias/a-very-long-tool-name");
  InDir cwd(d);
  auto r = run_corral({"--user", "nobody", "--policy", policy},
                      {"/bin/bash", "-c",
                       prelude(status) + "t copy " + d + "/bin/a-very-long-tool-name\n" +
                           "t symlink " + d + "/alias/a-very-long-tool-name\n" + "t other true\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto st = read_status(status);
  EXPECT_EQ(st["copy"], "137");
  EXPECT_EQ(st["symlink"], "137");
  EXPECT_EQ(st["other"], "0");
  auto decided = exec_decisions(r);
  ASSERT_EQ(decided.size(), 2u) << dump(decided);
  for (const auto* x : decided) EXPECT_EQ(x->decision().rule(), "long-name");
}

// rules/README.md: `args: ["-e"]` on nc matches `nc -e /bin/sh h 1` and
// `nc -v -e /bin/sh` — the rule may begin at a skipped option token. The
// default's reverse-shell rules (no-netcat-exec, no-netcat-shell) depend on
// it. nc is not installed here: a symlink named nc is run by that name.
TEST(Enforcement, DefaultNetcatRulesCatchTheirOptions) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string d = dir.path();
  const std::string status = d + "/status";
  mkdir_open(d + "/alias");
  fs::create_symlink("/usr/bin/true", d + "/alias/nc");
  InDir cwd(d);
  const std::string nc = d + "/alias/nc";
  auto r = run_corral(kNobody, {"/bin/bash", "-c",
                                prelude(status) + "t e " + nc + " -e /bin/sh 127.0.0.1 9\n" +
                                    "t ve " + nc + " -v -e /bin/sh 127.0.0.1 9\n" +
                                    "t c " + nc + " -c sh 127.0.0.1 9\n" +
                                    "t plain " + nc + " -v 127.0.0.1 9\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto st = read_status(status);
  EXPECT_EQ(st["e"], "137") << "nc -e was not killed";
  EXPECT_EQ(st["ve"], "137") << "nc -v -e was not killed";
  EXPECT_EQ(st["c"], "137") << "nc -c was not killed";
  EXPECT_EQ(st["plain"], "0");
  std::set<std::string> rules;
  for (const auto* x : exec_decisions(r)) rules.insert(x->decision().rule());
  EXPECT_EQ(rules, (std::set<std::string>{"no-netcat-exec", "no-netcat-shell"}));
}

// rules/README.md, Modes: "the first rule in policy order whose mode is not
// off and that matches decides ... a shadow rule placed before an enforce
// rule that matches the same thing wins".
TEST(Enforcement, ShadowRuleBeforeAnEnforcingOneDecides) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string repo = make_repo(dir.path() + "/repo");
  const std::string status = repo + "/status";  // the project directory: writable
  const std::string policy = dir.path() + "/policy.yaml";
  write_file(policy,
             "version: 1\n"
             "exec:\n"
             "  - {id: try-push, mode: shadow, binary: git, args: [push]}\n"
             "  - {id: block-push, binary: [git, hub], args: [push]}\n");
  InDir cwd(repo);
  auto r = run_corral({"--allow-root", "--policy", policy},
                      {"/bin/bash", "-c", prelude(status) + "t push git push\n"});
  auto st = read_status(status);
  EXPECT_EQ(st["push"], "128") << "the shadow rule comes first: git push runs";
  auto decided = exec_decisions(r);
  ASSERT_EQ(decided.size(), 1u) << dump(decided);
  EXPECT_EQ(decided[0]->decision().rule(), "try-push");
  EXPECT_EQ(decided[0]->decision().action(), "would_deny");
}

// ---------------------------------------------------------------- secrets

// Secret files, read by an agent running as nobody: every alias of a secret
// is refused (EPERM), a secret created during the session is refused by its
// path, the same files stay readable outside the session, and every denial
// is in the trail with its rule.
TEST(Enforcement, SecretFilesAreDeniedThroughEveryAlias) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string d = dir.path();
  const std::string proj = d + "/proj";
  const std::string status = d + "/status";
  const std::string policy = d + "/policy.yaml";
  mkdir_open(proj + "/sub");
  mkdir_open(d + "/keys");
  mkdir_open(d + "/public");
  mkdir_open(d + "/late", fs::perms(0777));
  mkdir_open(d + "/late/agent", fs::perms(0777));
  write_file(proj + "/.env", "TOKEN=proj\n");
  write_file(proj + "/notes.txt", "notes\n");
  fs::create_symlink(".env", proj + "/link-env");
  fs::create_hard_link(proj + "/.env", proj + "/hard-env");
  write_file(d + "/keys/id_test", "KEY\n");
  fs::create_hard_link(d + "/keys/id_test", d + "/public/innocent");
  fs::create_symlink(d + "/keys/id_test", proj + "/key-link");
  write_file(policy,
             "version: 1\n"
             "secrets:\n"
             "  - id: dotenv\n"
             "    paths: [\"**/.env\"]\n"
             "  - id: test-keys\n"
             "    paths: [\"" + d + "/keys/id_*\"]\n");

  // The project directory is d (the session can write only there); the
  // agent works in proj.
  const std::string script =
      prelude(status) + "cd " + proj + "\n" +
      "o plain " + proj + "/.env\n"
      "o relative sub/../.env\n"
      "o symlink link-env\n"
      "o hardlink hard-env\n"
      "o procroot /proc/self/root" + proj + "/.env\n"
      "o proccwd /proc/self/cwd/.env\n"
      "o key ../keys/id_test\n"
      "o keylink key-link\n"
      "o keyhard " + d + "/public/innocent\n"
      "o notes notes.txt\n"
      "t cat cat .env\n"
      "touch " + d + "/ready\n"
      "await " + d + "/go\n"
      "o late " + d + "/late/.env\n"
      "o latekey " + d + "/keys/id_late\n"
      "t create bash -c 'echo TOKEN=agent > " + d + "/late/agent/.env'\n"
      // a file the agent can write is never cached as allowed: renamed
      // to a secret's name, its next open is decided again
      "t draft bash -c 'echo TOKEN=draft > " + d + "/late/agent/draft.txt'\n"
      "o draft " + d + "/late/agent/draft.txt\n"
      "o draft2 " + d + "/late/agent/draft.txt\n"
      "t move bash -c 'mkdir " + d + "/late/agent/sub && mv " + d + "/late/agent/draft.txt " + d + "/late/agent/sub/.env'\n"
      "o renamed " + d + "/late/agent/sub/.env\n";

  HostRun host_cat;
  std::string host_env, host_hard, host_key, host_innocent, host_late;
  InDir cwd(d);
  auto r = run_corral({"--user", "nobody", "--policy", policy}, {"/bin/bash", "-c", script},
                      [&](pid_t) {
                        ASSERT_TRUE(wait_for_file(d + "/ready")) << "the agent never got ready";
                        // outside the session, during it: all readable
                        host_env = read_file(proj + "/.env");
                        host_hard = read_file(proj + "/hard-env");
                        host_key = read_file(d + "/keys/id_test");
                        host_innocent = read_file(d + "/public/innocent");
                        host_cat = run_on_host({"cat", proj + "/.env"}, d);
                        // secrets that did not exist when the policy loaded
                        write_file(d + "/late/.env", "TOKEN=late\n");
                        write_file(d + "/keys/id_late", "LATE KEY\n");
                        host_late = read_file(d + "/late/.env");
                        write_file(d + "/go", "");
                      });
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(host_env, "TOKEN=proj\n");
  EXPECT_EQ(host_hard, "TOKEN=proj\n");
  EXPECT_EQ(host_key, "KEY\n");
  EXPECT_EQ(host_innocent, "KEY\n");
  EXPECT_EQ(host_late, "TOKEN=late\n");
  EXPECT_TRUE(WIFEXITED(host_cat.status) && WEXITSTATUS(host_cat.status) == 0) << host_cat.err;
  EXPECT_EQ(host_cat.out, "TOKEN=proj\n");

  auto st = read_status(status);
  for (auto name : {"plain", "relative", "symlink", "hardlink", "procroot", "proccwd", "key",
                    "keylink", "keyhard", "late", "latekey", "renamed"})
    EXPECT_EQ(st[name], "-1") << name << ": expected EPERM";
  EXPECT_TRUE(is_fd(st["notes"])) << "notes.txt: " << st["notes"];
  EXPECT_TRUE(is_fd(st["draft"]) && is_fd(st["draft2"])) << st["draft"] << " " << st["draft2"];
  EXPECT_EQ(st["move"], "0");
  EXPECT_EQ(st["cat"], "1");
  // Creating a new file under a secret's name is an open of that secret
  // too (policy: "may not open for reading (or at all)"): refused, and
  // nothing the agent wrote reaches it.
  EXPECT_NE(st["create"], "0");
  std::error_code ec;
  if (fs::exists(d + "/late/agent/.env", ec)) {
    EXPECT_EQ(fs::file_size(d + "/late/agent/.env"), 0u);
  }

  // one record per denial: path as the kernel resolved it, rule, reason
  std::multiset<std::string> seen;
  for (const auto* rec : open_decisions(r)) {
    const auto& o = rec->open();
    const auto& dec = rec->decision();
    EXPECT_EQ(dec.action(), "deny") << rec->ShortDebugString();
    EXPECT_EQ(dec.mode(), "enforce");
    EXPECT_EQ(o.result(), -1);
    EXPECT_EQ(o.error(), "EPERM");
    EXPECT_NE(rec->process().pid(), static_cast<uint32_t>(::getpid())) << "the host was judged";
    ASSERT_EQ(o.flags_size(), 1);
    seen.insert(o.path() + " " + dec.rule() + " " + o.flags(0) + " " + dec.reason());
  }
  const std::string env_line = proj + "/.env dotenv read secret file (by identity)";
  const std::string key_line = d + "/keys/id_test test-keys read secret file (by identity)";
  EXPECT_EQ(seen, (std::multiset<std::string>{
                      // plain, relative, symlink, /proc/self/root, /proc/self/cwd, cat
                      env_line, env_line, env_line, env_line, env_line, env_line,
                      proj + "/hard-env dotenv read secret file (by identity)",
                      key_line, key_line,
                      d + "/public/innocent test-keys read secret file (by identity)",
                      d + "/late/.env dotenv read secret file",
                      d + "/keys/id_late test-keys read secret file",
                      d + "/late/agent/.env dotenv write secret file",
                                     d + "/late/agent/sub/.env dotenv read secret file"}))
      << dump(open_decisions(r));
}

// ---------------------------------------------------------------- protected

void protected_paths_case(const std::string& mode) {
  TempDir dir;
  const std::string repo = make_repo(dir.path() + "/repo");
  const std::string status = repo + "/status";  // the project directory: writable
  const std::string policy = dir.path() + "/policy.yaml";
  write_file(policy,
             "version: 1\n"
             "protected:\n"
             "  - id: git-hooks\n"
             "    mode: " + mode + "\n"
             "    paths: [\"**/.git/hooks/**\", \"**/.git/config\"]\n");
  const std::string config_before = read_file(repo + "/.git/config");
  ASSERT_TRUE(fs::exists(repo + "/.git/hooks/pre-commit.sample"));
  InDir cwd(repo);
  auto r = run_corral({"--allow-root", "--policy", policy},
                      {"/bin/bash", "-c",
                       prelude(status) +
                           "t hook bash -c 'echo \"#!/bin/sh\" > .git/hooks/pre-commit'\n"
                           "o readcfg .git/config\n"
                           "t readhook cat .git/hooks/pre-commit.sample\n"
                           "t append bash -c 'echo x >> .git/config'\n"
                           "t other bash -c 'echo x >> notes.txt'\n"
                           "t gitstatus git status\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto st = read_status(status);
  EXPECT_TRUE(is_fd(st["readcfg"])) << "reading .git/config: " << st["readcfg"];
  EXPECT_EQ(st["readhook"], "0");
  EXPECT_EQ(st["other"], "0");
  EXPECT_EQ(st["gitstatus"], "0");
  const bool enforce = mode == "enforce";
  const std::string hook = repo + "/.git/hooks/pre-commit";
  if (enforce) {
    EXPECT_EQ(st["hook"], "1");
    EXPECT_EQ(st["append"], "1");
    EXPECT_EQ(read_file(repo + "/.git/config"), config_before);
    std::error_code ec;
    if (fs::exists(hook, ec)) {
      EXPECT_EQ(fs::file_size(hook), 0u) << "content reached the hook";
    }
  } else {
    EXPECT_EQ(st["hook"], "0");
    EXPECT_EQ(st["append"], "0");
    EXPECT_EQ(read_file(repo + "/.git/config"), config_before + "x\n");
    EXPECT_EQ(read_file(hook), "#!/bin/sh\n");
  }
  // Enforced, the existing protected paths are read-only in the session:
  // the kernel refuses the write (EROFS) before any guard is asked, and its
  // record carries the rule. In shadow mode the guard records would-deny.
  std::multiset<std::string> seen;
  for (const auto* rec : open_decisions(r)) {
    const auto& dec = rec->decision();
    EXPECT_EQ(dec.action(), enforce ? "deny" : "would_deny") << rec->ShortDebugString();
    EXPECT_EQ(dec.mode(), mode);
    if (enforce) {
      EXPECT_EQ(rec->open().error(), "EROFS");
      seen.insert(rec->open().path() + " " + dec.rule() + " " + dec.reason());
    } else {
      EXPECT_EQ(rec->open().result(), 0);
      ASSERT_EQ(rec->open().flags_size(), 1);
      seen.insert(rec->open().path() + " " + dec.rule() + " " + rec->open().flags(0) + " " +
                  dec.reason());
    }
  }
  if (enforce) {
    EXPECT_EQ(seen, (std::multiset<std::string>{
                        hook + " git-hooks write to a protected path (read-only in the session)",
                        repo + "/.git/config git-hooks write to a protected path (read-only in "
                               "the session)"}))
        << dump(open_decisions(r));
  } else {
    EXPECT_EQ(seen, (std::multiset<std::string>{
                        hook + " git-hooks write write to a protected path",
                        repo + "/.git/config git-hooks write write to a protected path (by identity)"}))
        << dump(open_decisions(r));
  }
}

TEST(Enforcement, ProtectedPathsRefuseWritesNotReads) {
  CORRAL_REQUIRE_ROOT();
  protected_paths_case("enforce");
}

TEST(Enforcement, ShadowProtectedPathsAllowWritesAndRecordThem) {
  CORRAL_REQUIRE_ROOT();
  protected_paths_case("shadow");
}

// A read of a protected file is allowed while other session processes
// open files too. Answering any of them wakes every waiting opener for a
// moment, and the kernel shows a woken one's syscall as "running": read
// then, its intent was unknown and counted as a write (a read of
// .git/config refused, now and then, beside a parallel build). The intent
// is read again while "running"; and .git/config, there at the start, is a
// read-only mount, where no open fanotify asks about is a write.
TEST(Enforcement, ReadsOfAProtectedFileAmongOtherOpensAreNotTakenForWrites) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string repo = make_repo(dir.path() + "/repo");
  const std::string policy = dir.path() + "/policy.yaml";
  write_file(policy,
             "version: 1\n"
             "protected:\n"
             "  - id: git-config\n"
             "    paths: [\"**/.git/config\"]\n");
  InDir cwd(repo);
  auto r = run_corral({"--allow-root", "--policy", policy},
                      {"/bin/sh", "-c",
                       "touch other; for k in 1 2 3; do (i=0; while [ $i -lt 1000 ]; do : <other; "
                       "i=$((i+1)); done) & done; failed=0; i=0; while [ $i -lt 1500 ]; do "
                       "true <.git/config || failed=$((failed+1)); i=$((i+1)); done; wait; "
                       "echo $failed >failed"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  EXPECT_EQ(read_file(repo + "/failed"), "0\n") << "reads of .git/config refused";
  EXPECT_TRUE(open_decisions(r).empty()) << dump(open_decisions(r));
}

// rules/README.md: protected files "may not write, create or delete". A
// hook can be planted, and a protected file emptied or removed, without
// opening anything under .git for writing: written elsewhere then renamed,
// hard- or symlinked into place; truncate(2) and unlink(2) by path.
TEST(Enforcement, ProtectedPathsCannotBeChangedWithoutAnOpen) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string repo = make_repo(dir.path() + "/repo");
  const std::string status = repo + "/status";  // the project directory: writable
  const std::string evil = repo + "/evil";  // written where the agent may write
  const std::string config_before = read_file(repo + "/.git/config");
  InDir cwd(repo);
  auto r = run_corral(kRoot, {"/bin/bash", "-c",
                              prelude(status) +
                                  "printf '#!/bin/sh\\necho planted\\n' > " + evil + "\n"
                                  "chmod +x " + evil + "\n"
                                  "cp " + evil + " " + evil + "2\n"
                                  "t rename mv " + evil + " .git/hooks/post-checkout\n"
                                  "t link ln " + evil + "2 .git/hooks/pre-push\n"
                                  "t symlink ln -s " + evil + "2 .git/hooks/pre-merge-commit\n"
                                  "t delete rm .git/hooks/pre-commit.sample\n"
                                  "t truncate " + actor_bin() + " truncate .git/config\n"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  const std::string hooks = repo + "/.git/hooks/";
  EXPECT_FALSE(fs::exists(hooks + "post-checkout")) << "a hook was renamed into .git/hooks";
  EXPECT_FALSE(fs::exists(hooks + "pre-push")) << "a hook was hard-linked into .git/hooks";
  EXPECT_FALSE(fs::is_symlink(hooks + "pre-merge-commit")) << "a hook was symlinked into .git/hooks";
  EXPECT_TRUE(fs::exists(hooks + "pre-commit.sample")) << "a file under .git/hooks was deleted";
  EXPECT_EQ(read_file(repo + "/.git/config"), config_before) << ".git/config was truncated";
  auto st = read_status(status);
  for (auto name : {"rename", "link", "symlink", "delete"}) EXPECT_NE(st[name], "0") << name;
}

// A protected path that did not exist when the session started is not a
// read-only mount, and a rename is not a permission event: a file or a
// folder moved there gets there, and so does a hard or symbolic link. Its
// rename or link record says the rule missed it (would_deny in shadow
// mode); a rename elsewhere carries no decision.
TEST(Enforcement, AMoveIntoAProtectedPathMadeLaterIsTold) {
  CORRAL_REQUIRE_ROOT();
  for (std::string mode : {"enforce", "shadow"}) {
    TempDir dir;
    const std::string repo = make_repo(dir.path() + "/repo");
    const std::string status = repo + "/status";
    const std::string policy = dir.path() + "/policy.yaml";
    write_file(policy,
               "version: 1\n"
               "protected:\n"
               "  - id: other\n"
               "    paths: [\"**/.nothing-here\"]\n"
               "  - id: ci\n"
               "    mode: " + mode + "\n"
               "    paths: [\"**/.github/workflows/**\"]\n");
    ASSERT_FALSE(fs::exists(repo + "/.github"));
    InDir cwd(repo);
    auto r = run_corral({"--allow-root", "--policy", policy},
                        {"/bin/bash", "-c",
                         prelude(status) +
                             "echo evil > w.yml; mkdir -p .github/workflows stage/workflows sub\n"
                             "t file mv w.yml .github/workflows/ci.yml\n"
                             "echo evil > stage/workflows/e.yml\n"
                             "t folder mv stage sub/.github\n"
                             "echo evil > l.yml\n"
                             "t link ln l.yml .github/workflows/l.yml\n"
                             "t symlink ln -s ../../l.yml .github/workflows/s.yml\n"
                             "echo notes > notes.txt\n"
                             "t other mv notes.txt notes2.txt\n"
                             "mkdir -p big sub3 && (cd big && seq 5000 | xargs touch)\n"
                             "t big mv big sub3/.github\n"
                             "mkdir -p stage2/workflows sub4 && echo evil > stage2/workflows/x.yml\n"
                             "t symfolder ln -s ../stage2 sub4/.github\n"
                             "echo evil > a.yml; ln -s .github/workflows wf\n"
                             "t alias mv a.yml wf/a.yml\n"
                             // the records are read while the session's root is whole
                             "sleep 0.3\n"});
    EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
    auto st = read_status(status);
    for (auto name : {"file", "folder", "link", "symlink", "other", "big", "symfolder", "alias"})
      EXPECT_EQ(st[name], "0") << mode << " " << name;
    std::map<std::string, const audit::Record*> by_to;
    for (const auto* rec : select(r, [](const audit::Record& x) { return x.has_rename(); }))
      by_to[rec->rename().to()] = rec;
    for (const auto* rec : select(r, [](const audit::Record& x) { return x.has_link(); }))
      by_to[rec->link().to()] = rec;
    // (through a symlink: the record names wf/a.yml, the file is in workflows)
    for (auto to : {"/.github/workflows/ci.yml", "/sub/.github", "/.github/workflows/l.yml",
                    "/.github/workflows/s.yml", "/wf/a.yml"}) {
      const auto* rec = by_to[repo + to];
      ASSERT_NE(rec, nullptr) << mode << ": no rename record to " << to;
      ASSERT_TRUE(rec->has_decision()) << mode << ": " << rec->ShortDebugString();
      EXPECT_EQ(rec->decision().action(), mode == "enforce" ? "missed" : "would_deny");
      EXPECT_EQ(rec->decision().rule(), "ci");
      EXPECT_EQ(rec->decision().mode(), mode);
      EXPECT_EQ(rec->decision().rule_index(), 1u);
    }
    // at a protected folder's path: too large to be looked through, or a
    // symlink (its target's tree is reached through it)
    for (auto to : {"/sub3/.github", "/sub4/.github"}) {
      const auto* rec = by_to[repo + to];
      ASSERT_NE(rec, nullptr) << mode << " " << to;
      ASSERT_TRUE(rec->has_decision()) << mode << ": " << rec->ShortDebugString();
      EXPECT_EQ(rec->decision().action(), mode == "enforce" ? "missed" : "would_deny");
      EXPECT_EQ(rec->decision().rule(), "ci");
      EXPECT_NE(rec->decision().reason().find("not looked through whole"), std::string::npos);
    }
    const auto* other = by_to[repo + "/notes2.txt"];
    ASSERT_NE(other, nullptr) << mode;
    EXPECT_FALSE(other->has_decision()) << other->ShortDebugString();
  }
}

// A denial record is about the process that was denied: its uid, comm and
// parent, and the load of the policy that decided, as exec decisions have.
TEST(Enforcement, FileDenialRecordsNameTheProcessAndPolicy) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string proj = dir.path() + "/proj";
  mkdir_open(proj);
  write_file(proj + "/.env", "TOKEN=x\n");
  InDir cwd(proj);
  auto r = run_corral(kNobody, {"/bin/sh", "-c", "cat .env >/dev/null 2>&1; true"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto denied = open_decisions(r);
  ASSERT_EQ(denied.size(), 1u) << dump(denied);
  const auto* cat = select(r, [](const audit::Record& rec) {
                      return rec.has_exec() && rec.exec().path() == "/usr/bin/cat";
                    }).at(0);
  const auto& p = denied[0]->process();
  EXPECT_EQ(p.pid(), cat->process().pid());
  EXPECT_EQ(p.uid(), 65534u);
  EXPECT_EQ(p.gid(), 65534u);
  EXPECT_EQ(p.comm(), "cat");
  EXPECT_EQ(p.ppid(), cat->process().ppid());
  EXPECT_EQ(denied[0]->decision().rule(), "dotenv");
  EXPECT_EQ(denied[0]->decision().policy_generation(), 1u);
}

// A file the agent cannot change is asked about once a session, whether it
// is read or run: thirty runs of /bin/true ask for the binary, its loader
// and its libraries once. A file the agent can write is asked about at
// every open. The session's end counts what the guard answered.
TEST(Enforcement, FilesTheAgentCannotChangeAreAskedAboutOnce) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  InDir cwd(dir.path());
  auto r = run_corral(kNobody, {"/bin/sh", "-c",
                                "echo x >/tmp/own; i=0; while [ $i -lt 30 ]; do /bin/true; "
                                ": </tmp/own; i=$((i+1)); done"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  ASSERT_FALSE(r.records.empty());
  ASSERT_TRUE(r.records.back().has_session_end());
  const auto& g = r.records.back().session_end().file_guard();
  // 31 opens of /tmp/own; each exec of /bin/true would add two (the binary,
  // its loader) if runs were asked about every time.
  EXPECT_GE(g.asked(), 31u);
  EXPECT_LT(g.asked(), 31u + 30u) << "the runs of /bin/true were asked about every time";
  EXPECT_GE(g.cached(), 3u);  // /bin/true, ld.so, libc at least
  EXPECT_EQ(g.denied(), 0u);
  EXPECT_EQ(g.errors(), 0u);
}

// A root agent can write any root-owned file by its permissions, but not
// one its session sees read-only under its only name: asked about once, as
// a system library is for any other user. A file with a second name is
// asked about at every open: the other name could be on a writable mount.
// (Files of the test's own: the host's binaries may have other names, e.g.
// in perf's build-id cache.)
TEST(Enforcement, ARootAgentsReadOnlyFilesAreAskedAboutOnce) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;  // under /tmp: the session's is its own
  TempDir host("/var/tmp");  // the host's, read-only in the session
  InDir cwd(dir.path());
  const std::string one = host.path() + "/one-name", linked = host.path() + "/linked";
  write_file(one, "x\n");
  write_file(linked, "x\n");
  ASSERT_EQ(::link(linked.c_str(), (host.path() + "/other-name").c_str()), 0);
  auto r = run_corral({"--allow-root"}, {"/bin/sh", "-c",
                                         "i=0; while [ $i -lt 30 ]; do : <" + one + "; : <" + linked +
                                             "; i=$((i+1)); done"});
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  ASSERT_FALSE(r.records.empty());
  ASSERT_TRUE(r.records.back().has_session_end());
  const auto& g = r.records.back().session_end().file_guard();
  EXPECT_GE(g.asked(), 30u) << "the file with two names was cached";
  EXPECT_LT(g.asked(), 30u + 30u) << "the file with one name was asked about at every open";
  EXPECT_GE(g.cached(), 1u);
  EXPECT_EQ(g.denied(), 0u);
}

// ---------------------------------------------------------------- reload

// SIGHUP reloads the policy file for the live session: a new secret and a
// new exec rule apply at once (an allow cached before is dropped); an
// invalid file is refused whole, with FILE:LINE:COL, and nothing of it —
// neither what it removes nor what it adds — applies.
TEST(Enforcement, HotReloadIsAllOrNothing) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string d = dir.path();
  const std::string status = d + "/status";
  const std::string policy = d + "/policy.yaml";
  const std::string audit = d + "/audit.jsonl";
  for (auto f : {"a", "b", "c"}) write_file(d + "/" + f + ".secret", std::string(f) + "\n");
  write_file(policy,
             "version: 1\n"
             "secrets:\n"
             "  - id: b-secret\n"
             "    paths: [\"" + d + "/b.secret\"]\n");
  const std::string phase =
      "o $1-a a.secret; o $1-b b.secret; o $1-c c.secret; t $1-id id -u; touch " + d + "/done$1";
  const std::string script = prelude(status) + "phase() { " + phase + "; }\n" +
                             "phase 1\n"
                             "await " + d + "/go2\n"
                             "phase 2\n"
                             "await " + d + "/go3\n"
                             "phase 3\n";
  InDir cwd(d);
  Spawned corral;
  corral.pid = spawn_corral({"--user", "nobody", "--policy", policy}, {"/bin/bash", "-c", script},
                            audit, d + "/corral.stderr");
  ASSERT_TRUE(wait_for_session_start(audit));
  ASSERT_TRUE(wait_for_file(d + "/done1")) << read_file(d + "/corral.stderr");

  replace_file(policy,
               "version: 1\n"
               "secrets:\n"
               "  - id: b-secret\n"
               "    paths: [\"" + d + "/b.secret\"]\n"
               "  - id: a-secret\n"
               "    paths: [\"" + d + "/a.secret\"]\n"
               "exec:\n"
               "  - id: no-id\n"
               "    binary: id\n");
  ASSERT_EQ(::kill(corral.pid, SIGHUP), 0);
  ASSERT_TRUE(wait_for_record(audit, [](const audit::Record& rec) {
    return rec.has_policy_load() && rec.policy_load().generation() == 2;
  })) << read_file(d + "/corral.stderr");
  write_file(d + "/go2", "");
  ASSERT_TRUE(wait_for_file(d + "/done2")) << read_file(d + "/corral.stderr");

  // drops a-secret and no-id, adds c-secret: all refused for the unknown key
  replace_file(policy,
               "version: 1\n"
               "secrets:\n"
               "  - id: c-secret\n"
               "    paths: [\"" + d + "/c.secret\"]\n"
               "exec: []\n"
               "colour: blue\n");
  ASSERT_EQ(::kill(corral.pid, SIGHUP), 0);
  ASSERT_TRUE(wait_for_record(audit, [](const audit::Record& rec) {
    return rec.has_policy_load() && !rec.policy_load().accepted();
  })) << read_file(d + "/corral.stderr");
  write_file(d + "/go3", "");
  EXPECT_EQ(corral.wait(), 0) << read_file(d + "/corral.stderr");

  auto st = read_status(status);
  // v1: only b is secret
  EXPECT_TRUE(is_fd(st["1-a"])) << st["1-a"];
  EXPECT_EQ(st["1-b"], "-1");
  EXPECT_TRUE(is_fd(st["1-c"])) << st["1-c"];
  EXPECT_EQ(st["1-id"], "0");
  // v2: a too, and id is killed
  EXPECT_EQ(st["2-a"], "-1") << "a.secret still readable after the reload";
  EXPECT_EQ(st["2-b"], "-1");
  EXPECT_TRUE(is_fd(st["2-c"])) << st["2-c"];
  EXPECT_EQ(st["2-id"], "137");
  // refused v3: v2 entire
  EXPECT_EQ(st["3-a"], "-1") << "the refused policy removed a-secret";
  EXPECT_EQ(st["3-b"], "-1") << "the refused policy removed b-secret";
  EXPECT_TRUE(is_fd(st["3-c"])) << "the refused policy added c-secret: " << st["3-c"];
  EXPECT_EQ(st["3-id"], "137") << "the refused policy removed no-id";

  RunResult r;
  r.records = read_audit(audit);
  ASSERT_GE(r.records.size(), 2u);
  EXPECT_TRUE(r.records[0].has_session_start());
  auto loads = select(r, [](const audit::Record& rec) { return rec.has_policy_load(); });
  ASSERT_EQ(loads.size(), 3u) << dump(loads);
  EXPECT_EQ(loads[0], &r.records[1]) << "generation 1 follows session_start";
  const auto& l1 = loads[0]->policy_load();
  EXPECT_TRUE(l1.accepted());
  EXPECT_EQ(l1.generation(), 1u);
  EXPECT_EQ(std::vector<std::string>(l1.sources().begin(), l1.sources().end()),
            std::vector<std::string>{policy});
  EXPECT_NE(l1.summary().find("1 secret rules"), std::string::npos) << l1.summary();
  const auto& l2 = loads[1]->policy_load();
  EXPECT_TRUE(l2.accepted());
  EXPECT_EQ(l2.generation(), 2u);
  EXPECT_TRUE(l2.errors().empty());
  EXPECT_NE(l2.summary().find("2 secret rules"), std::string::npos) << l2.summary();
  EXPECT_NE(l2.summary().find("1 exec"), std::string::npos) << l2.summary();
  const auto& l3 = loads[2]->policy_load();
  EXPECT_FALSE(l3.accepted());
  EXPECT_EQ(l3.generation(), 2u) << "the generation in force stays";
  ASSERT_EQ(l3.errors_size(), 1) << loads[2]->ShortDebugString();
  EXPECT_EQ(l3.errors(0).rfind(policy + ":6:1: ", 0), 0u) << l3.errors(0);
  EXPECT_NE(l3.errors(0).find("colour"), std::string::npos) << l3.errors(0);
  EXPECT_TRUE(l3.summary().empty());

  // exec denials name the reloaded rule and its generation
  auto execs = exec_decisions(r);
  ASSERT_EQ(execs.size(), 2u) << dump(execs);
  for (const auto* x : execs) {
    EXPECT_EQ(x->decision().rule(), "no-id");
    EXPECT_EQ(x->decision().policy_generation(), 2u);
    EXPECT_EQ(x->decision().rule_index(), 0u);
    EXPECT_GT(x->seq(), loads[1]->seq());
  }
  std::multiset<std::string> opens;
  for (const auto* o : open_decisions(r)) opens.insert(o->open().path() + " " + o->decision().rule());
  EXPECT_EQ(opens, (std::multiset<std::string>{
                       d + "/b.secret b-secret", d + "/a.secret a-secret", d + "/b.secret b-secret",
                       d + "/a.secret a-secret", d + "/b.secret b-secret"}))
      << dump(open_decisions(r));
}

// ---------------------------------------------------------------- policy check

TEST(Enforcement, PolicyCheckSummarisesOrListsEveryProblem) {
  TempDir dir;
  const std::string good = dir.path() + "/good.yaml";
  const std::string bad = dir.path() + "/bad.yaml";
  write_file(good,
             "version: 1\n"
             "secrets:\n"
             "  - {id: dotenv, paths: [\"**/.env\"]}\n"
             "exec:\n"
             "  - {id: no-push, mode: shadow, binary: git, args: [push]}\n");
  write_file(bad,
             "version: 1\n"
             "secrets:\n"
             "  - id: s1\n"
             "    paths: [\"src/*.env\"]\n"
             "exec:\n"
             "  - id: e1\n"
             "    binary: git\n"
             "    args: push\n");
  auto ok = run_on_host({CORRAL_BIN, "policy", "check", good}, dir.path());
  ASSERT_TRUE(WIFEXITED(ok.status));
  EXPECT_EQ(WEXITSTATUS(ok.status), 0) << ok.err;
  EXPECT_EQ(ok.out,
            "policy ok: 1 secret rules (1 globs), 0 protected (0 globs), 1 exec, 0 egress allow "
            "(default deny), 0 writable, 0 hidden; 1 in shadow mode, 0 off\n");
  EXPECT_EQ(ok.err, "");

  auto ko = run_on_host({CORRAL_BIN, "policy", "check", bad}, dir.path());
  ASSERT_TRUE(WIFEXITED(ko.status));
  EXPECT_EQ(WEXITSTATUS(ko.status), 1);
  EXPECT_EQ(ko.out, "");
  std::vector<std::string> lines;
  std::istringstream in(ko.err);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 2u) << ko.err;
  EXPECT_EQ(lines[0].rfind(bad + ":4:13: secrets[0].paths[0]: ", 0), 0u) << lines[0];
  EXPECT_EQ(lines[1].rfind(bad + ":8:11: exec[0].args: ", 0), 0u) << lines[1];
}

// ---------------------------------------------------------------- the host

// While a session runs under the default policy, and is denied, the host
// itself pushes (git fails for want of a remote, it is not killed) and
// reads the same .env; none of it is judged or recorded.
TEST(Enforcement, HostIsUntouchedDuringASession) {
  CORRAL_REQUIRE_ROOT();
  TempDir dir;
  const std::string d = dir.path();
  const std::string repo = make_repo(d + "/repo");
  const std::string status = d + "/status";
  write_file(repo + "/.env", "TOKEN=host\n");
  HostRun push, cat;
  std::string env;
  InDir cwd(d);  // the project directory, which holds the repository
  auto r = run_corral(kNobody,
                      {"/bin/bash", "-c",
                       prelude(status) + "cd " + repo + "\no env .env\ntouch " + d +
                           "/ready\nawait " + d +
                           "/go\no again .env\n"},
                      [&](pid_t) {
                        ASSERT_TRUE(wait_for_file(d + "/ready"));
                        push = run_on_host({"git", "-C", repo, "push"}, d);
                        cat = run_on_host({"cat", repo + "/.env"}, d);
                        env = read_file(repo + "/.env");
                        write_file(d + "/go", "");
                      });
  EXPECT_EQ(r.exit_code, 0) << r.stderr_text;
  auto st = read_status(status);
  EXPECT_EQ(st["env"], "-1") << "the session's own read is denied";
  EXPECT_EQ(st["again"], "-1");
  ASSERT_TRUE(WIFEXITED(push.status)) << "git push on the host was killed by signal "
                                      << WTERMSIG(push.status);
  EXPECT_EQ(WEXITSTATUS(push.status), 128) << push.err;
  EXPECT_NE(push.err.find("push destination"), std::string::npos) << push.err;
  ASSERT_TRUE(WIFEXITED(cat.status));
  EXPECT_EQ(WEXITSTATUS(cat.status), 0) << cat.err;
  EXPECT_EQ(cat.out, "TOKEN=host\n");
  EXPECT_EQ(env, "TOKEN=host\n");
  EXPECT_TRUE(exec_decisions(r).empty()) << dump(exec_decisions(r));
  EXPECT_EQ(open_decisions(r).size(), 2u) << dump(open_decisions(r));
  for (const auto& rec : r.records) {
    if (rec.has_exec()) {
      EXPECT_NE(rec.exec().path(), "/usr/bin/git") << rec.ShortDebugString();
      EXPECT_NE(rec.exec().path(), "/usr/bin/cat") << rec.ShortDebugString();
    }
  }
}

}  // namespace
}  // namespace corral::test
