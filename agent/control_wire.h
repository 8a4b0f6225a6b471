// The corral command's few messages of control.proto, in protobuf's wire
// format by hand: the command starts every warm run, and the protobuf
// runtime's static initializers (libstdc++'s iostreams and locales among
// them) were ~0.5 ms and a dozen page faults of each start here. The field
// numbers are control.proto's; tests check both directions against the
// generated code (supervisor_parts_test.cc).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace corral::wire {

// ClientMessage{invocation: Invocation{args, env, cwd, terminal}}
std::string invocation(const std::vector<std::string_view>& args,
                       const std::vector<std::string_view>& env, std::string_view cwd,
                       bool terminal);
// ClientMessage{signal: Signal{signo, from_terminal}}
std::string signal(int signo, bool from_terminal);

// What the command needs of a DaemonMessage.
struct Reply {
  enum class Kind { kStarted, kEnded, kError, kHandBack, kOther } kind = Kind::kOther;
  int exit_code = 0;  // kEnded
  std::string error;  // kError
};
// Throws std::runtime_error on a packet that is not a DaemonMessage.
Reply reply(std::string_view packet);

}  // namespace corral::wire
