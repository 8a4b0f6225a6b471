// The one way a failed system call becomes an exception: "what: strerror",
// with the errno kept (std::system_error) for callers that look at it.
#pragma once

#include <cerrno>
#include <string>
#include <system_error>

namespace corral {

inline std::system_error errno_error(const std::string& what, int err = errno) {
  return std::system_error(err, std::generic_category(), what);
}

}  // namespace corral
