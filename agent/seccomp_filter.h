// The session's syscall filter (libseccomp): what an agent never needs and
// what would let it step around the guard. Above all: a new mount or user
// namespace would be made of fresh mounts that the session's fanotify marks
// do not cover.
#pragma once

#include <linux/filter.h>

#include <vector>

namespace corral {

// Builds the filter once, in the supervisor. Throws std::runtime_error.
std::vector<sock_filter> build_session_filter();

// Installs it in the calling process: async-signal-safe (a forked child
// uses it before exec). Sets no_new_privs first. Returns 0 or an errno.
int install_filter(const std::vector<sock_filter>& filter);

}  // namespace corral
