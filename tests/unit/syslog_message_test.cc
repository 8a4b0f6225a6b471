// The syslog sink's RFC 5424 rendering: header fields, structured data and
// its escaping, severity by decision.
#include <gtest/gtest.h>

#include "syslog_sink.h"

namespace corral {
namespace {

LogRecord exec_record() {
  LogRecord rec;
  rec.seq = 42;
  rec.line = R"({"seq":"42","prev":"00"})";
  audit::Record& r = rec.record;
  r.mutable_time()->set_seconds(1795000000);  // 2026-11-18T11:06:40Z
  r.mutable_time()->set_nanos(123456789);
  r.set_host("build-7.example.net");
  r.set_session("ab12");
  r.set_boot_id("b00t");
  r.mutable_process()->set_pid(4242);
  r.mutable_exec()->set_path("/usr/bin/git");
  return rec;
}

TEST(SyslogMessage, HeaderStructuredDataAndBody) {
  SyslogSinkOptions o;
  auto rec = exec_record();
  std::string m = syslog_message(rec, o);
  // facility 13 (log audit) * 8 + informational (6)
  EXPECT_EQ(m,
            "<110>1 2026-11-18T11:06:40.123456Z build-7.example.net corral 4242 exec "
            "[corral@32473 seq=\"42\" session=\"ab12\" boot_id=\"b00t\"] " +
                rec.line);
}

TEST(SyslogMessage, DecisionsRaiseSeverityAndEscapeValues) {
  SyslogSinkOptions o;
  auto rec = exec_record();
  rec.record.mutable_decision()->set_action("deny");
  rec.record.mutable_decision()->set_rule(R"(no-"push"]\x)");
  std::string m = syslog_message(rec, o);
  EXPECT_TRUE(m.starts_with("<108>1 ")) << m;  // warning
  EXPECT_NE(m.find(R"(action="deny" rule="no-\"push\"\]\\x"])"), std::string::npos) << m;

  rec.record.mutable_decision()->set_action("would_deny");
  EXPECT_TRUE(syslog_message(rec, o).starts_with("<109>1 "));  // notice
  rec.record.mutable_decision()->set_action("missed");  // in force, and it happened
  EXPECT_TRUE(syslog_message(rec, o).starts_with("<108>1 "));  // warning
}

TEST(SyslogMessage, NilValuesAndHostileHeaderFields) {
  SyslogSinkOptions o;
  o.app_name = "cor ral";
  LogRecord rec;
  rec.seq = 7;
  rec.line = "{}";
  rec.record.set_host("bad host\n");
  std::string m = syslog_message(rec, o);
  // No time, pid or kind: NILVALUEs; spaces and controls dropped from
  // header fields, so they cannot shift the fields after them.
  EXPECT_EQ(m, "<110>1 - badhost corral - - [corral@32473 seq=\"7\"] {}");
}

}  // namespace
}  // namespace corral
