#include "user.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>

namespace corral {
namespace {

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
  return c;
}

std::vector<gid_t> supplementary_groups(const std::string& name, gid_t gid) {
  int n = 64;
  std::vector<gid_t> groups(n);
  if (getgrouplist(name.c_str(), gid, groups.data(), &n) < 0) {
    groups.resize(n);
    getgrouplist(name.c_str(), gid, groups.data(), &n);
  }
  groups.resize(n);
  return groups;
}

std::optional<std::string> find_executable(const std::string& cmd, const std::string& path,
                                           const std::string& cwd) {
  auto runnable = [&](std::string& p) {
    if (!p.starts_with("/")) p = (cwd.ends_with('/') ? cwd : cwd + "/") + p;
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(p.c_str(), X_OK) == 0;
  };
  if (cmd.empty()) return std::nullopt;
  if (cmd.find('/') != std::string::npos) {
    std::string p = cmd;
    if (runnable(p)) return p;
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

std::vector<std::string> agent_environment(const std::vector<std::string>& env,
                                           const Credentials& creds) {
  std::vector<std::string> out;
  for (const auto& kv : env) {
    if (kv.starts_with("HOME=") || kv.starts_with("USER=") || kv.starts_with("LOGNAME=")) continue;
    out.push_back(kv);
  }
  out.push_back("HOME=" + creds.home);
  out.push_back("USER=" + creds.name);
  out.push_back("LOGNAME=" + creds.name);
  return out;
}

}  // namespace corral
