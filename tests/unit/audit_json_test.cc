#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <map>

#include "audit_log.h"
#include "console.h"
#include "json.h"

namespace corral {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// Sets every field of `m` and of its messages, but the members of oneofs, to a value of its
// own: numbers from the field number (negative where signed), strings from the name.
void fill(Message& m) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  for (int i = 0; i < d->field_count(); i++) {
    const FieldDescriptor* f = d->field(i);
    if (f->real_containing_oneof()) continue;
    const int n = f->number();
    for (int k = 0; k < (f->is_repeated() ? 2 : 1); k++) {
      const int v = n + k;
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
          f->is_repeated() ? r->AddInt32(&m, f, -v) : r->SetInt32(&m, f, -v);
          break;
        case FieldDescriptor::CPPTYPE_UINT32:
          f->is_repeated() ? r->AddUInt32(&m, f, 4000000000u + v) : r->SetUInt32(&m, f, 4000000000u + v);
          break;
        case FieldDescriptor::CPPTYPE_INT64:
          f->is_repeated() ? r->AddInt64(&m, f, -1000000000000 * v)
                           : r->SetInt64(&m, f, -1000000000000 * v);
          break;
        case FieldDescriptor::CPPTYPE_UINT64:
          f->is_repeated() ? r->AddUInt64(&m, f, UINT64_MAX - v) : r->SetUInt64(&m, f, UINT64_MAX - v);
          break;
        case FieldDescriptor::CPPTYPE_DOUBLE:
          f->is_repeated() ? r->AddDouble(&m, f, v + 0.25) : r->SetDouble(&m, f, v + 0.25);
          break;
        case FieldDescriptor::CPPTYPE_BOOL:
          f->is_repeated() ? r->AddBool(&m, f, true) : r->SetBool(&m, f, true);
          break;
        case FieldDescriptor::CPPTYPE_STRING: {
          std::string text = f->name() + " " + std::to_string(v);
          f->is_repeated() ? r->AddString(&m, f, text) : r->SetString(&m, f, text);
          break;
        }
        case FieldDescriptor::CPPTYPE_MESSAGE:
          fill(f->is_repeated() ? *r->AddMessage(&m, f) : *r->MutableMessage(&m, f));
          break;
        default:
          FAIL() << f->full_name() << ": audit.proto has no fields of this type yet";
      }
    }
  }
}

// A record with every field set, and the event `kind`, all of its fields set.
audit::Record every_field(const FieldDescriptor* kind) {
  audit::Record r;
  fill(r);
  r.mutable_time()->set_seconds(1795000000);
  r.mutable_time()->set_nanos(123456789);
  fill(*r.GetReflection()->MutableMessage(&r, kind));
  return r;
}

// The JSON of each kind of record, byte for byte: the log's format is pinned (the chain hashes
// these bytes, readers parse them), so a change of the writer must leave every byte as it is.
TEST(AuditJson, EveryKindByteForByte) {
  const std::string common =
      R"({"seq":"18446744073709551614","prev":"prev 8","time":"2026-11-18T11:06:40.123456789Z",)"
      R"("boot_ns":"18446744073709551612","host":"host 4","session":"session 5",)"
      R"("process":{"pid":4000000001,"tid":4000000002,"ppid":4000000003,"uid":4000000004,)"
      R"("gid":4000000005,"comm":"comm 6"},"decision":{"action":"action 1","rule":"rule 2",)"
      R"("mode":"mode 3","reason":"reason 4","policy_generation":4000000005,)"
      R"("rule_index":4000000006},"boot_id":"boot_id 9","redacted":4000000024,)";
  const std::map<std::string, std::string> expected = {
      {"exec",
       R"("exec":{"path":"path 1","argv":["argv 2","argv 3"],"argv_truncated":true,)"
       R"("path_truncated":true}})"},
      {"exit",
       R"("exit":{"code":-1,"signal":-2,"core_dumped":true}})"},
      {"open",
       R"("open":{"path":"path 1","requested":"requested 2","flags":["flags 3","flags 4"],)"
       R"("raw_flags":4000000004,"mode":4000000005,"result":"-6000000000000",)"
       R"("error":"error 7","path_truncated":true}})"},
      {"unlink",
       R"("unlink":{"path":"path 1","directory":true,"result":"-3000000000000",)"
       R"("error":"error 4","path_truncated":true}})"},
      {"rename",
       R"("rename":{"from":"from 1","to":"to 2","flags":4000000003,"result":"-4000000000000",)"
       R"("error":"error 5","path_truncated":true}})"},
      {"truncate",
       R"("truncate":{"path":"path 1","length":"-2000000000000","fd":-3,)"
       R"("result":"-4000000000000","error":"error 5","path_truncated":true}})"},
      {"connect",
       R"("connect":{"family":"family 1","address":"address 2","port":4000000003,"fd":-4,)"
       R"("result":"-5000000000000","error":"error 6","protocol":"protocol 7"}})"},
      {"lost",
       R"("lost":{"ringbuf_dropped":"18446744073709551614",)"
       R"("session_map_full":"18446744073709551613","read_errors":"18446744073709551612",)"
       R"("undecodable":"18446744073709551611"}})"},
      {"session_start",
       R"("session_start":{"command":["command 1","command 2"],"cwd":"cwd 2","uid":4000000003,)"
       R"("gid":4000000004,"user":"user 5","cgroup":"cgroup 6","pid":4000000007,)"
       R"("limits":{"max_pids":"18446744073709551614",)"
       R"("max_memory_bytes":"18446744073709551613","max_open_files":"18446744073709551612",)"
       R"("timeout_seconds":4.25},"worktree":"worktree 9","net":"net 10"}})"},
      {"session_end",
       R"("session_end":{"exit_code":-1,"signal":-2,"leftover_processes_killed":4000000003,)"
       R"("duration_seconds":4.25,"records":"18446744073709551610",)"
       R"("usage":{"pids_peak":"18446744073709551614","pids_max_hits":"18446744073709551613",)"
       R"("memory_peak_bytes":"18446744073709551612","oom_kills":"18446744073709551611"},)"
       R"("timed_out":true,"file_guard":{"asked":"18446744073709551614",)"
       R"("denied":"18446744073709551613","cached":"18446744073709551612",)"
       R"("errors":"18446744073709551611"}}})"},
      {"policy_load",
       R"("policy_load":{"sources":["sources 1","sources 2"],"generation":4000000002,)"
       R"("accepted":true,"errors":["errors 4","errors 5"],"summary":"summary 5"}})"},
      {"checkpoint",
       R"("checkpoint":{"reason":"reason 1","key_id":"key_id 3","signature":"signature 4",)"
       R"("torn_bytes":"18446744073709551610","torn_sha256":"torn_sha256 6"}})"},
      {"agent",
       R"("agent":{"component":"component 1","kind":"kind 2","message":"message 3"}})"},
      {"budget",
       R"("budget":{"provider":"provider 1","model":"model 2",)"
       R"("input_tokens":"18446744073709551612","output_tokens":"18446744073709551611",)"
       R"("cost_usd":5.25,"limit_usd":6.25,"action":"action 7"}})"},
      {"limit",
       R"("limit":{"resource":"resource 1","count":"18446744073709551613",)"
       R"("current":"18446744073709551612"}})"},
      {"refused",
       R"("refused":{"syscall":"syscall 1","nr":-2,"arg0":"18446744073709551612",)"
       R"("error":"error 4"}})"},
      {"link",
       R"("link":{"from":"from 1","to":"to 2","flags":4000000003,"result":"-4000000000000",)"
       R"("error":"error 5","path_truncated":true,"symbolic":true}})"},
  };
  const auto* oneof = audit::Record::descriptor()->FindOneofByName("event");
  ASSERT_EQ(static_cast<size_t>(oneof->field_count()), expected.size()) << "a kind without a line here";
  for (int i = 0; i < oneof->field_count(); i++) {
    const FieldDescriptor* kind = oneof->field(i);
    std::string out;
    append_json(every_field(kind), out);
    ASSERT_TRUE(expected.count(kind->name())) << kind->name();
    EXPECT_EQ(out, common + expected.at(kind->name())) << kind->name();
  }
  std::string empty;
  append_json(audit::Record(), empty);
  EXPECT_EQ(empty,
            R"({"seq":"0","prev":"","boot_ns":"0","host":"","session":"","boot_id":"",)"
            R"("redacted":0})");
}

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

// What a string's bytes become: escapes, \u00XX for the other control bytes, well-formed UTF-8
// sequences as they are, U+FFFD for each byte of no sequence.
TEST(AuditJson, StringBytes) {
  audit::Record r;
  r.mutable_agent()->set_message("plain \"q\" \\ \n\r\t\x01\x1f\x7f~ \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 "
                "\x80\xc3(\xf8\xe2\x82");
  std::string out;
  append_json(r, out);
  EXPECT_TRUE(out.ends_with(
            R"("agent":{"component":"","kind":"","message":"plain \"q\" \\ \n\r\t\u0001\u001f\u007f~ )"
            "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 "
            R"(\ufffd\ufffd(\ufffd\ufffd\ufffd"}})"))
      << out;
}

// The JSON string that `text` becomes, as an agent message.
std::string string_json(const std::string& text) {
  audit::Record r;
  r.mutable_agent()->set_message(text);
  std::string out;
  append_json(r, out);
  const std::string key = "\"message\":";
  size_t start = out.find(key) + key.size();
  return out.substr(start, out.size() - start - 2);  // "}}" closes agent and record
}

// Strings are read eight bytes at a time where they can be: every byte value, at every place of
// such a word, comes out as it does alone.
TEST(AuditJson, EveryByteAnywhereInAWord) {
  for (int b = 0; b < 256; b++) {
    std::string alone = string_json(std::string(1, static_cast<char>(b)));
    alone = alone.substr(1, alone.size() - 2);
    for (size_t k = 0; k < 16; k++) {
      std::string text(16, 'a');
      text[k] = static_cast<char>(b);
      EXPECT_EQ(string_json(text),
                "\"" + std::string(k, 'a') + alone + std::string(15 - k, 'a') + "\"")
          << "byte " << b << " at " << k;
    }
  }
}

// Seconds in RFC 3339, and as protobuf prints them 0, 3, 6 or 9 digits of the nanoseconds, also
// when records of different seconds alternate.
TEST(AuditJson, Timestamps) {
  const std::pair<int64_t, int32_t> times[] = {
      {1795000000, 0},         {1795000000, 120000000}, {1795000001, 123000},
      {1795000000, 5},         {0, 999999999},          {1795003600, -5},
  };
  const char* expected[] = {
      R"("2026-11-18T11:06:40Z")",          R"("2026-11-18T11:06:40.120Z")",
      R"("2026-11-18T11:06:41.000123Z")",   R"("2026-11-18T11:06:40.000000005Z")",
      R"("1970-01-01T00:00:00.999999999Z")", R"("2026-11-18T12:06:40.-00000005Z")",
  };
  for (size_t i = 0; i < std::size(times); i++) {
    audit::Record r;
    r.mutable_time()->set_seconds(times[i].first);
    r.mutable_time()->set_nanos(times[i].second);
    std::string out;
    append_json(r, out);
    EXPECT_NE(out.find(std::string("\"time\":") + expected[i] + ","), std::string::npos) << out;
  }
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
