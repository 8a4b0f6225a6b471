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

// The direct writer and protobuf's own printer agree on every field.
TEST(AuditJson, SameMappingAsProtobuf) {
  audit::Record r = sample_open();
  r.mutable_time()->set_seconds(1795000000);
  r.mutable_time()->set_nanos(120000000);
  r.set_boot_ns(18446744073709551615ull);
  r.mutable_open()->set_error("ENOENT\t\"quoted\" \\ \x01");
  r.mutable_open()->set_result(-2);
  std::string ours = record_to_json_line(r);

  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string theirs;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(r, &theirs, options).ok());

  audit::Record a, b;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(ours, &a).ok()) << ours;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(theirs, &b).ok());
  EXPECT_EQ(a.SerializeAsString(), b.SerializeAsString());
  EXPECT_NE(ours.find("\"time\":\"2026-11-18T"), std::string::npos) << ours;
  EXPECT_NE(ours.find(".120Z\""), std::string::npos) << ours;
  EXPECT_NE(ours.find("\"boot_ns\":\"18446744073709551615\""), std::string::npos);
  EXPECT_NE(ours.find("\"result\":\"-2\""), std::string::npos);
}

TEST(AuditJson, InvalidUtf8StaysValidJson) {
  audit::Record r;
  r.mutable_open()->set_path("/tmp/\xff\xfe-caf\xc3\xa9");
  std::string line = record_to_json_line(r);
  EXPECT_NE(line.find("/tmp/\\ufffd\\ufffd-caf\xc3\xa9"), std::string::npos) << line;
  audit::Record back;
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(line, &back).ok());
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
