#include "cgroup2.h"
#include "errno_error.h"
#include "mountinfo.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <thread>

namespace corral {
namespace fs = std::filesystem;
namespace {

bool rmdir_retry(const std::string& path) {
  // A killed member leaves the cgroup a moment after its exit is reported.
  for (int i = 0; i < 200; i++) {
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return true;
    if (errno != EBUSY) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  spdlog::warn("failed to remove cgroup {}: {}", path, std::strerror(errno));
  return false;
}

}  // namespace

std::string find_cgroup2_mount(std::string_view mountinfo) {
  for (const Mount& m : parse_mountinfo(mountinfo))
    if (m.fstype == "cgroup2") return m.mountpoint;
  return "";
}

std::string find_cgroup2_mount() {
  std::ifstream in("/proc/self/mountinfo");
  std::stringstream ss;
  ss << in.rdbuf();
  return find_cgroup2_mount(ss.str());
}

Cgroup::Cgroup(const std::string& root, const std::string& name) {
  std::string parent = root + "/corral";
  if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST)
    throw errno_error("failed to create cgroup " + parent);
  path_ = parent + "/" + name;
  if (::mkdir(path_.c_str(), 0755) != 0) throw errno_error("failed to create cgroup " + path_);
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) throw errno_error("failed to stat cgroup " + path_);
  id_ = st.st_ino;  // kernfs inode number == cgroup id on 64-bit
}

Cgroup::~Cgroup() {
  try {
    if (populated()) kill();
  } catch (const std::exception& e) {
    spdlog::warn("{}", e.what());
  }
  rmdir_retry(path_);
}

UniqueFd Cgroup::open() const {
  UniqueFd dir(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) throw errno_error("failed to open cgroup " + path_);
  return dir;
}

void Cgroup::add_pid(pid_t pid) const {
  write_cgroup_file(path_ + "/cgroup.procs", std::to_string(pid));
}

std::vector<pid_t> Cgroup::pids() const {
  std::vector<pid_t> out;
  std::ifstream in(path_ + "/cgroup.procs");
  pid_t pid;
  while (in >> pid) out.push_back(pid);
  return out;
}

bool Cgroup::populated() const {
  std::ifstream in(path_ + "/cgroup.events");
  if (!in) throw errno_error("failed to read " + path_ + "/cgroup.events");
  std::string key;
  int value;
  while (in >> key >> value)
    if (key == "populated") return value != 0;
  return false;
}

void Cgroup::kill() const {
  if (::access((path_ + "/cgroup.kill").c_str(), W_OK) == 0) {
    write_cgroup_file(path_ + "/cgroup.kill", "1");
    return;
  }
  // Before 5.14: repeat, since members may fork while we kill.
  for (int round = 0; round < 100; round++) {
    auto members = pids();
    if (members.empty()) return;
    for (pid_t p : members) ::kill(p, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

void write_cgroup_file(const std::string& path, const std::string& value) {
  FILE* f = std::fopen(path.c_str(), "we");
  if (!f) throw errno_error("failed to open " + path);
  bool ok = std::fputs(value.c_str(), f) >= 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) throw errno_error("failed to write '" + value + "' to " + path);
}

pid_t dead_owner(const std::string& cgroup_name) {
  pid_t owner = std::atoi(cgroup_name.c_str());
  if (owner <= 0 || ::kill(owner, 0) == 0 || errno != ESRCH) return 0;
  return owner;
}

void Cgroup::sweep_stale(const std::string& root) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root + "/corral", ec)) {
    if (!entry.is_directory()) continue;
    pid_t owner = dead_owner(entry.path().filename());
    if (!owner) continue;
    std::string path = entry.path();
    std::ifstream procs(path + "/cgroup.procs");
    int count = 0;
    for (pid_t p; procs >> p;) count++;
    if (count) {
      spdlog::warn("cgroup {} outlived its supervisor (pid {}) with {} process(es): killing them",
                   path, owner, count);
      try {
        write_cgroup_file(path + "/cgroup.kill", "1");
      } catch (const std::exception& e) {
        spdlog::warn("{}", e.what());
      }
    }
    rmdir_retry(path);
  }
}

}  // namespace corral
