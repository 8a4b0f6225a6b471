#include "cgroup_limits.h"

#include <fmt/format.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

#include "cgroup2.h"
#include "errno_error.h"
#include "mountinfo.h"

namespace corral {
namespace fs = std::filesystem;
namespace {

// The whole file; nullopt when it does not exist (a kernel without it).
std::optional<std::string> read_optional(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "re");
  if (!f) {
    if (errno == ENOENT) return std::nullopt;
    throw errno_error("failed to open " + path);
  }
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out.append(buf, n);
  bool failed = std::ferror(f);
  std::fclose(f);
  if (failed) throw errno_error("failed to read " + path);
  return out;
}

std::string read_text(const std::string& path) {
  auto text = read_optional(path);
  if (!text) {
    errno = ENOENT;
    throw errno_error("failed to open " + path);
  }
  return *text;
}

uint64_t parse_u64(const std::string& text, const std::string& path) {
  try {
    return std::stoull(text);
  } catch (const std::exception&) {
    throw std::runtime_error(fmt::format("unexpected content in {}: '{}'", path, text));
  }
}

// A number file; 0 when the kernel does not have it.
uint64_t read_u64(const std::string& path) {
  auto text = read_optional(path);
  return text ? parse_u64(*text, path) : 0;
}

// The value of `key` in a "key value" per line file (pids.events,
// memory.events, memory.oom_control); 0 when absent.
uint64_t read_key(const std::string& path, std::string_view key) {
  std::istringstream in(read_text(path));
  std::string k;
  uint64_t v;
  while (in >> k >> v)
    if (k == key) return v;
  return 0;
}

bool has_token(std::string_view list, std::string_view token, char sep) {
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t end = list.find(sep, pos);
    if (end == std::string_view::npos) end = list.size();
    if (list.substr(pos, end - pos) == token) return true;
    pos = end + 1;
  }
  return false;
}

std::vector<pid_t> members(const std::string& dir) {
  std::vector<pid_t> out;
  std::ifstream in(dir + "/cgroup.procs");
  for (pid_t p; in >> p;) out.push_back(p);
  return out;
}

// v1 has no cgroup.kill: repeat, since members may fork while we kill.
void kill_members(const std::string& dir) {
  for (int round = 0; round < 100; round++) {
    auto pids = members(dir);
    if (pids.empty()) return;
    for (pid_t p : pids) ::kill(p, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  spdlog::warn("cgroup {} still has members after 100 rounds of SIGKILL", dir);
}

void remove_group(const std::string& dir) {
  kill_members(dir);
  // A killed member leaves the group a moment after its exit is reported.
  for (int i = 0; i < 200; i++) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return;
    if (errno != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  spdlog::warn("failed to remove cgroup {}: {}", dir, std::strerror(errno));
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string find_cgroup1_mount(std::string_view mountinfo, std::string_view controller) {
  // ... - cgroup cgroup rw,cpu,cpuacct: the controllers are super options.
  size_t pos = 0;
  while (pos < mountinfo.size()) {
    size_t eol = mountinfo.find('\n', pos);
    if (eol == std::string_view::npos) eol = mountinfo.size();
    std::string_view line = mountinfo.substr(pos, eol - pos);
    pos = eol + 1;
    size_t sep = line.find(" - ");
    if (sep == std::string_view::npos) continue;
    std::istringstream tail{std::string(line.substr(sep + 3))};
    std::string fstype, source, options;
    if (!(tail >> fstype >> source >> options) || fstype != "cgroup") continue;
    if (!has_token(options, controller, ',')) continue;
    auto mounts = parse_mountinfo(line);  // decodes the mount point's escapes
    if (!mounts.empty()) return mounts.front().mountpoint;
  }
  return "";
}

std::vector<RlimitSetting> session_rlimits(const LimitSpec& spec, rlim_t nofile_hard) {
  validate_limits(spec);
  std::vector<RlimitSetting> out{{RLIMIT_CORE, {0, 0}}};
  if (spec.max_open_files) {
    rlim_t n = std::min<rlim_t>(*spec.max_open_files, nofile_hard);
    out.push_back({RLIMIT_NOFILE, {n, n}});
  }
  return out;
}

std::vector<RlimitSetting> session_rlimits(const LimitSpec& spec) {
  rlimit nofile;
  if (::getrlimit(RLIMIT_NOFILE, &nofile) != 0) throw errno_error("failed to get RLIMIT_NOFILE");
  return session_rlimits(spec, nofile.rlim_max);
}

SessionLimits::OwnedGroups::~OwnedGroups() {
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) remove_group(*it);
}

SessionLimits::SessionLimits(const std::string& v2_root, const std::string& name,
                             const LimitSpec& spec) {
  validate_limits(spec);
  if (!spec.max_pids && !spec.max_memory_bytes) return;
  std::string v2_controllers = trim(read_text(v2_root + "/cgroup.controllers"));
  std::string mountinfo = read_text("/proc/self/mountinfo");

  if (spec.max_pids) {
    pids_ = place("pids", v2_root, name, v2_controllers, mountinfo);
    write_cgroup_file(pids_.dir + "/pids.max", std::to_string(*spec.max_pids));
  }
  if (spec.max_memory_bytes) {
    memory_ = place("memory", v2_root, name, v2_controllers, mountinfo);
    const std::string& dir = memory_.dir;
    std::string limit = std::to_string(*spec.max_memory_bytes);
    if (memory_.v1) {
      // Inherited from the parent: with it disabled, an OOM would freeze the
      // session instead of killing in it.
      write_cgroup_file(dir + "/memory.oom_control", "0");
      write_cgroup_file(dir + "/memory.limit_in_bytes", limit);
      // Memory plus swap, no higher than memory alone (set after it: the
      // kernel keeps memsw >= memory). Absent without swap accounting.
      if (::access((dir + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0)
        write_cgroup_file(dir + "/memory.memsw.limit_in_bytes", limit);
    } else {
      write_cgroup_file(dir + "/memory.max", limit);
      if (::access((dir + "/memory.swap.max").c_str(), F_OK) == 0)
        write_cgroup_file(dir + "/memory.swap.max", "0");
    }
  }
}

SessionLimits::~SessionLimits() = default;  // owned_ removes the v1 groups

SessionLimits::Group SessionLimits::place(const std::string& controller, const std::string& v2_root,
                                          const std::string& name, std::string_view v2_controllers,
                                          std::string_view mountinfo) {
  if (has_token(v2_controllers, controller, ' ')) {
    // Each level hands the controller to its children: the root to corral/,
    // corral/ to the session. corral/ holds no process, so this is allowed.
    for (const std::string& dir : {v2_root, v2_root + "/corral"})
      write_cgroup_file(dir + "/cgroup.subtree_control", "+" + controller);
    return {v2_root + "/corral/" + name, false};
  }
  std::string mount = find_cgroup1_mount(mountinfo, controller);
  if (mount.empty())
    throw std::runtime_error(fmt::format(
        "cannot limit {0}: the cgroup2 tree at {1} does not offer the {0} controller (it has: "
        "'{2}') and no cgroup v1 hierarchy holds it",
        controller, v2_root, v2_controllers));
  std::string parent = mount + "/corral";
  std::string dir = parent + "/" + name;
  // pids and memory may share one v1 hierarchy (mounted together).
  if (std::find(owned_.dirs.begin(), owned_.dirs.end(), dir) != owned_.dirs.end())
    return {dir, true};
  if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST)
    throw errno_error("failed to create cgroup " + parent);
  if (::mkdir(dir.c_str(), 0755) != 0) throw errno_error("failed to create cgroup " + dir);
  owned_.dirs.push_back(dir);
  return {dir, true};
}

void SessionLimits::add_pid(pid_t pid) const {
  for (const Group* g : {&pids_, &memory_})
    if (g->v1) write_cgroup_file(g->dir + "/cgroup.procs", std::to_string(pid));
}

SessionLimits::Usage SessionLimits::read() const {
  Usage u;
  if (!pids_.dir.empty()) {
    u.pids_current = parse_u64(read_text(pids_.dir + "/pids.current"), pids_.dir + "/pids.current");
    u.pids_peak = read_u64(pids_.dir + "/pids.peak");
    u.pids_max_hits = read_key(pids_.dir + "/pids.events", "max");
  }
  if (!memory_.dir.empty()) {
    const std::string& dir = memory_.dir;
    if (memory_.v1) {
      u.memory_peak_bytes = read_u64(dir + "/memory.max_usage_in_bytes");
      u.oom_kills = read_key(dir + "/memory.oom_control", "oom_kill");
    } else {
      u.memory_peak_bytes = read_u64(dir + "/memory.peak");
      u.oom_kills = read_key(dir + "/memory.events", "oom_kill");
    }
  }
  return u;
}

void SessionLimits::sweep_stale() {
  std::string mountinfo;
  try {
    mountinfo = read_text("/proc/self/mountinfo");
  } catch (const std::exception& e) {
    spdlog::warn("{}", e.what());
    return;
  }
  for (const char* controller : {"pids", "memory"}) {
    std::string mount = find_cgroup1_mount(mountinfo, controller);
    if (mount.empty()) continue;
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(mount + "/corral", ec)) {
      if (!entry.is_directory()) continue;
      pid_t owner = dead_owner(entry.path().filename());
      if (!owner) continue;
      std::string dir = entry.path();
      if (size_t n = members(dir).size())
        spdlog::warn("cgroup {} outlived its supervisor (pid {}) with {} process(es): killing them",
                     dir, owner, n);
      remove_group(dir);
    }
  }
}

}  // namespace corral
