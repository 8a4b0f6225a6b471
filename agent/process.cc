#include "process.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <sched.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>

#include "errno_error.h"
#include "mnt.h"
#include "seccomp_filter.h"

namespace corral {

int shell_exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

namespace {

// Everything the init needs after clone: prepared before, so that the
// child only makes async-signal-safe calls.
struct InitPlan {
  const std::vector<sock_filter>* filter;
  const MountPlanArgs* mounts;
  const std::vector<RlimitSetting>* rlimits;
  bool loopback_up;  // a new network namespace: its lo starts down
  bool terminal;     // stdin is the agent's own pty: its controlling terminal
  const char* exe;
  char* const* argv;
  char* const* envp;
  const Credentials* creds;
  int ready_w, go_r, err_w, status_w;
  char* agent_stack_top;  // the agent's stack until it execs (see spawn_agent)
};

// The init and the agent are made with clone(2) from a supervisor that
// may have other threads (DNS lookups): glibc's view of this process is
// then wrong (other threads, locks they held), so from here to execve only
// raw system calls (glibc's clone() is one: no lock, no fork handlers).
// glibc's set*id would try to signal threads that do not exist here, and
// its fork would wait on a lock nobody will release.
// The agent holds no capability, a root one (--allow-root) included: root's
// execve would grant it the whole set (CAP_SYS_PTRACE to read its init's
// memory, CAP_DAC_OVERRIDE, CAP_CHOWN...). An empty bounding set (dropped
// while we still hold CAP_SETPCAP, before the uid change) keeps any exec
// from granting one again; the sets themselves are emptied after it.
int drop_bounding_set() {
  for (int cap = 0; cap < 64; cap++)
    if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) return errno;
  return 0;
}

int clear_capabilities() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  return ::syscall(SYS_capset, &header, data) == 0 ? 0 : errno;
}

[[noreturn]] void agent_main(const InitPlan& p) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // An ignored signal stays ignored across exec: a daemon started with
  // nohup or from a script's `&` would hand its agents SIGHUP or SIGINT
  // ignored (Ctrl-C doing nothing). The agent starts with every default.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  int e = 0;
  if (::syscall(SYS_setgroups, p.creds->groups.size(), p.creds->groups.data()) != 0 ||
      ::syscall(SYS_setresgid, p.creds->gid, p.creds->gid, p.creds->gid) != 0)
    e = errno;
  if (!e) e = drop_bounding_set();
  if (!e && ::syscall(SYS_setresuid, p.creds->uid, p.creds->uid, p.creds->uid) != 0) e = errno;
  if (!e) e = clear_capabilities();
  // After the uid change, which clears it: die with the init.
  if (!e && ::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) e = errno;
  // A session of its own, whose controlling terminal the pty is: job
  // control, /dev/tty and the terminal's signals are the agent's.
  if (!e && p.terminal && (::setsid() < 0 || ::ioctl(STDIN_FILENO, TIOCSCTTY, 0) != 0)) e = errno;
  if (!e && ::getppid() != 1) e = ESRCH;
  if (!e) {
    ::execve(p.exe, p.argv, p.envp);
    e = errno;
  }
  (void)!::write(p.err_w, &e, sizeof(e));
  _exit(127);
}

int agent_entry(void* plan) { agent_main(*static_cast<const InitPlan*>(plan)); }

// The agent shares the init's memory until its execve (like posix_spawn):
// no copy of the page tables the init inherited from the supervisor, and no
// teardown of that copy in the exec. The init waits (CLONE_VFORK) until the
// agent has exec'd or exited, so only the agent runs in that memory, on a
// stack of its own; glibc's clone() is a bare system call wrapper.
pid_t spawn_agent(const InitPlan& p) {
  return ::clone(agent_entry, p.agent_stack_top, CLONE_VM | CLONE_VFORK | SIGCHLD,
                 const_cast<InitPlan*>(&p));
}

[[noreturn]] void init_main(const InitPlan& p) {
  ::prctl(PR_SET_NAME, "corral-init");
  MountFailure f = setup_session_mounts(*p.mounts);
  int& e = f.error;
  if (!e && p.loopback_up) {
    int s = static_cast<int>(::syscall(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, "lo", 3);
    ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    if (s < 0 || ::syscall(SYS_ioctl, s, SIOCSIFFLAGS, &ifr) != 0) {
      e = errno;
      f.step = -2;
    }
    if (s >= 0) ::close(s);
  }
  // Inherited by the agent and all it starts.
  for (const auto& r : *p.rlimits) {
    if (e) break;
    if (::syscall(SYS_prlimit64, 0, r.resource, &r.value, nullptr) != 0) {
      e = errno;
      f.step = -1;
    }
  }
  if (!e && ::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
    e = errno;
    f.step = 0;
  }
  // The filter holds from here for the init and everything it starts; its
  // listener fd goes to the supervisor (pidfd_getfd), which answers.
  if (!e) {
    int fd = install_filter(*p.filter);
    if (fd < 0) {
      e = -fd;
      f.step = -3;
    } else {
      f.notify_fd = fd;
    }
  }
  (void)!::write(p.ready_w, &f, sizeof(f));
  if (e) _exit(126);
  const int listener = f.notify_fd;
  ::close(p.ready_w);

  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGWINCH}) sigaddset(&set, s);
  sigprocmask(SIG_BLOCK, &set, nullptr);

  char byte;
  ssize_t n;
  do n = ::read(p.go_r, &byte, 1);
  while (n < 0 && errno == EINTR);
  if (n != 1) _exit(127);  // the supervisor gave up, or died
  ::close(p.go_r);
  // The supervisor holds the listener now; a copy here would let a root
  // agent answer its own refused calls through /proc/1/fd.
  ::close(listener);

  pid_t agent = spawn_agent(p);
  if (agent < 0) {
    int err = errno;
    (void)!::write(p.err_w, &err, sizeof(err));
    _exit(127);
  }
  ::close(p.err_w);  // the supervisor sees EOF once the agent has exec'd

  bool agent_done = false;
  for (;;) {
    siginfo_t si;
    if (sigwaitinfo(&set, &si) < 0) continue;
    if (si.si_signo != SIGCHLD) {
      // the terminal's signals reached the agent already; pass on the rest
      if (si.si_code != SI_KERNEL && !agent_done) ::kill(agent, si.si_signo);
      continue;
    }
    int status;
    pid_t reaped;
    while ((reaped = ::waitpid(-1, &status, WNOHANG)) > 0) {
      if (reaped == agent) {
        agent_done = true;
        (void)!::write(p.status_w, &status, sizeof(status));
      }
    }
    if (reaped < 0 && errno == ECHILD && agent_done) {
      // Nothing of the session runs any more: the supervisor may end it
      // without waiting for our exit, which unmounts the whole namespace.
      (void)!::write(p.status_w, &status, 1);
      _exit(0);
    }
  }
}

}  // namespace

SessionInit::SessionInit(const std::string& exe, const std::vector<std::string>& argv,
                         const std::vector<std::string>& env, const Credentials& creds,
                         const MountPlan& mounts, const std::vector<RlimitSetting>& rlimits,
                         NetMode net, std::array<int, 3> stdio, bool terminal, int cgroup_fd) {
  auto make_pipe = [](UniqueFd& r, UniqueFd& w) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw errno_error("failed to create a pipe");
    r.reset(fds[0]);
    w.reset(fds[1]);
  };
  UniqueFd ready_r, ready_w, go_r, go_w, err_r, err_w, status_r, status_w;
  make_pipe(ready_r, ready_w);
  make_pipe(go_r, go_w);
  make_pipe(err_r, err_w);
  make_pipe(status_r, status_w);

  std::vector<char*> cargv, cenv;
  for (auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (auto& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  MountPlanArgs mount_args(mounts);
  // The same for every session: compiled by libseccomp once per process.
  static const std::vector<sock_filter> session_filter = build_session_filter();
  const std::vector<sock_filter>& filter = session_filter;
  constexpr size_t kAgentStack = 64 * 1024;
  auto agent_stack = std::make_unique_for_overwrite<char[]>(kAgentStack);
  InitPlan plan{&filter, &mount_args, &rlimits, false, terminal, exe.c_str(), cargv.data(), cenv.data(), &creds,
                ready_w.get(), go_r.get(), err_w.get(), status_w.get(),
                agent_stack.get() + kAgentStack};

  // clone3 without a new stack behaves like fork; the child is pid 1 of the
  // new PID namespace, with mounts, System V IPC and host name of its own,
  // born in the session's cgroup: moving it there afterwards would take the
  // cgroup threadgroup lock, an RCU grace period (~10 ms here).
  clone_args args{};
  args.flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD;
  if (net == NetMode::kNone) args.flags |= CLONE_NEWNET;
  if (cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
  }
  int pidfd = -1;
  args.pidfd = reinterpret_cast<uintptr_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  plan.loopback_up = net == NetMode::kNone;
  pid_t pid = static_cast<pid_t>(::syscall(SYS_clone3, &args, sizeof(args)));
  if (pid < 0) throw errno_error("failed to create the session's namespaces");
  if (pid == 0) {
    // The agent's stdio, when a daemon's client passed its own.
    for (int i = 0; i < 3; i++)
      if (stdio[i] >= 0 && stdio[i] != i) ::dup2(stdio[i], i);
    // Only the plan's descriptors survive in the init: the supervisor's
    // maps, ring buffer and log must not.
    // Every descriptor, however high (a busy daemon has thousands).
    unsigned keep[] = {unsigned(plan.ready_w), unsigned(plan.go_r), unsigned(plan.err_w),
                       unsigned(plan.status_w)};
    std::sort(std::begin(keep), std::end(keep));
    unsigned from = 3;
    for (unsigned k : keep) {
      if (k > from) ::syscall(SYS_close_range, from, k - 1, 0u);
      from = k + 1;
    }
    ::syscall(SYS_close_range, from, ~0u, 0u);
    init_main(plan);
  }
  pid_ = pid;
  pidfd_.reset(pidfd);
  go_ = std::move(go_w);
  exec_err_ = std::move(err_r);
  status_ = std::move(status_r);
  ready_w.reset();
  MountFailure f;
  ssize_t n;
  do n = ::read(ready_r.get(), &f, sizeof(f));
  while (n < 0 && errno == EINTR);
  if (n != sizeof(f) || f.error) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    if (n != sizeof(f)) {
      errno = EPIPE;
      throw errno_error("the session init died while setting up its mounts");
    }
    errno = f.error;
    throw errno_error(f.step > 0    ? describe_mount_failure(mounts, f)
                      : f.step == -1 ? "failed to set the session's resource limits"
                      : f.step == -2 ? "failed to bring up loopback in the session's network namespace"
                      : f.step == -3 ? "failed to install the session's seccomp filter"
                                     : "failed to tie the session init to corral");
  }
  notify_.reset(static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd_.get(), f.notify_fd, 0)));
  if (!notify_) {
    int err = errno;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    errno = err;
    throw errno_error("failed to take the session's seccomp listener from its init");
  }
}

SessionInit::~SessionInit() {
  if (pid_ > 0 && !released_) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void SessionInit::reap() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  while (::waitpid(pid_, nullptr, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

void SessionInit::release() {
  released_ = true;
  char byte = 1;
  if (::write(go_.get(), &byte, 1) != 1) throw errno_error("failed to release the agent");
  go_.reset();
}

int SessionInit::exec_error() {
  int e = 0;
  ssize_t n;
  do n = ::read(exec_err_.get(), &e, sizeof(e));
  while (n < 0 && errno == EINTR);
  exec_err_.reset();
  return n == sizeof(e) ? e : 0;
}

int SessionInit::read_agent_status() {
  int status = 0;
  ssize_t n;
  do n = ::read(status_.get(), &status, sizeof(status));
  while (n < 0 && errno == EINTR);
  if (n != sizeof(status)) throw std::runtime_error("the session init died before the agent");
  return status;
}

void SessionInit::signal_agent(int signo) const { ::kill(pid_, signo); }

}  // namespace corral
