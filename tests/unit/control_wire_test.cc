// The corral command's hand-written messages (control_wire.h) against the
// classes protobuf generates from control.proto: what one writes the other
// reads, both ways.
#include "control_wire.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "control.pb.h"

namespace corral {
namespace {

TEST(ControlWire, InvocationIsReadByTheDaemonsParser) {
  const std::string nul("a\0b", 3);
  const std::string long_arg(300, 'x');  // a length of two varint bytes
  std::vector<std::string_view> args = {"run", "--allow-root", "--", "sh", "", nul, long_arg};
  std::vector<std::string_view> env = {"PATH=/bin", "X=\xff\xfe"};
  for (bool terminal : {false, true}) {
    control::ClientMessage m;
    ASSERT_TRUE(m.ParseFromString(wire::invocation(args, env, "/work/p", terminal)));
    ASSERT_TRUE(m.has_invocation());
    const auto& inv = m.invocation();
    ASSERT_EQ(inv.args_size(), static_cast<int>(args.size()));
    for (size_t i = 0; i < args.size(); i++) EXPECT_EQ(inv.args(static_cast<int>(i)), args[i]);
    ASSERT_EQ(inv.env_size(), 2);
    EXPECT_EQ(inv.env(1), env[1]);
    EXPECT_EQ(inv.cwd(), "/work/p");
    EXPECT_EQ(inv.terminal(), terminal);
  }
  control::ClientMessage empty;
  ASSERT_TRUE(empty.ParseFromString(wire::invocation({}, {}, "", false)));
  EXPECT_TRUE(empty.has_invocation());
}

TEST(ControlWire, SignalIsReadByTheDaemonsParser) {
  for (auto [signo, tty] : {std::pair{2, true}, std::pair{15, false}, std::pair{28, true}}) {
    control::ClientMessage m;
    ASSERT_TRUE(m.ParseFromString(wire::signal(signo, tty)));
    ASSERT_TRUE(m.has_signal());
    EXPECT_EQ(m.signal().signo(), signo);
    EXPECT_EQ(m.signal().from_terminal(), tty);
  }
}

TEST(ControlWire, RepliesWrittenByTheDaemonAreRead) {
  using Kind = wire::Reply::Kind;
  control::DaemonMessage m;
  m.mutable_started()->set_session("0123456789abcdef");
  EXPECT_EQ(wire::reply(m.SerializeAsString()).kind, Kind::kStarted);
  for (int code : {0, 3, 137, 255, -1, -2147483647 - 1}) {
    m.mutable_ended()->set_exit_code(code);
    auto r = wire::reply(m.SerializeAsString());
    EXPECT_EQ(r.kind, Kind::kEnded);
    EXPECT_EQ(r.exit_code, code);
  }
  m.set_error(std::string(200, 'e'));
  auto r = wire::reply(m.SerializeAsString());
  EXPECT_EQ(r.kind, Kind::kError);
  EXPECT_EQ(r.error, std::string(200, 'e'));
  m.mutable_hand_back();
  EXPECT_EQ(wire::reply(m.SerializeAsString()).kind, Kind::kHandBack);
  m.set_killed("x");
  EXPECT_EQ(wire::reply(m.SerializeAsString()).kind, Kind::kOther);
  m.mutable_sessions()->add_sessions()->set_session("s");
  EXPECT_EQ(wire::reply(m.SerializeAsString()).kind, Kind::kOther);
  EXPECT_EQ(wire::reply("").kind, Kind::kOther);

  // A later daemon's fields, of every wire type, are skipped.
  m.mutable_ended()->set_exit_code(7);
  std::string later = m.SerializeAsString();
  later += std::string("\xf8\x07\x96\x01", 4);          // field 127, varint 150
  later += std::string("\xfa\x07\x02hi", 5);            // field 127, bytes "hi"
  later += std::string("\xf9\x07") + std::string(8, '\0');  // field 127, fixed64
  later += std::string("\xfd\x07") + std::string(4, '\0');  // field 127, fixed32
  r = wire::reply(later);
  EXPECT_EQ(r.kind, Kind::kEnded);
  EXPECT_EQ(r.exit_code, 7);

  // A message field twice is merged: an empty second `ended` keeps the code.
  std::string twice = m.SerializeAsString() + std::string("\x12\x00", 2);
  control::DaemonMessage merged;
  ASSERT_TRUE(merged.ParseFromString(twice));
  EXPECT_EQ(wire::reply(twice).exit_code, merged.ended().exit_code());
}

TEST(ControlWire, MalformedRepliesAreRefused) {
  control::DaemonMessage m;
  m.set_error("the daemon's reason");
  std::string whole = m.SerializeAsString();
  for (size_t n = 1; n < whole.size(); n++)
    EXPECT_THROW(wire::reply(whole.substr(0, n)), std::runtime_error) << n << " bytes";
  EXPECT_THROW(wire::reply(std::string(11, '\xff')), std::runtime_error) << "a varint of 11 bytes";
  EXPECT_THROW(wire::reply(std::string("\x0b", 1)), std::runtime_error) << "a group";
  EXPECT_THROW(wire::reply(std::string("\x00\x00", 2)), std::runtime_error) << "field 0";
}

}  // namespace
}  // namespace corral
