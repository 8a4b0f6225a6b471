// Reading procfs: small files whole, and one thread's identity from
// /proc/<tid>/status for records the kernel did not fill (a fanotify or
// seccomp decision names only the thread). procfs is never marked: a read
// cannot wait on the supervisor's own guard.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace corral {

// The whole of a small (procfs) file, `rel` to `dirfd`; throws
// std::system_error naming `shown`.
std::string read_small_file(int dirfd, const std::string& rel, const std::string& shown);

struct ProcStatus {
  std::string comm;
  pid_t tgid = 0;
  pid_t ppid = 0;
  uid_t uid = 0;  // real
  gid_t gid = 0;  // real
};

// nullopt when the thread is gone (or its status unreadable).
std::optional<ProcStatus> read_proc_status(pid_t tid);

// The fields of one status text (public for tests).
ProcStatus parse_proc_status(const std::string& text);

}  // namespace corral
