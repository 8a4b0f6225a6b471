#include "process.h"

#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace corral {
namespace {

std::runtime_error errno_error(const std::string& what) {
  return std::runtime_error(what + ": " + std::strerror(errno));
}

bool all_digits(const std::string& s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
}

void fill_from_passwd(const passwd* pw, Credentials& c) {
  c.uid = pw->pw_uid;
  c.gid = pw->pw_gid;
  c.name = pw->pw_name;
  c.home = pw->pw_dir;
}

}  // namespace

Credentials resolve_credentials(const std::string& user, const char* sudo_uid,
                                const char* sudo_gid) {
  Credentials c;
  const passwd* pw = nullptr;
  if (!user.empty()) {
    pw = all_digits(user) ? getpwuid(static_cast<uid_t>(std::stoul(user))) : getpwnam(user.c_str());
    if (!pw) throw std::runtime_error("unknown user '" + user + "' (--user)");
    fill_from_passwd(pw, c);
  } else if (sudo_uid && *sudo_uid) {
    if (!all_digits(sudo_uid)) throw std::runtime_error(std::string("bad SUDO_UID '") + sudo_uid + "'");
    pw = getpwuid(static_cast<uid_t>(std::stoul(sudo_uid)));
    if (!pw) throw std::runtime_error(std::string("SUDO_UID ") + sudo_uid + " has no passwd entry");
    fill_from_passwd(pw, c);
    if (sudo_gid && all_digits(sudo_gid)) c.gid = static_cast<gid_t>(std::stoul(sudo_gid));
  } else {
    pw = getpwuid(geteuid());
    if (pw) {
      fill_from_passwd(pw, c);
    } else {
      c.uid = geteuid();
      c.gid = getegid();
      c.name = std::to_string(c.uid);
      c.home = "/";
    }
  }
  int n = 64;
  c.groups.resize(n);
  if (getgrouplist(c.name.c_str(), c.gid, c.groups.data(), &n) < 0) {
    c.groups.resize(n);
    getgrouplist(c.name.c_str(), c.gid, c.groups.data(), &n);
  }
  c.groups.resize(n);
  return c;
}

std::optional<std::string> find_executable(const std::string& cmd, const std::string& path) {
  auto runnable = [](const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (cmd.empty()) return std::nullopt;
  if (cmd.find('/') != std::string::npos) {
    if (runnable(cmd)) return cmd;
    return std::nullopt;
  }
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t end = path.find(':', pos);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(pos, end - pos);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + cmd;
    if (runnable(candidate)) return candidate;
    pos = end + 1;
  }
  return std::nullopt;
}

std::vector<std::string> agent_environment(char** environ_in, const Credentials& creds) {
  std::vector<std::string> env;
  for (char** e = environ_in; e && *e; e++) {
    std::string_view kv(*e);
    if (kv.starts_with("HOME=") || kv.starts_with("USER=") || kv.starts_with("LOGNAME=")) continue;
    env.emplace_back(kv);
  }
  env.push_back("HOME=" + creds.home);
  env.push_back("USER=" + creds.name);
  env.push_back("LOGNAME=" + creds.name);
  return env;
}

int shell_exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

HeldChild::HeldChild(const std::string& exe, const std::vector<std::string>& argv,
                     const std::vector<std::string>& env, const Credentials& creds) {
  int go[2], err[2];
  if (::pipe2(go, O_CLOEXEC) != 0) throw errno_error("failed to create a pipe");
  UniqueFd go_r(go[0]), go_w(go[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) throw errno_error("failed to create a pipe");
  UniqueFd err_r(err[0]), err_w(err[1]);

  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls.
  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  pid_t parent = ::getpid();

  pid_t pid = ::fork();
  if (pid < 0) throw errno_error("failed to fork");
  if (pid == 0) {
    go_w.reset();
    err_r.reset();
    char byte;
    ssize_t n;
    do n = ::read(go_r.get(), &byte, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) _exit(127);  // the supervisor gave up on us
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, nullptr);
    int e = 0;
    if (::setgroups(creds.groups.size(), creds.groups.data()) != 0 ||
        ::setresgid(creds.gid, creds.gid, creds.gid) != 0 ||
        ::setresuid(creds.uid, creds.uid, creds.uid) != 0)
      e = errno;
    // After the uid change, which clears it: die with the supervisor.
    if (!e && (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent)) e = ESRCH;
    if (!e) {
      ::execve(exe.c_str(), cargv.data(), cenv.data());
      e = errno;
    }
    (void)!::write(err_w.get(), &e, sizeof(e));
    _exit(127);
  }
  pid_ = pid;
  go_ = std::move(go_w);
  exec_err_ = std::move(err_r);
  pidfd_.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd_) {
    int e = errno;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    errno = e;
    throw errno_error("failed to open a pidfd for the agent");
  }
}

HeldChild::~HeldChild() {
  if (pid_ > 0 && !released_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void HeldChild::release() {
  released_ = true;
  char byte = 1;
  if (::write(go_.get(), &byte, 1) != 1) throw errno_error("failed to release the agent");
  go_.reset();
  int e = 0;
  ssize_t n;
  do n = ::read(exec_err_.get(), &e, sizeof(e));
  while (n < 0 && errno == EINTR);
  exec_err_.reset();
  if (n == sizeof(e)) {
    ::waitpid(pid_, nullptr, 0);
    errno = e;
    throw errno_error("failed to start the agent");
  }
}

}  // namespace corral
