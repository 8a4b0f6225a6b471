#include "seccomp_filter.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "unique_fd.h"

namespace corral {
namespace {

constexpr uint64_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET |
                                     CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP |
                                     0x00000080 /* CLONE_NEWTIME */;

struct CtxDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

void check(int rc, const char* what) {
  if (rc < 0)
    throw std::runtime_error(std::string("failed to build the session's seccomp filter (") + what +
                             "): " + std::strerror(-rc));
}

}  // namespace

std::vector<sock_filter> build_session_filter() {
  std::unique_ptr<void, CtxDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) throw std::runtime_error("failed to create a seccomp filter context");
  void* c = ctx.get();
  // Each refusal is the supervisor's to record and answer (EPERM); with the
  // supervisor gone the kernel answers ENOSYS: still refused.
  const uint32_t eperm = SCMP_ACT_NOTIFY;

  // Namespaces, by flag: clone's flags are its first argument on x86_64.
  for (uint64_t bit = 1; bit; bit <<= 1) {
    if (!(kNamespaceFlags & bit)) continue;
    check(seccomp_rule_add(c, eperm, SCMP_SYS(unshare), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit)),
          "unshare");
    check(seccomp_rule_add(c, eperm, SCMP_SYS(clone), 1, SCMP_A0(SCMP_CMP_MASKED_EQ, bit, bit)),
          "clone");
  }
  // clone3 passes its flags in memory seccomp cannot read: ENOSYS makes
  // libc fall back to clone, which is checked above.
  check(seccomp_rule_add(c, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3");

  // What an agent never needs: the mount table, kernel code and BPF, the
  // kernel's keyrings, perf, io_uring (a second syscall path the guards do
  // not see), file handles (open_by_handle_at escapes a mount namespace),
  // userfaultfd (a race widener), swap, reboot, the kernel log.
  for (int nr : {SCMP_SYS(setns), SCMP_SYS(mount), SCMP_SYS(umount2), SCMP_SYS(pivot_root),
                 SCMP_SYS(open_tree), SCMP_SYS(move_mount), SCMP_SYS(fsopen), SCMP_SYS(fsconfig),
                 SCMP_SYS(fsmount), SCMP_SYS(fspick), SCMP_SYS(mount_setattr), SCMP_SYS(bpf),
                 SCMP_SYS(kexec_load), SCMP_SYS(kexec_file_load), SCMP_SYS(init_module),
                 SCMP_SYS(finit_module), SCMP_SYS(delete_module), SCMP_SYS(keyctl),
                 SCMP_SYS(add_key), SCMP_SYS(request_key), SCMP_SYS(perf_event_open),
                 SCMP_SYS(io_uring_setup), SCMP_SYS(io_uring_enter), SCMP_SYS(io_uring_register),
                 SCMP_SYS(open_by_handle_at), SCMP_SYS(name_to_handle_at), SCMP_SYS(userfaultfd),
                 SCMP_SYS(swapon), SCMP_SYS(swapoff), SCMP_SYS(reboot), SCMP_SYS(syslog),
                 SCMP_SYS(acct), SCMP_SYS(quotactl), SCMP_SYS(fanotify_init)})
    check(seccomp_rule_add(c, eperm, nr, 0), "deny list");
  // Raw and packet sockets: forged packets past the egress allowlist. The
  // domain is an int: only its low 32 bits count, as for the kernel.
  check(seccomp_rule_add(c, eperm, SCMP_SYS(socket), 1,
                         SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffu, AF_PACKET)),
        "packet sockets");
  check(seccomp_rule_add(c, eperm, SCMP_SYS(socket), 1, SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_RAW)),
        "raw sockets");
  // Typing into a terminal (TIOCSTI) or a virtual console (TIOCLINUX's
  // paste): an agent sharing the user's terminal (embedded mode) would type
  // commands for the user's shell to run after the session, outside it
  // (bubblewrap's CVE-2017-5226). ioctl's request is an unsigned int: the
  // upper half of the argument is ignored by the kernel, so by us too.
  for (uint64_t request : {uint64_t{TIOCSTI}, uint64_t{TIOCLINUX}})
    check(seccomp_rule_add(c, eperm, SCMP_SYS(ioctl), 1,
                           SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, request)),
          "terminal input");
  // personality: querying (exactly 0xffffffff; the kernel reads 32 bits) is
  // fine; any other value is set, and turning address randomisation off or
  // making data executable is not, whatever the other bits. libseccomp
  // takes one comparison per argument and rule: "flag set and some bit
  // clear" is one rule per bit (the query has every bit set).
  for (uint64_t flag : {uint64_t{0x0040000} /* ADDR_NO_RANDOMIZE */,
                        uint64_t{0x0400000} /* READ_IMPLIES_EXEC */})
    for (int bit = 0; bit < 32; bit++)
      if (!(flag & (uint64_t{1} << bit)))
        check(seccomp_rule_add(c, eperm, SCMP_SYS(personality), 1,
                               SCMP_A0(SCMP_CMP_MASKED_EQ, flag | (uint64_t{1} << bit), flag)),
              "personality");

  // Export as classic BPF through a memfd, so the child installs it with one
  // syscall and no allocation.
  UniqueFd mem(memfd_create("corral-seccomp", MFD_CLOEXEC));
  if (!mem) throw std::runtime_error(std::string("failed to create a memfd: ") + std::strerror(errno));
  check(seccomp_export_bpf(c, mem.get()), "export");
  off_t size = lseek(mem.get(), 0, SEEK_END);
  if (size <= 0 || size % sizeof(sock_filter))
    throw std::runtime_error("seccomp filter export has a bad size");
  std::vector<sock_filter> out(size / sizeof(sock_filter));
  if (pread(mem.get(), out.data(), size, 0) != size)
    throw std::runtime_error(std::string("failed to read the seccomp filter: ") + std::strerror(errno));
  return out;
}

int install_filter(const std::vector<sock_filter>& filter) {
  if (::syscall(SYS_prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
  sock_fprog prog{static_cast<unsigned short>(filter.size()),
                  const_cast<sock_filter*>(filter.data())};
  long fd = ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                      SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_TSYNC_ESRCH, &prog);
  return fd < 0 ? -errno : static_cast<int>(fd);
}

SeccompListener::SeccompListener(boost::asio::io_context& io, int listener_fd, Emit emit)
    : fd_(io, listener_fd), emit_(std::move(emit)) {
  seccomp_notif_sizes sizes{};
  if (::syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) != 0)
    throw std::runtime_error(std::string("failed to read seccomp notification sizes: ") +
                             std::strerror(errno));
  notif_.resize(std::max<size_t>(sizes.seccomp_notif, sizeof(seccomp_notif)));
  resp_.resize(std::max<size_t>(sizes.seccomp_notif_resp, sizeof(seccomp_notif_resp)));
  wait();
}

SeccompListener::~SeccompListener() {
  boost::system::error_code ec;
  fd_.close(ec);
}

void SeccompListener::wait() {
  fd_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                 [this](const boost::system::error_code& ec) {
                   if (ec) return;
                   answer();
                 });
}

void SeccompListener::answer() {
  std::fill(notif_.begin(), notif_.end(), 0);
  auto* n = reinterpret_cast<seccomp_notif*>(notif_.data());
  if (::ioctl(fd_.native_handle(), SECCOMP_IOCTL_NOTIF_RECV, n) != 0) {
    // ENOENT: the caller went away (killed) before we looked; EBADF/EIO
    // once the session's processes are all gone.
    if (errno == ENOENT || errno == EINTR) wait();
    return;
  }
  audit::Record rec;
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, n->data.nr);
  auto* x = rec.mutable_refused();
  x->set_syscall(name ? name : std::to_string(n->data.nr));
  free(name);
  x->set_nr(n->data.nr);
  x->set_arg0(n->data.args[0]);
  x->set_error("EPERM");
  auto* p = rec.mutable_process();
  p->set_tid(n->pid);
  auto* d = rec.mutable_decision();
  d->set_action("deny");
  d->set_mode("enforce");
  d->set_rule("seccomp");
  d->set_reason("the session's syscall filter refuses " + x->syscall());
  // Recorded while the caller still waits, so its process can be read.
  emit_(rec);

  std::fill(resp_.begin(), resp_.end(), 0);
  auto* r = reinterpret_cast<seccomp_notif_resp*>(resp_.data());
  r->id = n->id;
  r->error = -EPERM;
  if (::ioctl(fd_.native_handle(), SECCOMP_IOCTL_NOTIF_SEND, r) != 0 && errno != ENOENT)
    spdlog::warn("failed to answer a refused syscall of pid {}: {}", n->pid, std::strerror(errno));
  wait();
}

}  // namespace corral
