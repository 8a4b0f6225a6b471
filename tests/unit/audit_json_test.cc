#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "audit_log.h"
#include "console.h"

namespace corral {
namespace {

audit::Record sample_open() {
  audit::Record r;
  r.set_seq(7);
  r.set_session("00000000000000ff");
  r.set_host("h");
  r.mutable_process()->set_pid(10);
  r.mutable_process()->set_comm("cat");
  auto* o = r.mutable_open();
  o->set_path("/etc/hostname\nfake line");
  o->add_flags("O_RDONLY");
  o->set_result(3);
  return r;
}

TEST(AuditJson, OneLineWithProtoFieldNames) {
  std::string line = record_to_json_line(sample_open());
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  // a newline inside a value must not split the record
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  EXPECT_NE(line.find("\"session\":\"00000000000000ff\""), std::string::npos);
  EXPECT_NE(line.find("\"raw_flags\":0"), std::string::npos) << "zero values are explicit";
  EXPECT_NE(line.find("\"open\":{"), std::string::npos);
  EXPECT_EQ(line.find("rawFlags"), std::string::npos) << "no lowerCamelCase names";
}

TEST(AuditJson, RoundTrips) {
  audit::Record in = sample_open();
  std::string line = record_to_json_line(in);
  audit::Record out;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &out).ok());
  EXPECT_EQ(out.SerializeAsString(), in.SerializeAsString());
}

TEST(Console, OneReadableLine) {
  std::string line = format_record(sample_open());
  EXPECT_NE(line.find("corral[00000000]"), std::string::npos);
  EXPECT_NE(line.find("open"), std::string::npos);
  EXPECT_NE(line.find("-> ok"), std::string::npos);

  audit::Record c;
  c.set_session("1234567890abcdef");
  c.mutable_connect()->set_family("inet6");
  c.mutable_connect()->set_address("::1");
  c.mutable_connect()->set_port(443);
  c.mutable_connect()->set_result(-111);
  c.mutable_connect()->set_error("ECONNREFUSED");
  EXPECT_NE(format_record(c).find("[::1]:443 -> ECONNREFUSED"), std::string::npos);
}

}  // namespace
}  // namespace corral
