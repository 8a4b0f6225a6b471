// What a session may use, as `corral run` asks for it; cgroup_limits.h
// enforces it. Header-only: the corral command checks it before it hands a
// run to the daemon, with no library of the supervisor's.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

namespace corral {

// An unset field leaves the inherited limit alone.
struct LimitSpec {
  // Tasks, threads included: pids.max counts each thread.
  std::optional<uint64_t> max_pids = std::nullopt;
  // Memory, kernel memory included; swap is not an escape (see SessionLimits).
  std::optional<uint64_t> max_memory_bytes = std::nullopt;
  // RLIMIT_NOFILE, soft and hard.
  std::optional<uint64_t> max_open_files = std::nullopt;

  bool operator==(const LimitSpec&) const = default;
};

// Below these a session cannot even start its agent; the kernel would take
// the value and kill or starve the session at once, so it is refused instead.
constexpr uint64_t kMinPids = 2;  // the session's init and the agent
constexpr uint64_t kMinMemoryBytes = 8ull << 20;
constexpr uint64_t kMinOpenFiles = 16;

// Throws std::invalid_argument naming the first limit below its minimum: for
// the command line, before anything starts.
inline void validate_limits(const LimitSpec& spec) {
  using std::to_string;
  if (spec.max_pids && *spec.max_pids < kMinPids)
    throw std::invalid_argument("max pids " + to_string(*spec.max_pids) +
                                " is below the minimum of " + to_string(kMinPids) +
                                " (the session's init and the agent)");
  if (spec.max_memory_bytes && *spec.max_memory_bytes < kMinMemoryBytes)
    throw std::invalid_argument("max memory " + to_string(*spec.max_memory_bytes) +
                                " bytes is below the minimum of " +
                                to_string(kMinMemoryBytes >> 20) + " MiB");
  if (spec.max_open_files && *spec.max_open_files < kMinOpenFiles)
    throw std::invalid_argument("max open files " + to_string(*spec.max_open_files) +
                                " is below the minimum of " + to_string(kMinOpenFiles));
}

}  // namespace corral
