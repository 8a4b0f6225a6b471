// Session resource limits through the cgroup pids and memory controllers:
// in the session's own cgroup v2 directory when the v2 tree offers them,
// else in cgroup v1 hierarchies beside it (hybrid hosts bind them to v1).
// Also the rlimits the session's init sets before it execs the agent.
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "limit_spec.h"

namespace corral {

// The mount point of the cgroup v1 hierarchy that holds `controller`, from a
// mountinfo text; "" when none does.
std::string find_cgroup1_mount(std::string_view mountinfo, std::string_view controller);

struct RlimitSetting {
  int resource;
  rlimit value;
};

// What the session's init applies before exec: no core dumps (a core of the
// agent holds the secrets it read, written where the kernel's core pattern
// says, beyond the session's guard), and the open-file limit asked for, never
// above `nofile_hard` (the inherited hard limit). Throws like validate_limits.
std::vector<RlimitSetting> session_rlimits(const LimitSpec& spec, rlim_t nofile_hard);
// The same, with the calling process's hard RLIMIT_NOFILE.
std::vector<RlimitSetting> session_rlimits(const LimitSpec& spec);

class SessionLimits {
 public:
  // Puts each limit of `spec` in force for the session whose cgroup v2
  // directory is `<v2_root>/corral/<name>` (made by Cgroup, which must exist):
  // there, when the v2 root offers the controller (it is enabled in the
  // subtree_control of the root and of corral/), else in
  // `<v1 mount>/corral/<name>`. Memory beyond the limit cannot go to swap
  // either (memory.swap.max 0 or memory.memsw.limit_in_bytes, where the kernel
  // accounts swap), and in v1 the OOM killer is switched on for the group.
  // Throws std::invalid_argument for a limit below its minimum,
  // std::runtime_error when no hierarchy offers a controller, and
  // std::system_error naming the file when the kernel refuses a value: a
  // session that asked for a limit never runs without it. Leaves nothing
  // behind when it throws.
  SessionLimits(const std::string& v2_root, const std::string& name, const LimitSpec& spec);
  // Kills what is left in its v1 groups, then removes them.
  ~SessionLimits();
  SessionLimits(const SessionLimits&) = delete;
  SessionLimits& operator=(const SessionLimits&) = delete;

  // Puts `pid` in the v1 groups; its v2 membership is the session's (Cgroup).
  // Before the process forks: children inherit their parent's groups.
  void add_pid(pid_t pid) const;

  // The directories holding each limit ("" for one not asked for): the v2
  // session directory or a v1 group.
  const std::string& pids_group() const { return pids_.dir; }
  const std::string& memory_group() const { return memory_.dir; }

  // Counters since the groups were made. For polling: v1 pids.events sends no
  // file notification (seen on 6.18) and v1 reports OOMs only to an eventfd,
  // so one timer serves every host, as it does for cgroup.events.
  struct Usage {
    uint64_t pids_current = 0;
    uint64_t pids_peak = 0;          // 0 on kernels without pids.peak
    uint64_t pids_max_hits = 0;      // forks refused at the limit
    uint64_t memory_peak_bytes = 0;  // page cache included; 0 without memory.peak
    uint64_t oom_kills = 0;          // processes the OOM killer took
  };
  // Throws naming the file it cannot read or parse.
  Usage read() const;

  // Removes `<v1 mount>/corral/<pid>-*` groups of the pids and memory
  // hierarchies whose supervisor pid is gone, killing what they still hold.
  static void sweep_stale();

 private:
  struct Group {
    std::string dir;
    bool v1 = false;
  };
  // The v1 groups made so far, removed at destruction, also when the
  // constructor throws halfway.
  struct OwnedGroups {
    std::vector<std::string> dirs;
    OwnedGroups() = default;
    OwnedGroups(const OwnedGroups&) = delete;
    OwnedGroups& operator=(const OwnedGroups&) = delete;
    ~OwnedGroups();
  };

  Group place(const std::string& controller, const std::string& v2_root, const std::string& name,
              std::string_view v2_controllers, std::string_view mountinfo);

  OwnedGroups owned_;
  Group pids_;
  Group memory_;
};

}  // namespace corral
