// Who the agent runs as, which binary, with what environment: what
// `corral run` works out before any session exists.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace corral {

struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary: supplementary_groups(), where the agent starts
  std::string name;
  std::string home;
};

// Who runs the agent: `user` (a name or a number) when given, else the
// sudo caller (SUDO_UID/SUDO_GID), else the current user; without the
// supplementary groups. Throws std::runtime_error when the user does not
// exist.
Credentials resolve_credentials(const std::string& user, const char* sudo_uid,
                                const char* sudo_gid);

// The groups of user `name` with primary group `gid` (the group database:
// files, and whatever else nsswitch.conf names). Looked up by the process
// that starts the agent, not by the corral command: with systemd's NSS
// module the lookup loads a library and asks userdb, ~0.3 ms of every
// command's start, where a daemon has it loaded once.
std::vector<gid_t> supplementary_groups(const std::string& name, gid_t gid);

// Looks `cmd` up like execvp(3): as is when it has a '/', else in `path`;
// a relative path from the directory `cwd` (absolute). Returns the
// absolute path, or nullopt when no executable file is found.
std::optional<std::string> find_executable(const std::string& cmd, const std::string& path,
                                           const std::string& cwd);

// The agent's environment: ours, with HOME, USER and LOGNAME of `creds`.
std::vector<std::string> agent_environment(const std::vector<std::string>& env,
                                           const Credentials& creds);

}  // namespace corral
