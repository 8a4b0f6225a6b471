#include "worktree.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <stdexcept>
#include <string_view>

extern char** environ;

namespace corral {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kBranchPrefix = "corral/";
constexpr const char* kMetadataFile = "corral-worktrees";  // in the git common dir

[[noreturn]] void fail(std::string message) { throw std::runtime_error(std::move(message)); }

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find(sep, start);
    if (end == std::string::npos) end = s.size();
    parts.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return parts;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep, size_t max) {
  std::string s;
  for (size_t i = 0; i < parts.size() && i < max; i++) s += (i ? std::string(sep) : "") + parts[i];
  if (parts.size() > max) s += fmt::format("{}and {} more", sep, parts.size() - max);
  return s;
}

// git's own reason: its first "fatal:"/"error:" line, else its first line.
std::string first_error_line(const std::string& err) {
  auto lines = split(err, '\n');
  for (const auto& l : lines)
    if (l.starts_with("fatal: ") || l.starts_with("error: ")) return trim(l);
  for (const auto& l : lines)
    if (!trim(l).empty()) return trim(l);
  return "no message";
}

// --- running programs: fork, drop to the user, exec; no shell ---------------

// A forked child, reaped on every path: killed first when nobody waited.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    wait();
  }
  // The exit code a shell would report (128 + N after signal N).
  int wait() {
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

 private:
  pid_t pid_;
};

// Signals ignored for a while, then handled as before.
class SignalsIgnored {
 public:
  explicit SignalsIgnored(std::initializer_list<int> signals) {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    for (int sig : signals) {
      saved_.push_back({sig, {}});
      ::sigaction(sig, &ignore, &saved_.back().second);
    }
  }
  ~SignalsIgnored() {
    for (const auto& [sig, old] : saved_) ::sigaction(sig, &old, nullptr);
  }
  SignalsIgnored(const SignalsIgnored&) = delete;
  SignalsIgnored& operator=(const SignalsIgnored&) = delete;

 private:
  std::vector<std::pair<int, struct sigaction>> saved_;
};

struct Pipe {
  UniqueFd read, write;
};

Pipe make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail(fmt::format("pipe: {}", strerror(errno)));
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

struct Exit {
  int code = 0;
  std::string out, err;
};

struct Program {
  std::vector<std::string> argv;  // argv[0] is the executable's path
  std::vector<std::string> env;
  std::string cwd;
  const Credentials* as = nullptr;
  bool capture = true;  // stdout and stderr to us; else ours (a pager on the terminal)
};

// Whether the child must become `as`: only root can, and then must.
bool switches_user(const Credentials& as) {
  if (as.uid == ::geteuid()) return false;
  if (::geteuid() != 0)
    fail(fmt::format("cannot run git as uid {}: corral runs as uid {}, not root", as.uid,
                     ::geteuid()));
  return true;
}

enum ChildStep : int { kStepUser = 1, kStepCwd, kStepExec };

// Between fork and exec: async-signal-safe calls only (the caller may have
// threads). Raw set*id system calls, as in process.cc, for the same reason.
[[noreturn]] void exec_child(const Program& p, char* const* argv, char* const* envp, int in,
                             int out, int err, int report, bool switch_user) {
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGINT, SIGQUIT})  // ignored ones would stay ignored across exec
    ::sigaction(sig, &dfl, nullptr);
  ::dup2(in, STDIN_FILENO);
  if (p.capture) {
    ::dup2(out, STDOUT_FILENO);
    ::dup2(err, STDERR_FILENO);
  }
  int step = kStepUser;
  if (!switch_user || (::syscall(SYS_setgroups, p.as->groups.size(), p.as->groups.data()) == 0 &&
                       ::syscall(SYS_setresgid, p.as->gid, p.as->gid, p.as->gid) == 0 &&
                       ::syscall(SYS_setresuid, p.as->uid, p.as->uid, p.as->uid) == 0)) {
    step = kStepCwd;
    if (::chdir(p.cwd.c_str()) == 0) {
      // What the caller left inheritable (the supervisor's descriptors) is
      // not git's business. Failure (a kernel before 5.11) leaves only that.
      ::syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
      step = kStepExec;
      ::execve(argv[0], argv, envp);
    }
  }
  int report_msg[2] = {step, errno};
  (void)!::write(report, report_msg, sizeof(report_msg));
  ::_exit(127);
}

// Reads `out` and `err` to their end while writing `input`, so that no
// pipe fills up while we wait on another.
void communicate(UniqueFd in, UniqueFd out, UniqueFd err, const std::string& input, Exit& r) {
  // Writing to a child that is gone (a pager the user quit) must be EPIPE,
  // not a SIGPIPE that kills corral.
  SignalsIgnored sigpipe({SIGPIPE});
  if (input.empty())
    in.reset();
  else
    ::fcntl(in.get(), F_SETFL, O_NONBLOCK);
  size_t written = 0;
  char buf[65536];
  struct Stream {
    UniqueFd* fd;
    std::string* sink;  // null: the input
  };
  std::array<Stream, 3> streams = {{{&in, nullptr}, {&out, &r.out}, {&err, &r.err}}};
  while (in || out || err) {
    std::array<pollfd, 3> fds{};
    std::array<Stream*, 3> which{};
    nfds_t n = 0;
    for (auto& s : streams) {
      if (!*s.fd) continue;
      fds[n] = {s.fd->get(), static_cast<short>(s.sink ? POLLIN : POLLOUT), 0};
      which[n++] = &s;
    }
    if (::poll(fds.data(), n, -1) < 0) {
      if (errno == EINTR) continue;
      fail(fmt::format("poll: {}", strerror(errno)));
    }
    for (nfds_t i = 0; i < n; i++) {
      if (!fds[i].revents) continue;
      Stream& s = *which[i];
      if (!s.sink) {
        ssize_t w = ::write(s.fd->get(), input.data() + written, input.size() - written);
        if (w > 0) written += w;
        if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input.size()) s.fd->reset();
        continue;
      }
      ssize_t got = ::read(s.fd->get(), buf, sizeof(buf));
      if (got > 0)
        s.sink->append(buf, got);
      else if (got == 0 || (errno != EINTR && errno != EAGAIN))
        s.fd->reset();
    }
  }
}

Exit run_program(const Program& p, const std::string& input = {}) {
  bool switch_user = switches_user(*p.as);
  std::vector<char*> argv, envp;
  for (const auto& a : p.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (const auto& e : p.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  Pipe in = make_pipe(), report = make_pipe();
  Pipe out, err;
  if (p.capture) {
    out = make_pipe();
    err = make_pipe();
  }

  pid_t pid = ::fork();
  if (pid < 0) fail(fmt::format("fork: {}", strerror(errno)));
  if (pid == 0)
    exec_child(p, argv.data(), envp.data(), in.read.get(), out.write.get(), err.write.get(),
               report.write.get(), switch_user);
  Child child(pid);
  in.read.reset();
  out.write.reset();
  err.write.reset();
  report.write.reset();

  int report_msg[2];
  ssize_t n;
  while ((n = ::read(report.read.get(), report_msg, sizeof(report_msg))) < 0 && errno == EINTR) {
  }
  if (n == sizeof(report_msg)) {
    child.wait();
    const char* step = report_msg[0] == kStepUser  ? "cannot switch to uid"
                       : report_msg[0] == kStepCwd ? "cannot enter"
                                                   : "cannot run";
    std::string what = report_msg[0] == kStepUser  ? std::to_string(p.as->uid)
                       : report_msg[0] == kStepCwd ? p.cwd
                                                   : p.argv[0];
    fail(fmt::format("{} {}: {}", step, what, strerror(report_msg[1])));
  }
  Exit r;
  communicate(std::move(in.write), std::move(out.read), std::move(err.read), input, r);
  r.code = child.wait();
  return r;
}

// Our environment for a child run as `as`: HOME, USER and LOGNAME its own
// when switching (and not root's XDG_CONFIG_HOME, which git would fail to
// read), without `unset`, with `set` (K=V) on top.
std::vector<std::string> child_env(const Credentials& as, bool switch_user,
                                   const std::vector<std::string>& set,
                                   const std::vector<std::string_view>& unset) {
  std::map<std::string, std::string> vars;
  for (char** e = environ; *e; e++) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string_view::npos) vars[std::string(kv.substr(0, eq))] = kv;
  }
  for (auto name : unset) vars.erase(std::string(name));
  auto put = [&](const std::string& kv) { vars[kv.substr(0, kv.find('='))] = kv; };
  if (switch_user) {
    vars.erase("XDG_CONFIG_HOME");
    if (!as.home.empty()) put("HOME=" + as.home);
    if (!as.name.empty()) {
      put("USER=" + as.name);
      put("LOGNAME=" + as.name);
    }
  }
  for (const auto& kv : set) put(kv);
  std::vector<std::string> env;
  for (auto& [name, kv] : vars) env.push_back(std::move(kv));
  return env;
}

// Under sudo, PATH is sudo's secure_path; and git runs as the user anyway,
// so a git found earlier in PATH gets nothing the user did not have.
const std::string& git_path() {
  static const std::string path = [] {
    const char* env = std::getenv("PATH");
    for (const auto& dir : split(env ? env : "", ':')) {
      std::string candidate = (dir.empty() ? "." : dir) + "/git";
      if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return std::string("/usr/bin/git");
  }();
  return path;
}

// git in one directory, as one user.
class Git {
 public:
  Git(const Credentials& as, std::string dir) : as_(as), dir_(std::move(dir)) {}

  const std::string& dir() const { return dir_; }
  const Credentials& as() const { return as_; }

  Exit run(const std::vector<std::string>& args, const std::string& input = {},
           const std::vector<std::string>& env = {}) const {
    Program p;
    p.argv = {git_path()};
    p.argv.insert(p.argv.end(), args.begin(), args.end());
    // A repository, index or work tree named by the environment would win
    // over the directory we run in. GIT_OPTIONAL_LOCKS=0: `git status` on a
    // worktree an agent is using must not take its index lock. LC_ALL=C:
    // the messages we look at are git's English ones.
    std::vector<std::string> set = {"LC_ALL=C", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0"};
    set.insert(set.end(), env.begin(), env.end());
    p.env = child_env(
        as_, switches_user(as_), set,
        {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY",
         "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE", "GIT_PREFIX"});
    p.cwd = dir_;
    p.as = &as_;
    return run_program(p, input);
  }

  // Its stdout; throws with git's reason when it fails.
  std::string check_raw(const std::vector<std::string>& args, const std::string& input = {},
                        const std::vector<std::string>& env = {}) const {
    Exit r = run(args, input, env);
    if (r.code != 0) {
      std::string what = args[0] == "worktree" ? args[0] + " " + args[1] : args[0];
      fail(fmt::format("git {} failed in {}: {}", what, dir_, first_error_line(r.err)));
    }
    return std::move(r.out);
  }
  // ... without the final newline.
  std::string check(const std::vector<std::string>& args, const std::string& input = {},
                    const std::vector<std::string>& env = {}) const {
    return trim(check_raw(args, input, env));
  }

  // The commit `rev` names, or "".
  std::string commit(const std::string& rev) const {
    Exit r = run({"rev-parse", "--verify", "--quiet", "--end-of-options", rev + "^{commit}"});
    return r.code == 0 ? trim(r.out) : "";
  }

 private:
  Credentials as_;
  std::string dir_;
};

std::string branch_of(const std::string& name) { return std::string(kBranchPrefix) + name; }
std::string branch_ref(const std::string& name) { return "refs/heads/" + branch_of(name); }

std::string short_commit(const std::string& commit) { return commit.substr(0, 7); }

// The branch checked out in the git's directory, "" when HEAD is detached.
std::string current_branch(const Git& git) {
  Exit r = git.run({"symbolic-ref", "--quiet", "--short", "HEAD"});
  return r.code == 0 ? trim(r.out) : "";
}

bool is_worktree_dir(const std::string& path) {
  struct stat st;
  return ::lstat((path + "/.git").c_str(), &st) == 0;
}

// --- the repository and its metadata -----------------------------------------

struct Repo {
  std::string top;         // the checkout's top level
  std::string common_dir;  // the git dir all its worktrees share
  std::string metadata() const { return common_dir + "/" + kMetadataFile; }
};

Repo find_repo(const Git& git, std::string_view needs) {
  Exit r = git.run({"rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir"});
  if (r.code != 0) {
    if (r.err.find("not a git repository") != std::string::npos)
      fail(fmt::format("not a git repository: {}{}", git.dir(), needs));
    fail(fmt::format("git rev-parse failed in {}: {}", git.dir(), first_error_line(r.err)));
  }
  auto lines = split(trim(r.out), '\n');
  if (lines.size() != 2) fail(fmt::format("git rev-parse in {}: unexpected output", git.dir()));
  std::error_code ec;
  fs::path common = fs::weakly_canonical(lines[1], ec);
  return {lines[0], ec ? lines[1] : common.string()};
}

// "SECONDS.NANOSECONDS" since the epoch, and back.
std::string format_time(std::chrono::system_clock::time_point t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  return fmt::format("{}.{:09}", ns / 1'000'000'000, ns % 1'000'000'000);
}

std::chrono::system_clock::time_point from_timespec(timespec ts) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
}

std::chrono::system_clock::time_point parse_time(const std::string& s) {
  char* end = nullptr;
  timespec ts{};
  ts.tv_sec = std::strtoll(s.c_str(), &end, 10);
  if (*end == '.') ts.tv_nsec = std::strtol(end + 1, nullptr, 10);
  return from_timespec(ts);
}

std::chrono::system_clock::time_point coarse_now() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return from_timespec(ts);
}

// Every [worktree "NAME"] section, by name.
std::map<std::string, Worktree> read_metadata(const Git& git, const Repo& repo) {
  std::map<std::string, Worktree> all;
  std::error_code ec;
  if (!fs::exists(repo.metadata(), ec)) return all;
  Exit r = git.run({"config", "--file", repo.metadata(), "--null", "--get-regexp", "^worktree\\."});
  if (r.code == 1) return all;  // no section left
  if (r.code != 0)
    fail(fmt::format("cannot read {}: {}", repo.metadata(), first_error_line(r.err)));
  for (const auto& entry : split(r.out, '\0')) {
    auto nl = entry.find('\n');
    std::string key = entry.substr(0, nl),
                value = nl == std::string::npos ? "" : entry.substr(nl + 1);
    auto dot = key.rfind('.');
    if (dot <= 9) continue;  // not worktree.NAME.VAR
    std::string name = key.substr(9, dot - 9), var = key.substr(dot + 1);
    Worktree& wt = all[name];
    wt.name = name;
    wt.branch = branch_of(name);
    if (var == "path") wt.path = value;
    if (var == "base") wt.base_ref = value;
    if (var == "base-commit") wt.base_commit = value;
    if (var == "origin-branch") wt.origin_branch = value;
    if (var == "repo") wt.repo = value;
    if (var == "created") wt.created = parse_time(value);
  }
  return all;
}

void write_metadata(const Git& git, const Repo& repo, const Worktree& wt) {
  const std::pair<const char*, std::string> vars[] = {{"path", wt.path},
                                                      {"base", wt.base_ref},
                                                      {"base-commit", wt.base_commit},
                                                      {"origin-branch", wt.origin_branch},
                                                      {"repo", wt.repo},
                                                      {"created", format_time(wt.created)}};
  for (const auto& [var, value] : vars)
    git.check({"config", "--file", repo.metadata(), "--",
               fmt::format("worktree.{}.{}", wt.name, var), value});
}

void remove_metadata(const Git& git, const Repo& repo, const std::string& name) {
  git.check({"config", "--file", repo.metadata(), "--remove-section", "worktree." + name});
}

// <name>-<hash>: the name of the repository's main checkout (the same from
// any of its worktrees), the hash of its git dir for two clones of one name.
std::string repo_folder(const Repo& repo) {
  // FNV-1a: stable across builds and machines, unlike std::hash.
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : repo.common_dir) {
    h ^= c;
    h *= 1099511628211ull;
  }
  fs::path common(repo.common_dir);
  std::string name = common.filename() == ".git" ? common.parent_path().filename().string()
                                                 : common.stem().string();  // bare: NAME.git
  return fmt::format("{}-{:08x}", name, h >> 32);
}

// Undoes a half-made worktree unless dismissed: made once its branch is,
// so it only removes what this process created.
class Rollback {
 public:
  Rollback(const Git& git, const Repo& repo, const Worktree& wt)
      : git_(git), repo_(repo), wt_(wt) {}
  ~Rollback() {
    if (done_) return;
    if (checked_out_) git_.run({"worktree", "remove", "--force", wt_.path});
    git_.run({"branch", "-D", wt_.branch});
    git_.run({"config", "--file", repo_.metadata(), "--remove-section", "worktree." + wt_.name});
  }
  Rollback(const Rollback&) = delete;
  Rollback& operator=(const Rollback&) = delete;
  void checked_out() { checked_out_ = true; }
  void dismiss() { done_ = true; }

 private:
  const Git& git_;
  const Repo& repo_;
  const Worktree& wt_;
  bool checked_out_ = false;
  bool done_ = false;
};

// --- review ------------------------------------------------------------------

// A directory, removed with what is in it.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "corral-review-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) fail(fmt::format("mkdtemp in {}: {}", tmpl, strerror(errno)));
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void give_to(const std::string& path, const Credentials& as) {
  if (::geteuid() == 0 && ::chown(path.c_str(), as.uid, as.gid) != 0)
    fail(fmt::format("chown {}: {}", path, strerror(errno)));
}

// The tree of the worktree's files as they are (what `git add -A` would
// stage), made in a copy of its index: the agent's own index is left alone,
// and the copy's stat cache spares hashing the files that did not change.
std::string snapshot_tree(const Git& wt) {
  std::string index = wt.check({"rev-parse", "--path-format=absolute", "--git-path", "index"});
  TempDir tmp;
  give_to(tmp.path(), wt.as());
  std::string copy = tmp.path() + "/index";
  std::error_code ec;
  if (fs::exists(index, ec)) {
    fs::copy_file(index, copy, ec);
    if (ec) fail(fmt::format("cannot copy {}: {}", index, ec.message()));
    give_to(copy, wt.as());
  }
  std::vector<std::string> env = {"GIT_INDEX_FILE=" + copy};
  wt.check({"add", "--all"}, {}, env);
  return wt.check({"write-tree"}, {}, env);
}

// One line of `git diff --raw -z`.
struct Change {
  char status;  // A, C, D, M, R, T
  std::string old_mode, new_mode, old_blob, new_blob;
  std::string path, from;  // from: of a rename or copy
};

std::vector<Change> changes(const Git& git, const std::string& from, const std::string& to) {
  auto f = split(git.check_raw({"diff", "--raw", "-z", "-M", "--no-abbrev", from, to}), '\0');
  std::vector<Change> all;
  for (size_t i = 0; i < f.size();) {
    auto meta = split(f[i++].substr(1), ' ');  // ":OLDMODE NEWMODE OLDBLOB NEWBLOB STATUS"
    if (meta.size() < 5 || meta[4].empty() || i >= f.size()) break;
    Change c{meta[4][0], meta[0], meta[1], meta[2], meta[3], "", ""};
    if ((c.status == 'R' || c.status == 'C') && i + 1 < f.size()) c.from = f[i++];
    c.path = f[i++];
    all.push_back(std::move(c));
  }
  return all;
}

// Paths git counts as binary ("-\t-\t" in --numstat).
std::set<std::string> binary_paths(const Git& git, const std::string& from, const std::string& to) {
  auto f = split(git.check_raw({"diff", "--numstat", "-z", "-M", from, to}), '\0');
  std::set<std::string> paths;
  for (size_t i = 0; i < f.size(); i++) {
    bool binary = f[i].starts_with("-\t-\t");
    auto tab = f[i].find('\t', f[i].find('\t') + 1);
    std::string path = tab == std::string::npos ? "" : f[i].substr(tab + 1);
    if (path.empty() && i + 2 < f.size()) path = f[i += 2];  // a rename: FROM, TO follow
    if (binary) paths.insert(path);
  }
  return paths;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

template <size_t N>
bool any_folder(const std::vector<std::string>& parts, const std::array<const char*, N>& names) {
  for (size_t i = 0; i + 1 < parts.size(); i++)
    for (const char* n : names)
      if (lower(parts[i]) == n) return true;
  return false;
}

// junit/xunit/surefire results and coverage data: what CI reads to decide
// that the tests passed.
bool is_test_report(const std::string& path) {
  auto parts = split(path, '/');
  static constexpr std::array<const char*, 7> folders = {
      "coverage",     "htmlcov",          ".nyc_output",     "test-results",
      "test-reports", "surefire-reports", "failsafe-reports"};
  if (any_folder(parts, folders)) return true;
  std::string base = lower(parts.back());
  if (base.ends_with(".xml"))
    for (const char* p : {"junit", "test-", "cobertura", "jacoco", "coverage", "xunit"})
      if (base.starts_with(p)) return true;
  return base.ends_with(".junit.xml") || base == "lcov.info" || base.ends_with(".lcov") ||
         base == ".coverage" || base.starts_with(".coverage.") || base == "coverage.json" ||
         base.ends_with(".trx");
}

bool is_test(const std::string& path) {
  auto parts = split(path, '/');
  static constexpr std::array<const char*, 6> folders = {"test",  "tests",     "spec",
                                                         "specs", "__tests__", "testing"};
  if (any_folder(parts, folders)) return true;
  const std::string& base = parts.back();
  std::string stem = base.substr(0, base.rfind('.'));
  return base.starts_with("test_") || base.find(".test.") != std::string::npos ||
         base.find(".spec.") != std::string::npos || stem.ends_with("_test") ||
         stem.ends_with("_tests") || stem.ends_with("_spec") || stem.ends_with("Test") ||
         stem.ends_with("Tests");
}

// Whether a symlink at `link` (repository-relative) to `target` resolves
// outside the repository, by its text.
bool leaves_repo(const std::string& link, const std::string& target) {
  if (target.empty() || target[0] == '/') return true;
  auto parts = split(link, '/');
  parts.pop_back();
  for (const auto& c : split(target, '/')) {
    if (c.empty() || c == ".") continue;
    if (c != "..") {
      parts.push_back(c);
    } else if (parts.empty()) {
      return true;
    } else {
      parts.pop_back();
    }
  }
  return false;
}

// A protected entry: "DIR/" is what is under DIR, else the path or what is
// under it.
bool under(const std::string& path, const std::string& entry) {
  if (entry.ends_with('/')) return path.starts_with(entry);
  return path == entry || path.starts_with(entry + "/");
}

std::string normalized_entry(std::string entry) {
  while (entry.starts_with("./")) entry.erase(0, 2);
  while (entry.starts_with("/")) entry.erase(0, 1);
  return entry;
}

std::string what_happened(const Change& c) {
  switch (c.status) {
    case 'A':
      return "(added)";
    case 'D':
      return "(deleted)";
    case 'R':
      return "(renamed from " + c.from + ")";
    case 'C':
      return "(copied from " + c.from + ")";
    case 'T':
      return "(type changed)";
    default:
      return c.old_blob == c.new_blob ? "(mode changed)" : "(modified)";
  }
}

std::string mib(uint64_t bytes) { return fmt::format("({:.1f} MiB)", bytes / 1048576.0); }

// What changed since `since` in the git dir under a protected ".git/..."
// entry, by ctime, which no one but root can set back: files, and folders
// whose entries changed with no changed file left to show for it (a removed
// hook).
void git_dir_risks(const Git& repo, const Repo& r, const std::string& entry,
                   std::chrono::system_clock::time_point since, std::vector<Risk>& risks) {
  std::string rest = entry.substr(5);
  while (rest.ends_with('/')) rest.pop_back();
  if (rest.empty()) return;
  // --git-path follows core.hooksPath for hooks, the common dir for config.
  fs::path where = repo.check({"rev-parse", "--path-format=absolute", "--git-path", rest});
  std::string shown_base = where == fs::path(r.common_dir) / rest ? ".git/" + rest : where.string();
  auto shown = [&](const fs::path& p) {
    return p == where ? shown_base : shown_base + "/" + fs::relative(p, where).string();
  };
  auto changed = [&](const fs::path& p) {
    struct stat st;
    return ::lstat(p.c_str(), &st) == 0 && from_timespec(st.st_ctim) >= since;
  };
  std::error_code ec;
  if (!fs::is_directory(where, ec)) {
    if (changed(where))
      risks.push_back({"protected path", shown_base, "(changed since the worktree was created)"});
    return;
  }
  std::vector<fs::path> folders = {where};
  std::set<fs::path> explained;  // folders with a changed file in them
  for (auto it = fs::recursive_directory_iterator(
           where, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it->is_directory(ec)) {
      folders.push_back(it->path());
    } else if (changed(it->path())) {
      risks.push_back(
          {"protected path", shown(it->path()), "(changed since the worktree was created)"});
      explained.insert(it->path().parent_path());
    }
  }
  for (const auto& folder : folders)
    if (!explained.count(folder) && changed(folder))
      risks.push_back({"protected path", shown(folder),
                       "(files removed or renamed since the worktree was created)"});
}

std::vector<Risk> find_risks(const Git& repo, const Repo& r, const Worktree& wt,
                             const std::string& from, const std::string& to,
                             const ReviewOptions& o) {
  std::vector<Risk> risks;
  std::vector<std::string> entries;
  for (const auto& e : o.protected_paths) entries.push_back(normalized_entry(e));
  for (const auto& e : entries)
    if (e.starts_with(".git/")) git_dir_risks(repo, r, e, wt.created, risks);

  auto all = changes(repo, from, to);
  auto binaries = binary_paths(repo, from, to);
  std::string sizes_query;
  for (const auto& c : all)
    if (c.status != 'D' && binaries.count(c.path)) sizes_query += c.new_blob + "\n";
  std::map<std::string, uint64_t> sizes;
  if (!sizes_query.empty())
    for (const auto& line :
         split(repo.check_raw({"cat-file", "--batch-check"}, sizes_query), '\n')) {
      auto f = split(line, ' ');  // "BLOB blob SIZE"
      if (f.size() == 3) sizes[f[0]] = std::strtoull(f[2].c_str(), nullptr, 10);
    }

  for (const auto& c : all) {
    for (const auto& e : entries)
      if (!e.starts_with(".git/") && (under(c.path, e) || (!c.from.empty() && under(c.from, e)))) {
        risks.push_back({"protected path", c.path, what_happened(c)});
        break;
      }
    if (is_test_report(c.path)) {
      risks.push_back({"test report", c.path, what_happened(c)});
    } else if (c.status == 'D' && is_test(c.path)) {
      risks.push_back({"deleted test", c.path, ""});
    } else if (c.status == 'R' && is_test(c.from) && !is_test(c.path)) {
      risks.push_back({"deleted test", c.from, "(renamed to " + c.path + ")"});
    }
    if (c.status == 'D') continue;
    if (c.new_mode == "100755" && c.old_mode != "100755")
      risks.push_back({"new executable", c.path, c.status == 'A' ? "" : "(made executable)"});
    if (c.new_mode == "120000") {
      Exit target = repo.run({"cat-file", "blob", c.new_blob});
      if (target.code == 0 && leaves_repo(c.path, target.out))
        risks.push_back({"symlink outside the repo", c.path, "-> " + target.out});
    }
    if (auto size = sizes.find(c.new_blob); size != sizes.end() && size->second >= o.large_bytes)
      risks.push_back({"large binary", c.path, mib(size->second)});
  }
  return risks;
}

Worktree resume(const Git& git, Worktree wt, const std::string& base) {
  if (!base.empty() && base != wt.base_ref && git.commit(base) != wt.base_commit)
    fail(
        fmt::format("worktree {} exists, started from {} ({}), not --base {}: drop --base to "
                    "resume it, or pick another name",
                    wt.name, wt.base_ref, short_commit(wt.base_commit), base));
  if (!is_worktree_dir(wt.path)) {
    if (git.commit(branch_ref(wt.name)).empty())
      fail(
          fmt::format("worktree {}: its directory {} and its branch {} are gone; corral discard "
                      "{} forgets it",
                      wt.name, wt.path, wt.branch, wt.name));
    git.check({"worktree", "prune"});
    git.check({"worktree", "add", "--quiet", wt.path, wt.branch});
    spdlog::info("worktree {}: its directory was gone; checked {} out again at {}", wt.name,
                 wt.branch, wt.path);
  }
  wt.resumed = true;
  return wt;
}

// The names of the files `git status` lists (untracked ones too unless
// `tracked_only`).
std::vector<std::string> uncommitted(const Git& git, bool tracked_only) {
  std::vector<std::string> args = {"status", "--porcelain", "--no-renames", "-z"};
  if (tracked_only) args.push_back("--untracked-files=no");
  std::vector<std::string> files;
  for (const auto& entry : split(git.check_raw(args), '\0'))
    if (entry.size() > 3) files.push_back(entry.substr(3));  // "XY PATH"
  return files;
}

std::string merge(const Worktree& wt, const Credentials& as) {
  Git repo(as, wt.repo);
  if (wt.origin_branch.empty())
    fail(
        fmt::format("worktree {} was started from a detached HEAD: there is no branch to merge "
                    "it into; merge {} yourself",
                    wt.name, wt.branch));
  std::string tip = repo.commit(branch_ref(wt.name));
  if (tip.empty()) fail(fmt::format("branch {} of worktree {} is gone", wt.branch, wt.name));
  std::string on = current_branch(repo);
  if (on != wt.origin_branch)
    fail(fmt::format(
        "{} is on {}, not {}, the branch worktree {} was started from; switch to {} "
        "first",
        wt.repo, on.empty() ? "a detached HEAD" : on, wt.origin_branch, wt.name, wt.origin_branch));
  if (auto dirty = uncommitted(repo, true); !dirty.empty())
    fail(fmt::format("{} has uncommitted changes ({}); commit or stash them first", wt.repo,
                     join(dirty, ", ", 5)));
  if (is_worktree_dir(wt.path))
    if (auto dirty = uncommitted(Git(as, wt.path), false); !dirty.empty())
      fail(
          fmt::format("worktree {} has uncommitted changes ({}); corral review {} shows them: "
                      "commit them in {}, or corral discard {}",
                      wt.name, join(dirty, ", ", 5), wt.name, wt.path, wt.name));
  if (repo.run({"merge-base", "--is-ancestor", tip, "HEAD"}).code == 0)
    fail(fmt::format("{} has nothing to merge: {} already has all its commits", wt.branch,
                     wt.origin_branch));

  std::string before = repo.check({"rev-parse", "HEAD"});
  Exit r = repo.run(
      {"merge", "--no-ff", "--no-edit", "-m", "corral: merge " + wt.name, branch_ref(wt.name)});
  if (r.code == 0) return repo.check({"rev-parse", "HEAD"});
  std::string reason = first_error_line(r.err.empty() ? r.out : r.err);
  if (repo.commit("MERGE_HEAD").empty())  // refused before it began: nothing to undo
    fail(fmt::format("git merge failed in {}: {}", wt.repo, reason));
  auto conflicts = split(repo.check_raw({"diff", "--name-only", "--diff-filter=U", "-z"}), '\0');
  repo.check({"merge", "--abort"});
  if (repo.check({"rev-parse", "HEAD"}) != before || !repo.commit("MERGE_HEAD").empty())
    fail(fmt::format("merging {} failed and {} could not be restored: check git status there",
                     wt.branch, wt.repo));
  if (conflicts.empty())
    fail(fmt::format("merging {} into {} stopped ({}); aborted, {} is as it was", wt.branch,
                     wt.origin_branch, reason, wt.repo));
  fail(
      fmt::format("merging {} into {} conflicts in {}; aborted, {} is as it was: merge {} into "
                  "the worktree (git -C {} merge {}), resolve, commit, and merge again",
                  wt.branch, wt.origin_branch, join(conflicts, ", ", 5), wt.repo, wt.origin_branch,
                  wt.path, wt.origin_branch));
}

std::string discard(const Worktree& wt, const Credentials& as) {
  Git repo(as, wt.repo);
  std::string tip = repo.commit(branch_ref(wt.name));
  // Its sessions' overlay directories (worktree_git_mounts), root's.
  fs::path sessions =
      fs::path(trim(repo.check({"rev-parse", "--path-format=absolute", "--git-common-dir"}))) /
      "corral-sessions" / wt.name;
  std::error_code ec;
  fs::remove_all(sessions, ec);
  if (ec) spdlog::warn("failed to remove {}: {}", sessions.string(), ec.message());
  if (is_worktree_dir(wt.path))
    repo.check({"worktree", "remove", "--force", wt.path});
  else
    repo.check({"worktree", "prune"});
  if (!tip.empty()) repo.check({"branch", "-D", wt.branch});
  remove_metadata(repo, find_repo(repo, ""), wt.name);
  return tip;
}

template <typename F>
int guarded(std::ostream& err, F&& body) {
  try {
    return body();
  } catch (const std::exception& e) {
    err << "corral: error: " << e.what() << '\n';
    return 1;
  }
}

// The review through `pager` (sh -c, as git runs its pager), as the user.
void page(const std::string& text, const std::string& pager, const Credentials& as) {
  Program p;
  p.argv = {"/bin/sh", "-c", pager};
  std::vector<std::string> set;
  if (!std::getenv("LESS")) set.push_back("LESS=FRX");  // git's: one screen is just printed
  p.env = child_env(as, switches_user(as), set, {});
  p.cwd = "/";
  p.as = &as;
  p.capture = false;
  // Ctrl-C is the pager's (less stops a search with it): corral must not
  // die under it and hand the terminal back while it still draws.
  SignalsIgnored interrupts({SIGINT, SIGQUIT});
  run_program(p, text);
}

}  // namespace

std::string default_worktrees_root(const Credentials& owner) {
  const char* xdg = std::getenv("XDG_DATA_HOME");
  if (::geteuid() == owner.uid && xdg && xdg[0] == '/')
    return std::string(xdg) + "/corral/worktrees";
  std::string home = owner.home;
  if (home.empty()) {
    std::vector<char> buf(16384);
    passwd pw, *found = nullptr;
    if (::getpwuid_r(owner.uid, &pw, buf.data(), buf.size(), &found) == 0 && found)
      home = pw.pw_dir;
  }
  if (home.empty() || home[0] != '/')
    fail(fmt::format("uid {} has no home directory for its worktrees; give a worktrees folder",
                     owner.uid));
  return home + "/.local/share/corral/worktrees";
}

void validate_worktree_name(const std::string& name) {
  auto bad = [&](const std::string& why) {
    throw std::invalid_argument(fmt::format("bad worktree name '{}': {}", name, why));
  };
  if (name.empty()) bad("it is empty");
  if (name.size() > 64) bad(fmt::format("{} characters, at most 64", name.size()));
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == '-'))
      bad(fmt::format("{:?} is not allowed (letters, digits, '.', '_' and '-' are)", c));
  if (name[0] == '-' || name[0] == '.') bad(fmt::format("it starts with '{}'", name[0]));
  if (name.find("..") != std::string::npos) bad("it contains '..'");
  if (name.back() == '.') bad("it ends with '.'");
  if (name.ends_with(".lock")) bad("it ends with '.lock'");
}

Worktree prepare_worktree(const std::string& repo_dir, const std::string& name,
                          const std::string& base, const Credentials& owner,
                          const std::string& worktrees_root) {
  validate_worktree_name(name);
  Git git(owner, repo_dir);
  Repo repo = find_repo(git, " (--worktree needs one)");
  auto all = read_metadata(git, repo);
  if (auto it = all.find(name); it != all.end()) return resume(git, it->second, base);

  Worktree wt;
  wt.name = name;
  wt.branch = branch_of(name);
  wt.repo = repo.top;
  if (!git.commit(branch_ref(name)).empty())
    fail(
        fmt::format("branch {} exists in {} but is no corral worktree: pick another name, or "
                    "delete the branch",
                    wt.branch, repo.top));
  wt.base_commit = git.commit(base.empty() ? "HEAD" : base);
  if (wt.base_commit.empty())
    fail(base.empty() ? fmt::format("{} has no commit yet; --worktree starts from one", repo.top)
                      : fmt::format("--base {}: no such commit in {}", base, repo.top));
  wt.origin_branch = current_branch(git);
  wt.base_ref = !base.empty() ? base : !wt.origin_branch.empty() ? wt.origin_branch : "HEAD";
  fs::path root = worktrees_root.empty() ? default_worktrees_root(owner) : worktrees_root;
  wt.path = (fs::absolute(root) / repo_folder(repo) / name).lexically_normal().string();
  std::error_code ec;
  if (fs::exists(fs::symlink_status(wt.path, ec)))
    fail(fmt::format("{} already exists and is no worktree of {}: remove it or pick another name",
                     wt.path, repo.top));
  wt.created = coarse_now();

  // The branch first, on its own: of two runs racing for one NAME only one
  // makes it (git locks the ref), and the other gives up owning nothing.
  git.check({"branch", "--no-track", wt.branch, wt.base_commit});
  Rollback rollback(git, repo, wt);
  git.check({"worktree", "add", "--quiet", wt.path, wt.branch});
  rollback.checked_out();
  write_metadata(git, repo, wt);
  rollback.dismiss();
  return wt;
}

std::string worktree_cwd(const Worktree& wt, const std::string& cwd) {
  std::error_code ec;
  fs::path rel = fs::weakly_canonical(cwd, ec).lexically_relative(wt.repo);
  if (ec || rel.empty() || rel == "." || *rel.begin() == "..") return wt.path;
  fs::path dir = (fs::path(wt.path) / rel).lexically_normal();
  return fs::is_directory(dir, ec) ? dir.string() : wt.path;
}

namespace {

// The shared directories a worktree session sees through an overlay, and
// the names of their upper directories. These live in the repository's
// common dir, which no session can write: a session cannot plant a symlink
// where the next one's overlay or corral's take-in would follow it.
constexpr std::pair<const char*, const char*> kOverlaid[] = {
    {"objects", "objects"},
    {"refs/heads/corral", "refs"},
    {"logs/refs/heads/corral", "logs"},
};

struct GitDirs {
  fs::path gitdir, common;
};

GitDirs git_dirs(const Worktree& wt, const Credentials& owner) {
  Git git(owner, wt.path);
  Exit r = git.run({"rev-parse", "--path-format=absolute", "--git-dir", "--git-common-dir"});
  auto lines = split(trim(r.out), '\n');
  if (r.code != 0 || lines.size() != 2)
    fail(fmt::format("git rev-parse failed in {}: {}", wt.path, first_error_line(r.err)));
  return {lines[0], lines[1]};
}

fs::path overlay_dir(const GitDirs& d, const Worktree& wt) {
  return d.common / "corral-sessions" / wt.name;
}

// Whether two files hold the same bytes.
bool same_content(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (fs::file_size(a, ec) != fs::file_size(b, ec) || ec) return false;
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  return std::equal(std::istreambuf_iterator<char>(fa), std::istreambuf_iterator<char>(),
                    std::istreambuf_iterator<char>(fb));
}

// New objects into the store, owned like it; never over an existing one.
void take_in_objects(const fs::path& upper, const fs::path& store,
                     std::vector<std::string>& dropped) {
  std::error_code ec;
  if (!fs::exists(upper, ec)) return;  // no session since the last take-in
  struct stat owner;
  if (::stat(store.c_str(), &owner) != 0) fail("failed to stat " + store.string());
  size_t removals = 0;  // whiteouts (a gc's pruning), links: not taken in
  for (auto it = fs::recursive_directory_iterator(upper, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const fs::path rel = it->path().lexically_relative(upper);
    const fs::path dest = store / rel;
    if (it->is_symlink() || (!it->is_regular_file() && !it->is_directory())) {
      removals++;
      continue;
    }
    if (it->is_directory()) {
      if (::mkdir(dest.c_str(), 0755) == 0) {
        if (::chown(dest.c_str(), owner.st_uid, owner.st_gid) != 0)
          fail(fmt::format("failed to chown {}: {}", dest.string(), std::strerror(errno)));
      } else if (errno != EEXIST) {
        fail(fmt::format("failed to create {}: {}", dest.string(), std::strerror(errno)));
      }
      continue;
    }
    if (::renameat2(AT_FDCWD, it->path().c_str(), AT_FDCWD, dest.c_str(), RENAME_NOREPLACE) == 0)
      continue;
    if (errno != EEXIST)
      fail(fmt::format("failed to move {} into {}: {}", it->path().string(), dest.string(),
                       std::strerror(errno)));
    if (!same_content(it->path(), dest)) dropped.push_back("objects/" + rel.string() + " (rewritten)");
  }
  if (ec) fail(fmt::format("failed to read {}: {}", upper.string(), ec.message()));
  if (removals) dropped.push_back(fmt::format("objects ({} removal(s) or link(s))", removals));
}

}  // namespace

WorktreeGitMounts worktree_git_mounts(const Worktree& wt, const Credentials& owner) {
  GitDirs d = git_dirs(wt, owner);
  // The reflog directory of corral/* branches must exist before the host
  // turns read-only around it; made as the owner, like git would.
  std::error_code ec;
  if (!fs::exists(d.common / "logs/refs/heads/corral", ec)) {
    Git(owner, wt.path)
        .check({"-c", "core.logAllRefUpdates=true", "update-ref", "--create-reflog",
                "refs/heads/" + wt.branch, wt.branch});
  }
  const fs::path dir = overlay_dir(d, wt);
  // A new worktree starts clean (a discarded one of the same name may have
  // left its session's changes); a resumed one takes in what an earlier
  // session left, its corral run killed before the take-in.
  if (!wt.resumed) {
    fs::remove_all(dir, ec);
    if (ec) fail(fmt::format("failed to remove {}: {}", dir.string(), ec.message()));
  }
  WorktreeGitMounts m;
  fs::create_directories(dir, ec);
  if (ec) fail(fmt::format("failed to create {}: {}", dir.string(), ec.message()));
  m.lock.reset(::open((dir / "lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!m.lock) fail(fmt::format("failed to open {}: {}", (dir / "lock").string(), std::strerror(errno)));
  if (::flock(m.lock.get(), LOCK_EX | LOCK_NB) != 0)
    fail(errno == EWOULDBLOCK
             ? fmt::format("worktree {} has a session running; one at a time", wt.name)
             : fmt::format("failed to lock {}: {}", (dir / "lock").string(), std::strerror(errno)));
  for (const auto& what : take_in_worktree_session(wt, owner))
    spdlog::warn("worktree {}: an earlier session's change to {} was dropped", wt.name, what);
  m.writable.push_back(d.gitdir);
  for (const auto& [shared, name] : kOverlaid) {
    OverlayMount o{(d.common / shared).string(), (dir / (std::string(name) + "-upper")).string(),
                   (dir / (std::string(name) + "-work")).string()};
    for (const std::string& p : {o.upper, o.work}) {
      fs::create_directories(p, ec);
      if (ec) fail(fmt::format("failed to create {}: {}", p, ec.message()));
    }
    m.overlays.push_back(std::move(o));
  }
  return m;
}

std::vector<std::string> take_in_worktree_session(const Worktree& wt, const Credentials& owner) {
  GitDirs d = git_dirs(wt, owner);
  const fs::path dir = overlay_dir(d, wt);
  std::vector<std::string> dropped;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return dropped;
  take_in_objects(dir / "objects-upper", d.common / "objects", dropped);
  // The session's own branch only, through git: it checks the commit.
  const fs::path refs = dir / "refs-upper";
  for (const auto& entry : fs::directory_iterator(refs, ec)) {
    const std::string file = entry.path().filename();
    if (file == wt.name && entry.is_regular_file() && !entry.is_symlink()) {
      std::ifstream in(entry.path());
      std::string sha;
      in >> sha;
      bool hex = (sha.size() == 40 || sha.size() == 64) &&
                 sha.find_first_not_of("0123456789abcdef") == std::string::npos;
      if (!hex) {
        dropped.push_back("refs/heads/" + wt.branch + " (not a commit id)");
        continue;
      }
      Exit r = Git(owner, wt.repo).run({"update-ref", "-m", "corral: session in worktree " + wt.name,
                                        "refs/heads/" + wt.branch, sha});
      if (r.code != 0)
        dropped.push_back("refs/heads/" + wt.branch + " (" + first_error_line(r.err) + ")");
    } else if (!file.ends_with(".lock")) {
      dropped.push_back("refs/heads/corral/" + file);
    }
  }
  // Reflogs are written again by update-ref; the rest starts empty.
  for (const auto& [shared, name] : kOverlaid)
    for (const char* part : {"-upper", "-work"}) {
      fs::remove_all(dir / (std::string(name) + part), ec);
      if (ec) fail(fmt::format("failed to empty {}: {}", (dir / name).string(), ec.message()));
    }
  return dropped;
}

std::vector<Worktree> list_worktrees(const std::string& repo_dir, const Credentials& as) {
  Git git(as, repo_dir);
  std::vector<Worktree> list;
  for (auto& [name, wt] : read_metadata(git, find_repo(git, ""))) list.push_back(std::move(wt));
  std::stable_sort(list.begin(), list.end(),
                   [](const Worktree& a, const Worktree& b) { return a.created < b.created; });
  return list;
}

Worktree find_worktree(const std::string& repo_dir, const std::string& name,
                       const Credentials& as) {
  Git git(as, repo_dir);
  Repo repo = find_repo(git, "");
  auto all = read_metadata(git, repo);
  auto it = all.find(name);
  if (it == all.end())
    fail(fmt::format("no corral worktree named '{}' in {} (corral worktrees lists them)", name,
                     repo.top));
  return it->second;
}

WorktreeStatus worktree_status(const Worktree& wt, const Credentials& as) {
  WorktreeStatus s;
  Git repo(as, wt.repo);
  std::string tip = repo.commit(branch_ref(wt.name));
  s.branch_missing = tip.empty();
  if (!tip.empty())
    s.commits = std::stoull(repo.check({"rev-list", "--count", wt.base_commit + ".." + tip}));
  s.missing = !is_worktree_dir(wt.path);
  if (!s.missing) s.changed_files = uncommitted(Git(as, wt.path), false).size();
  return s;
}

std::string describe(const WorktreeStatus& s) {
  std::vector<std::string> parts;
  if (s.commits) parts.push_back(fmt::format("{} commit{}", s.commits, s.commits == 1 ? "" : "s"));
  if (s.changed_files) parts.push_back("dirty");
  if (s.missing) parts.push_back("missing");
  if (s.branch_missing) parts.push_back("branch gone");
  return parts.empty() ? "no changes" : join(parts, ", ", parts.size());
}

std::string format_age(std::chrono::system_clock::time_point created,
                       std::chrono::system_clock::time_point now) {
  auto s =
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(now - created).count());
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m", s / 60);
  if (s < 48 * 3600) return fmt::format("{}h", s / 3600);
  return fmt::format("{}d", s / 86400);
}

Review review_worktree(const ReviewOptions& o) {
  Review rv;
  rv.worktree = find_worktree(o.repo_dir, o.name, o.as);
  const Worktree& wt = rv.worktree;
  Git repo(o.as, wt.repo);
  Repo r = find_repo(repo, "");
  std::string tip = repo.commit(branch_ref(wt.name));
  if (tip.empty())
    fail(fmt::format("branch {} of worktree {} is gone; corral discard {} forgets it", wt.branch,
                     wt.name, wt.name));
  rv.against = wt.base_commit;
  if (!wt.origin_branch.empty() && !repo.commit("refs/heads/" + wt.origin_branch).empty())
    if (Exit mb = repo.run({"merge-base", "refs/heads/" + wt.origin_branch, tip}); mb.code == 0)
      rv.against = trim(mb.out);
  rv.commits = std::stoull(repo.check({"rev-list", "--count", rv.against + ".." + tip}));
  std::string tree = tip + "^{tree}";
  if (is_worktree_dir(wt.path)) {
    Git in_wt(o.as, wt.path);
    tree = snapshot_tree(in_wt);
    rv.uncommitted = tree != in_wt.check({"rev-parse", "HEAD^{tree}"});
  }
  rv.risks = find_risks(repo, r, wt, rv.against, tree, o);
  rv.diff = repo.check_raw({"diff", "--stat", "--summary", "--patch", "-M", "--no-ext-diff",
                            o.color ? "--color=always" : "--color=never", rv.against, tree});
  return rv;
}

std::string format_review(const Review& rv, bool color) {
  const Worktree& wt = rv.worktree;
  std::vector<std::string> what;
  if (rv.commits)
    what.push_back(fmt::format("{} commit{}", rv.commits, rv.commits == 1 ? "" : "s"));
  if (rv.uncommitted) what.push_back("uncommitted changes");
  std::string since = rv.against == wt.base_commit
                          ? fmt::format("{}, where it started", wt.base_ref)
                          : fmt::format("where it meets {} now", wt.origin_branch);
  std::string s = fmt::format("worktree {} ({} at {}): {}, against {} ({})\n", wt.name, wt.branch,
                              wt.path, what.empty() ? "no changes" : join(what, " and ", 2),
                              short_commit(rv.against), since);
  const char* risk = color ? "\x1b[1;31mRISK\x1b[m" : "RISK";
  for (const auto& r : rv.risks)
    s +=
        fmt::format("{} {}: {}{}{}\n", risk, r.kind, r.path, r.detail.empty() ? "" : " ", r.detail);
  if (rv.risks.empty()) s += "no risky changes found\n";
  s += "\n";
  s += rv.diff.empty() ? "no differences\n" : rv.diff;
  return s;
}

std::string merge_worktree(const MergeOptions& o) {
  return merge(find_worktree(o.repo_dir, o.name, o.as), o.as);
}

std::string discard_worktree(const DiscardOptions& o) {
  return discard(find_worktree(o.repo_dir, o.name, o.as), o.as);
}

int worktrees_main(const WorktreesOptions& o, std::ostream& out, std::ostream& err) {
  return guarded(err, [&] {
    auto all = list_worktrees(o.repo_dir, o.as);
    if (all.empty()) {
      out << "no corral worktrees here (corral run --worktree NAME -- CMD starts one)\n";
      return 0;
    }
    std::vector<std::array<std::string, 6>> rows = {
        {"NAME", "BRANCH", "BASE", "AGE", "CHANGES", "PATH"}};
    auto now = std::chrono::system_clock::now();
    for (const auto& wt : all) {
      std::string base = wt.base_commit.starts_with(wt.base_ref)
                             ? short_commit(wt.base_commit)
                             : fmt::format("{} ({})", wt.base_ref, short_commit(wt.base_commit));
      rows.push_back({wt.name, wt.branch, base, format_age(wt.created, now),
                      describe(worktree_status(wt, o.as)), wt.path});
    }
    std::array<size_t, 6> width{};
    for (const auto& row : rows)
      for (size_t i = 0; i < row.size(); i++) width[i] = std::max(width[i], row[i].size());
    for (const auto& row : rows) {
      std::string line;
      for (size_t i = 0; i + 1 < row.size(); i++) line += fmt::format("{:<{}}  ", row[i], width[i]);
      out << line << row.back() << '\n';
    }
    return 0;
  });
}

int review_main(const ReviewOptions& o, std::ostream& out, std::ostream& err) {
  return guarded(err, [&] {
    std::string text = format_review(review_worktree(o), o.color);
    if (o.pager.empty()) {
      out << text;
    } else {
      out.flush();  // the pager writes to the same terminal
      page(text, o.pager, o.as);
    }
    return 0;
  });
}

int merge_main(const MergeOptions& o, std::ostream& out, std::ostream& err) {
  return guarded(err, [&] {
    Worktree wt = find_worktree(o.repo_dir, o.name, o.as);
    std::string commit = merge(wt, o.as);
    out << fmt::format(
        "merged {} into {} in {}: {} (corral discard {} removes the worktree and "
        "its branch)\n",
        wt.branch, wt.origin_branch, wt.repo, short_commit(commit), wt.name);
    return 0;
  });
}

int discard_main(const DiscardOptions& o, std::ostream& out, std::ostream& err) {
  return guarded(err, [&] {
    Worktree wt = find_worktree(o.repo_dir, o.name, o.as);
    std::string tip = discard(wt, o.as);
    out << fmt::format("discarded {}: removed {}", wt.name, wt.path);
    if (!tip.empty())
      out << fmt::format(" and {} (it was at {}: git branch {} {} brings it back until git gc)",
                         wt.branch, short_commit(tip), wt.branch, tip);
    out << '\n';
    return 0;
  });
}

}  // namespace corral
