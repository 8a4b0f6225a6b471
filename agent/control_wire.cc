#include "control_wire.h"

#include <cstdint>
#include <stdexcept>

namespace corral::wire {
namespace {

enum WireType : uint8_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

// control.proto's field numbers
constexpr uint32_t kClientSignal = 2, kClientInvocation = 5;
constexpr uint32_t kInvocationArgs = 1, kInvocationEnv = 2, kInvocationCwd = 3,
                   kInvocationTerminal = 4;
constexpr uint32_t kSignalSigno = 1, kSignalFromTerminal = 2;
constexpr uint32_t kDaemonStarted = 1, kDaemonEnded = 2, kDaemonError = 3, kDaemonSessions = 4,
                   kDaemonKilled = 5, kDaemonHandBack = 6;
constexpr uint32_t kEndedExitCode = 1;

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_key(std::string& out, uint32_t field, WireType type) { put_varint(out, field << 3 | type); }

void put_bytes(std::string& out, uint32_t field, std::string_view v) {
  put_key(out, field, kBytes);
  put_varint(out, v.size());
  out.append(v);
}

// An int32 field: a negative one as its 64-bit sign extension, as protobuf
// writes it.
void put_int32(std::string& out, uint32_t field, int32_t v) {
  put_key(out, field, kVarint);
  put_varint(out, static_cast<uint64_t>(static_cast<int64_t>(v)));
}

void put_true(std::string& out, uint32_t field) {
  put_key(out, field, kVarint);
  put_varint(out, 1);
}

// A ClientMessage whose oneof is `field`, holding `body`.
std::string message(uint32_t field, std::string_view body) {
  std::string msg;
  put_bytes(msg, field, body);
  return msg;
}

// Reads `packet` as a sequence of fields.
class Reader {
 public:
  explicit Reader(std::string_view packet) : rest_(packet) {}
  bool done() const { return rest_.empty(); }

  // The next field's number and type; its value by varint(), bytes() or
  // skip().
  std::pair<uint32_t, uint8_t> key() {
    uint64_t k = varint();
    if (k >> 32 || (k >> 3) == 0) bad();
    return {static_cast<uint32_t>(k >> 3), static_cast<uint8_t>(k & 7)};
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (rest_.empty()) bad();
      auto b = static_cast<uint8_t>(rest_.front());
      rest_.remove_prefix(1);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    bad();
  }
  std::string_view bytes() {
    uint64_t n = varint();
    if (n > rest_.size()) bad();
    std::string_view v = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return v;
  }
  void skip(uint8_t type) {
    switch (type) {
      case kVarint: varint(); return;
      case kBytes: bytes(); return;
      case kFixed64: take(8); return;
      case kFixed32: take(4); return;
      default: bad();  // groups: not in control.proto
    }
  }

 private:
  void take(size_t n) {
    if (n > rest_.size()) bad();
    rest_.remove_prefix(n);
  }
  [[noreturn]] static void bad() { throw std::runtime_error("unparsable control message"); }

  std::string_view rest_;
};

}  // namespace

std::string invocation(const std::vector<std::string_view>& args,
                       const std::vector<std::string_view>& env, std::string_view cwd,
                       bool terminal) {
  std::string inv;
  for (auto a : args) put_bytes(inv, kInvocationArgs, a);
  for (auto e : env) put_bytes(inv, kInvocationEnv, e);
  if (!cwd.empty()) put_bytes(inv, kInvocationCwd, cwd);
  if (terminal) put_true(inv, kInvocationTerminal);
  return message(kClientInvocation, inv);
}

std::string signal(int signo, bool from_terminal) {
  std::string sig;
  if (signo) put_int32(sig, kSignalSigno, signo);
  if (from_terminal) put_true(sig, kSignalFromTerminal);
  return message(kClientSignal, sig);
}

Reply reply(std::string_view packet) {
  Reply r;
  Reader in(packet);
  while (!in.done()) {
    auto [field, type] = in.key();
    if (type != kBytes) {  // every field of DaemonMessage is length-delimited
      in.skip(type);
      continue;
    }
    std::string_view value = in.bytes();
    switch (field) {  // a oneof: the last one read is the one
      case kDaemonStarted:
        r = Reply{Reply::Kind::kStarted, 0, {}};
        break;
      case kDaemonEnded: {
        // a message field seen twice is merged, as protobuf does
        if (r.kind != Reply::Kind::kEnded) r = Reply{Reply::Kind::kEnded, 0, {}};
        Reader ended(value);
        while (!ended.done()) {
          auto [f, t] = ended.key();
          if (f == kEndedExitCode && t == kVarint)
            r.exit_code = static_cast<int32_t>(static_cast<uint32_t>(ended.varint()));
          else
            ended.skip(t);
        }
        break;
      }
      case kDaemonError:
        r = Reply{Reply::Kind::kError, 0, std::string(value)};
        break;
      case kDaemonHandBack:
        r = Reply{Reply::Kind::kHandBack, 0, {}};
        break;
      case kDaemonSessions:
      case kDaemonKilled:
        r = Reply{};
        break;
      default:  // a field of a later daemon's: unknown, skipped
        break;
    }
  }
  return r;
}

}  // namespace corral::wire
