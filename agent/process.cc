#include "process.h"

#include <fcntl.h>
#include <linux/sched.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "control_client.h"
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

// Everything the init's setup needs: prepared before clone, so that the
// child only makes raw system calls.
struct InitPlan {
  const std::vector<sock_filter>* filter;
  const MountPlanArgs* mounts;
  const std::vector<RlimitSetting>* rlimits;
  bool loopback_up;  // a new network namespace: its lo starts down
  int go, err_w, status_w;
  int init_exe;             // corral-init, a sealed memfd
  char* const* init_argv;   // corral-init's arguments (init_main.cc)
  char* const* envp;        // corral-init's: empty
  // Written by the child before its exec, read by the supervisor after it.
  MountFailure result;
};

int clear_cloexec(int fd) { return ::syscall(SYS_fcntl, fd, F_SETFD, 0) == 0 ? 0 : errno; }

// The child of clone3(CLONE_VM | CLONE_VFORK): it runs in the supervisor's
// memory, on a stack of its own, while the thread that cloned it waits for
// its exec or exit. Other supervisor threads run on (DNS lookups, the
// guard), so glibc's view of this process is wrong here: raw system calls
// only, no allocation, no lock, no write to memory but its stack and
// `p.result`.
[[noreturn]] void init_setup(InitPlan& p) {
  // Only the plan's descriptors survive in the init: the supervisor's
  // maps, ring buffer and log must not. Every descriptor, however high (a
  // busy daemon has thousands).
  unsigned keep[] = {unsigned(p.go), unsigned(p.err_w), unsigned(p.status_w),
                     unsigned(p.init_exe)};
  std::sort(std::begin(keep), std::end(keep));
  unsigned from = 3;
  for (unsigned k : keep) {
    if (k > from) ::syscall(SYS_close_range, from, k - 1, 0u);
    from = std::max(from, k + 1);
  }
  ::syscall(SYS_close_range, from, ~0u, 0u);

  ::syscall(SYS_prctl, PR_SET_NAME, "corral-init", 0, 0, 0);
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
    if (s >= 0) ::syscall(SYS_close, s);
  }
  // Inherited by the agent and all it starts.
  for (const auto& r : *p.rlimits) {
    if (e) break;
    if (::syscall(SYS_prlimit64, 0, r.resource, &r.value, nullptr) != 0) {
      e = errno;
      f.step = -1;
    }
  }
  // Kept across the exec below (corral-init is no set-id program).
  if (!e && ::syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
    e = errno;
    f.step = 0;
  }
  // The filter holds from here for the init and everything it starts; its
  // listener goes to the supervisor (pidfd_getfd from corral-init), which
  // answers. corral-init's pipes, its release socket and the listener
  // outlive the exec.
  if (!e) {
    int fd = install_filter(*p.filter);
    if (fd < 0) {
      e = -fd;
      f.step = -3;
    } else {
      f.notify_fd = fd;
      for (int keep_fd : {p.go, p.err_w, p.status_w, fd})
        if (!e && (e = clear_cloexec(keep_fd))) f.step = -4;
    }
  }
  p.result = f;
  if (!e) {
    ::syscall(SYS_execveat, p.init_exe, "", p.init_argv, p.envp, AT_EMPTY_PATH);
    p.result.error = errno;
    p.result.step = -4;
  }
  ::syscall(SYS_exit, 126);
  __builtin_unreachable();
}

int init_entry(void* plan) { init_setup(*static_cast<InitPlan*>(plan)); }

// clone3 onto the stack in `args`, running fn(arg) in the child: glibc
// exports no clone3, and its clone() cannot start a child in a cgroup.
// The child returns to no frame of ours: it calls fn, which must not
// return, on its new stack with registers only.
long clone3_run(clone_args* args, int (*fn)(void*), void* arg) {
#if defined(__x86_64__)
  long ret;
  register long fn_reg asm("r12") = reinterpret_cast<long>(fn);
  register long arg_reg asm("r13") = reinterpret_cast<long>(arg);
  asm volatile(
      "syscall\n\t"
      "test %%rax, %%rax\n\t"
      "jnz 1f\n\t"
      "xor %%ebp, %%ebp\n\t"
      "mov %%r13, %%rdi\n\t"
      "call *%%r12\n\t"
      "ud2\n"
      "1:"
      : "=a"(ret)
      : "a"(SYS_clone3), "D"(args), "S"(sizeof(*args)), "r"(fn_reg), "r"(arg_reg)
      : "rcx", "r11", "memory", "cc");
  return ret;
#else
#error "clone3_run: only x86_64 is written"
#endif
}

// corral-init's image in a sealed memfd, made once per process: exec'd by
// descriptor, it is the binary this corral was built with, wherever corral
// is installed, and nothing can rewrite it in place.
extern "C" const unsigned char corral_init_image[];
extern "C" const unsigned char corral_init_image_end[];

// A memfd with `flags`, and `wanted` too where the kernel knows it (6.3+
// for the exec flags; EINVAL before).
UniqueFd create_memfd(const char* name, unsigned flags, unsigned wanted) {
  UniqueFd m(static_cast<int>(::syscall(SYS_memfd_create, name, flags | wanted)));
  if (!m && errno == EINVAL) m.reset(static_cast<int>(::syscall(SYS_memfd_create, name, flags)));
  return m;
}

void write_whole(int fd, const void* data, size_t size, const char* what) {
  const char* p = static_cast<const char*>(data);
  for (size_t off = 0; off < size;) {
    ssize_t n = ::write(fd, p + off, size - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw errno_error(std::string("failed to write ") + what);
    off += static_cast<size_t>(n);
  }
}

int init_executable() {
  static const int fd = [] {
    // Executable said out loud (MFD_EXEC): where vm.memfd_noexec is 1 a
    // memfd is sealed non-executable unless asked.
    UniqueFd m = create_memfd("corral-init", MFD_CLOEXEC | MFD_ALLOW_SEALING, 0x10);
    if (!m && errno == EACCES)
      throw errno_error("failed to create an executable memfd for corral-init "
                        "(vm.memfd_noexec=2 refuses them)");
    if (!m) throw errno_error("failed to create a memfd for corral-init");
    write_whole(m.get(), corral_init_image,
                static_cast<size_t>(corral_init_image_end - corral_init_image),
                "corral-init to its memfd");
    if (::fcntl(m.get(), F_ADD_SEALS, F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE) != 0)
      throw errno_error("failed to seal corral-init's memfd");
    return m.release();
  }();
  return fd;
}

// The same for every session: compiled by libseccomp once per process.
const std::vector<sock_filter>& session_filter() {
  static const std::vector<sock_filter> filter = build_session_filter();
  return filter;
}

}  // namespace

void prepare_session_init() {
  session_filter();
  init_executable();
}

SessionInit::SessionInit(const Credentials& creds, const MountPlan& mounts,
                         const std::vector<RlimitSetting>& rlimits, NetMode net, int cgroup_fd) {
  auto make_pipe = [](UniqueFd& r, UniqueFd& w) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw errno_error("failed to create a pipe");
    r.reset(fds[0]);
    w.reset(fds[1]);
  };
  UniqueFd go_ours, go_init, err_r, err_w, status_r, status_w;
  int go[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, go) != 0)
    throw errno_error("failed to create the session init's release socket");
  go_ours.reset(go[0]);
  go_init.reset(go[1]);
  make_pipe(err_r, err_w);
  make_pipe(status_r, status_w);

  // corral-init's command line (init_main.cc): its descriptors keep their
  // numbers across the clone and the exec. The agent itself comes with the
  // release.
  std::vector<std::string> init_args{"corral-init",
                                     std::to_string(go_init.get()),
                                     std::to_string(err_w.get()),
                                     std::to_string(status_w.get()),
                                     std::to_string(creds.uid),
                                     std::to_string(creds.gid),
                                     creds.groups.empty() ? "-" : ""};
  for (gid_t g : creds.groups)
    init_args[6] += (init_args[6].empty() ? "" : ",") + std::to_string(g);
  std::vector<char*> cargv;
  for (auto& a : init_args) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  static char* const no_env[] = {nullptr};
  MountPlanArgs mount_args(mounts);
  constexpr size_t kInitStack = 256 * 1024;
  auto init_stack = std::make_unique_for_overwrite<char[]>(kInitStack);
  InitPlan plan{&session_filter(), &mount_args, &rlimits, net == NetMode::kNone,
                go_init.get(), err_w.get(), status_w.get(), init_executable(),
                cargv.data(), no_env,
                // what the supervisor finds if the child dies before a word
                MountFailure{ECHILD, -5, -1, -1}};

  // The child is pid 1 of a new PID namespace, with mounts, System V IPC
  // and host name of its own, born in the session's cgroup: moving it there
  // afterwards would take the cgroup threadgroup lock, an RCU grace period
  // (~10 ms here). It shares this process's memory until it becomes
  // corral-init (CLONE_VM | CLONE_VFORK, like posix_spawn): a fork of a
  // supervisor this size would copy its page tables, and every page the
  // supervisor then wrote while the session lived would fault and be
  // copied (~130 faults a session).
  clone_args args{};
  args.flags = CLONE_VM | CLONE_VFORK | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC |
               CLONE_NEWUTS | CLONE_PIDFD;
  if (net == NetMode::kNone) args.flags |= CLONE_NEWNET;
  if (cgroup_fd >= 0) {
    args.flags |= CLONE_INTO_CGROUP;
    args.cgroup = static_cast<uint64_t>(cgroup_fd);
  }
  int pidfd = -1;
  args.pidfd = reinterpret_cast<uintptr_t>(&pidfd);
  args.exit_signal = SIGCHLD;
  // 16-byte aligned, as the ABI wants it at a call
  args.stack = reinterpret_cast<uintptr_t>(init_stack.get());
  args.stack_size = kInitStack;
  // No supervisor signal handler may run in the child, on our memory.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  long pid = clone3_run(&args, init_entry, &plan);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    errno = static_cast<int>(-pid);
    throw errno_error("failed to create the session's namespaces");
  }
  pid_ = static_cast<pid_t>(pid);
  pidfd_.reset(pidfd);
  go_ = std::move(go_ours);
  exec_err_ = std::move(err_r);
  status_ = std::move(status_r);
  // The child has exec'd corral-init or exited by now (CLONE_VFORK).
  const MountFailure& f = plan.result;
  if (f.error) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    errno = f.error;
    throw errno_error(f.step > 0    ? describe_mount_failure(mounts, f)
                      : f.step == -1 ? "failed to set the session's resource limits"
                      : f.step == -2 ? "failed to bring up loopback in the session's network namespace"
                      : f.step == -3 ? "failed to install the session's seccomp filter"
                      : f.step == -4 ? "failed to start corral-init in the session"
                      : f.step == -5 ? "the session init died while setting up its mounts"
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

void SessionInit::release(const std::string& exe, const std::vector<std::string>& argv,
                          const std::vector<std::string>& env, std::array<int, 3> stdio,
                          bool terminal) {
  // Data, never code (MFD_NOEXEC_SEAL): what init_main.cc reads.
  UniqueFd block_fd = create_memfd("corral-agent", MFD_CLOEXEC, 0x8);
  if (!block_fd) throw errno_error("failed to create a memfd for the agent's command");
  std::string block = std::to_string(argv.size());
  block.push_back('\0');
  block.append(exe).push_back('\0');
  for (const auto& a : argv) block.append(a).push_back('\0');
  for (const auto& e : env) block.append(e).push_back('\0');
  write_whole(block_fd.get(), block.data(), block.size(), "the agent's command to its memfd");

  std::vector<int> fds{block_fd.get()};
  if (stdio[0] >= 0 && stdio[1] >= 0 && stdio[2] >= 0) fds.insert(fds.end(), stdio.begin(), stdio.end());
  const ssize_t n = send_with_fds(go_.get(), terminal ? "1" : "0", fds);
  if (n != 1) {
    if (n >= 0) errno = EIO;
    const int send_error = errno;
    // The init gone (its pidfd readable once it has exited, just after its
    // end of the socket closed): what it reported on its way out says more.
    pollfd exited{pidfd_.get(), POLLIN, 0};
    if (::poll(&exited, 1, 1000) == 1) {
      if (int e = exec_error()) {
        errno = e;
        throw errno_error("the session init failed before the agent's release");
      }
    }
    errno = send_error;
    throw errno_error("failed to release the agent");
  }
  released_ = true;
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

bool SessionInit::running() const {
  pollfd p{pidfd_.get(), POLLIN, 0};
  return pid_ > 0 && ::poll(&p, 1, 0) == 0;  // a pidfd is readable once its process exited
}

void SessionInit::signal_agent(int signo) const { ::kill(pid_, signo); }

}  // namespace corral
