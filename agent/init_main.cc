// corral-init: pid 1 of a session's PID namespace, a small static program.
//
// The supervisor's child sets the session up (namespaces, mounts, limits,
// seccomp) while it still shares the supervisor's memory, like
// posix_spawn, and then becomes this program: no copy of a big process's
// page tables, and no copy-on-write fault in the supervisor for every page
// it writes while the session lives (process.cc). It may wait long: a
// daemon prepares the next session's init before anyone asks for it
// (supervisor.h); what the agent is — its command, environment and
// terminal — comes only with the release. Then it starts the agent, passes
// the signals the terminal did not deliver on to it, reaps the namespace's
// orphans and reports the agent's status.
//
//   corral-init GO ERR STATUS UID GID GROUPS
//
// GO      a SOCK_SEQPACKET socket: one message releases the agent (below);
//         EOF means the supervisor gave up
// ERR     write end: the errno of an agent that could not start or exec;
//         EOF (the agent's exec closes it) means it runs
// STATUS  write end: the agent's wait status, then one byte once no
//         process of the namespace is left
// GROUPS  the agent's supplementary groups, comma-separated, or "-"
// The release is one byte, '1' when the agent's stdin is its own pty (to
// be its controlling terminal), else '0'; with it, by SCM_RIGHTS, a memfd
// of NUL-terminated entries — the argument count, the binary, the
// arguments, then the environment — and optionally the agent's stdin,
// stdout and stderr. corral-init's own environment is empty (it runs as
// root: a static glibc would act on GLIBC_TUNABLES and the like), and its
// arguments are world-readable in /proc: no place for API keys.
// Everything else the supervisor's child left open (its seccomp listener,
// which the supervisor took) is closed before the agent starts.
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <initializer_list>

namespace {

struct Agent {
  const char* exe;
  char* const* argv;
  char* const* envp;
  uid_t uid;
  gid_t gid;
  const gid_t* groups;
  size_t ngroups;
  bool terminal;
  int err_w;
};

gid_t groups_buf[65536];  // NGROUPS_MAX
alignas(16) char agent_stack[64 * 1024];

bool parse_u32(const char* s, unsigned long& out, const char** end = nullptr) {
  if (*s < '0' || *s > '9') return false;
  char* e;
  errno = 0;
  out = std::strtoul(s, &e, 10);
  if (errno || out > 0xffffffffUL) return false;
  if (end) *end = e;
  return end || *e == '\0';
}

[[noreturn]] void usage() {
  static const char msg[] = "corral-init: error: started with bad arguments (only corral starts it)\n";
  (void)!::write(2, msg, sizeof(msg) - 1);
  _exit(127);
}

// The agent holds no capability, a root one (--allow-root) included: root's
// execve would grant it the whole set (CAP_SYS_PTRACE to read this init's
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

// Runs in this process's memory until its execve (the init waits:
// CLONE_VFORK), so raw system calls only.
int agent_main(void* arg) {
  const Agent& a = *static_cast<const Agent*>(arg);
  // Every disposition a default and the bounding set empty already: the
  // init's, before its release (main).
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  int e = 0;
  if (::syscall(SYS_setgroups, a.ngroups, a.groups) != 0 ||
      ::syscall(SYS_setresgid, a.gid, a.gid, a.gid) != 0)
    e = errno;
  if (!e && ::syscall(SYS_setresuid, a.uid, a.uid, a.uid) != 0) e = errno;
  if (!e) e = clear_capabilities();
  // After the uid change, which clears it: die with the init.
  if (!e && ::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) e = errno;
  // A session of its own, whose controlling terminal the pty is: job
  // control, /dev/tty and the terminal's signals are the agent's.
  if (!e && a.terminal && (::setsid() < 0 || ::ioctl(STDIN_FILENO, TIOCSCTTY, 0) != 0)) e = errno;
  if (!e && ::getppid() != 1) e = ESRCH;
  if (!e) {
    ::execve(a.exe, a.argv, a.envp);
    e = errno;
  }
  (void)!::write(a.err_w, &e, sizeof(e));
  _exit(127);
}

[[noreturn]] void bad_release(int err_w) {
  int e = EPROTO;
  (void)!::write(err_w, &e, sizeof(e));
  _exit(127);
}

// The agent's command and environment from the release's memfd `fd` (see
// the top), into `a`; the fd is closed. Exits on a malformed block.
void read_agent(int fd, Agent& a) {
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_size < 0) bad_release(a.err_w);
  const size_t size = static_cast<size_t>(st.st_size);
  char* block = static_cast<char*>(std::malloc(size + 1));
  if (!block) bad_release(a.err_w);
  for (size_t off = 0; off < size;) {
    ssize_t n = ::pread(fd, block + off, size - off, static_cast<off_t>(off));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) bad_release(a.err_w);
    off += static_cast<size_t>(n);
  }
  ::close(fd);
  block[size] = '\0';
  if (size == 0 || block[size - 1] != '\0') bad_release(a.err_w);
  size_t count = 0;
  for (size_t i = 0; i < size; i++) count += block[i] == '\0';
  // one spare slot: argv and envp each end in a null pointer
  char** entries = static_cast<char**>(std::malloc((count + 1) * sizeof(char*)));
  if (!entries) bad_release(a.err_w);
  size_t k = 0;
  for (size_t i = 0; i < size; i += std::strlen(block + i) + 1) entries[k++] = block + i;
  // the count, the binary, then that many arguments (one at least)
  unsigned long argc;
  if (count < 3 || !parse_u32(entries[0], argc) || argc == 0 || argc > count - 2)
    bad_release(a.err_w);
  a.exe = entries[1];
  // [count, exe, args..., env...] -> [args..., null, env..., null]
  for (size_t i = 0; i < argc; i++) entries[i] = entries[i + 2];
  entries[argc] = nullptr;
  for (size_t i = argc + 2; i < count; i++) entries[i - 1] = entries[i];
  entries[count - 1] = nullptr;
  a.argv = entries;
  a.envp = entries + argc + 1;
}

// Waits for the release on `go` and fills `a` from it, the agent's stdio
// put in place as 0, 1, 2. Exits if the supervisor gave up or sent
// something else.
void await_release(int go, Agent& a) {
  char byte;
  iovec iov{&byte, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(4 * sizeof(int))];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do n = ::recvmsg(go, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n != 1) _exit(127);  // the supervisor gave up, or died
  int fds[4];
  size_t nfds = 0;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
    nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    std::memcpy(fds, CMSG_DATA(c), nfds * sizeof(int));
  }
  if ((msg.msg_flags & MSG_CTRUNC) || (nfds != 1 && nfds != 4) || (byte != '0' && byte != '1'))
    bad_release(a.err_w);
  a.terminal = byte == '1';
  read_agent(fds[0], a);
  // Above 2 first: with our own 0-2 closed, one may have landed there.
  for (size_t i = 1; i < nfds; i++)
    if (fds[i] < 3 && (fds[i] = ::fcntl(fds[i], F_DUPFD_CLOEXEC, 3)) < 0) bad_release(a.err_w);
  for (int i = 0; i + 1 < static_cast<int>(nfds); i++)
    if (::dup2(fds[i + 1], i) != i) bad_release(a.err_w);
  // the copies above 2 go with the close_range before the agent starts
}

}  // namespace

int main(int argc, char** argv) {
  ::prctl(PR_SET_NAME, "corral-init");  // not the memfd's name
  // Set before the exec too; again here, for whatever an exec may clear it
  // (an LSM's label transition): the session dies with its supervisor. A
  // supervisor gone already is seen below, as EOF on GO.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(127);
  if (argc != 7) usage();
  unsigned long go, err, status, uid, gid;
  if (!parse_u32(argv[1], go) || !parse_u32(argv[2], err) || !parse_u32(argv[3], status) ||
      !parse_u32(argv[4], uid) || !parse_u32(argv[5], gid))
    usage();
  // -1 would leave the ids as they are: root's
  if (uid == 0xffffffffUL || gid == 0xffffffffUL) usage();
  size_t ngroups = 0;
  if (std::strcmp(argv[6], "-") != 0) {
    for (const char* s = argv[6];;) {
      unsigned long g;
      if (ngroups == sizeof(groups_buf) / sizeof(groups_buf[0]) || !parse_u32(s, g, &s)) usage();
      groups_buf[ngroups++] = static_cast<gid_t>(g);
      if (*s == '\0') break;
      if (*s++ != ',') usage();
    }
  }
  Agent agent{nullptr, nullptr, nullptr, static_cast<uid_t>(uid), static_cast<gid_t>(gid),
              groups_buf, ngroups, false, static_cast<int>(err)};

  // The signals to pass on, and SIGCHLD, are taken with sigwaitinfo; the
  // rest unblocked (the supervisor's child ran with all of them blocked).
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGWINCH}) sigaddset(&set, s);
  sigprocmask(SIG_SETMASK, &set, nullptr);

  // What the agent inherits and every agent needs, done while the init
  // waits (a daemon's prepared session) rather than after its release.
  // An ignored signal stays ignored across exec: a daemon started with
  // nohup or from a script's `&` would hand its agents SIGHUP or SIGINT
  // ignored (Ctrl-C doing nothing). The agent starts with every default.
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
  // The init keeps its own capabilities (it sets the agent's ids); the
  // bounding set only limits what an exec grants, and it execs nothing.
  if (int e = drop_bounding_set()) {
    (void)!::write(agent.err_w, &e, sizeof(e));
    _exit(127);
  }

  await_release(static_cast<int>(go), agent);
  // The supervisor holds the seccomp listener now; a copy here would let a
  // root agent answer its own refused calls through /proc/1/fd. Only stdio
  // and the two reports stay, and the reports close on the agent's exec.
  const unsigned lo = static_cast<unsigned>(err < status ? err : status);
  const unsigned hi = static_cast<unsigned>(err < status ? status : err);
  ::syscall(SYS_close_range, 3u, lo - 1, 0u);
  if (hi > lo + 1) ::syscall(SYS_close_range, lo + 1, hi - 1, 0u);
  ::syscall(SYS_close_range, hi + 1, ~0u, 0u);
  if (::fcntl(static_cast<int>(err), F_SETFD, FD_CLOEXEC) != 0 ||
      ::fcntl(static_cast<int>(status), F_SETFD, FD_CLOEXEC) != 0)
    _exit(127);

  // The agent shares this process's memory until its execve (like
  // posix_spawn), on a stack of its own.
  pid_t child = ::clone(agent_main, agent_stack + sizeof(agent_stack),
                        CLONE_VM | CLONE_VFORK | SIGCHLD, &agent);
  if (child < 0) {
    int e = errno;
    (void)!::write(agent.err_w, &e, sizeof(e));
    _exit(127);
  }
  ::close(agent.err_w);  // the supervisor sees EOF once the agent has exec'd

  bool agent_done = false;
  bool reported = false;
  int agent_status = 0;
  for (;;) {
    siginfo_t si;
    if (sigwaitinfo(&set, &si) < 0) continue;
    if (si.si_signo != SIGCHLD) {
      // the terminal's signals reached the agent already; pass on the rest
      if (si.si_code != SI_KERNEL && !agent_done) ::kill(child, si.si_signo);
      continue;
    }
    int wstatus = 0;
    pid_t reaped;
    while ((reaped = ::waitpid(-1, &wstatus, WNOHANG)) > 0) {
      if (reaped == child) {
        agent_done = true;
        agent_status = wstatus;
      }
    }
    const int fd = static_cast<int>(status);
    if (agent_done && reaped < 0 && errno == ECHILD) {
      // Nothing of the session runs any more: all that is left is our exit,
      // which unmounts the namespace (~0.4 ms), and the supervisor may end
      // the session without waiting for it. Idle-class from here: the
      // supervisor, woken by what we write, goes first. (Not before: the
      // reaping of what the agent left behind, and the kernel's killing of
      // it should the supervisor die, must not wait behind it.)
      sched_param param{};
      (void)::sched_setscheduler(0, SCHED_IDLE, &param);
      if (!reported) (void)!::write(fd, &agent_status, sizeof(agent_status));
      (void)!::write(fd, &agent_status, 1);
      _exit(0);
    }
    if (agent_done && !reported) {
      reported = true;
      (void)!::write(fd, &agent_status, sizeof(agent_status));
    }
  }
}
