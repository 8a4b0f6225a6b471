// Sessions as cgroup v2 directories: identity for the kernel programs
// (the directory's id), a kill switch (cgroup.kill), and later the anchor of
// sock_addr programs. Found wherever cgroup2 is mounted (hybrid hosts too).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "unique_fd.h"

namespace corral {

// The first cgroup2 mount point listed in a mountinfo text; "" when none.
std::string find_cgroup2_mount(std::string_view mountinfo);
// The same, from /proc/self/mountinfo.
std::string find_cgroup2_mount();

// Writes one value to a cgroup control file (the kernel takes it whole or
// refuses it). Throws std::system_error naming the file and the value.
void write_cgroup_file(const std::string& path, const std::string& value);

// The supervisor pid of a session cgroup named "<pid>-<session>" when that
// process is gone (its cgroups are stale); 0 otherwise.
pid_t dead_owner(const std::string& cgroup_name);

class Cgroup {
 public:
  // Creates `<root>/corral/<name>`. Throws std::system_error naming the path.
  Cgroup(const std::string& root, const std::string& name);
  // Kills what is left inside and removes the directory.
  ~Cgroup();
  Cgroup(const Cgroup&) = delete;
  Cgroup& operator=(const Cgroup&) = delete;

  const std::string& path() const { return path_; }
  // The id bpf_get_current_cgroup_id() returns for members.
  uint64_t id() const { return id_; }

  // The directory, for attaching programs to it and CLONE_INTO_CGROUP.
  // Throws std::system_error naming the path.
  UniqueFd open() const;

  void add_pid(pid_t pid) const;
  std::vector<pid_t> pids() const;
  bool populated() const;
  // SIGKILLs every member (cgroup.kill, or one by one on older kernels).
  void kill() const;

  // Removes `<root>/corral/<pid>-*` directories whose supervisor pid is gone,
  // killing any processes they still hold: those run unguarded.
  static void sweep_stale(const std::string& root);

 private:
  std::string path_;
  uint64_t id_ = 0;
};

}  // namespace corral
