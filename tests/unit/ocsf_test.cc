// The OCSF output checked against the OCSF 1.1.0 schema: every key is an
// attribute of its class or object, every required attribute is there, ids
// and their captions agree, and the values that matter land where they should.
// ocsf_schema_1_1.json beside this file holds the schema's names (its sources
// are listed in it).
#include "ocsf.h"

#include <google/protobuf/descriptor.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <map>
#include <set>
#include <stdexcept>

namespace corral {
namespace {

using nlohmann::json;

const json& schema() {
  static const json s = [] {
    auto path = std::filesystem::path(__FILE__).parent_path() / "ocsf_schema_1_1.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path.string());
    return json::parse(in);
  }();
  return s;
}

// Walks one event through the schema, collecting what does not fit.
class Validator {
 public:
  std::vector<std::string> errors;

  void check_event(const json& ev) {
    if (!ev.is_object()) return fail("the event is not a JSON object");
    const json& classes = schema()["classes"];
    auto cls = classes.find(std::to_string(ev.value("class_uid", -1)));
    if (cls == classes.end()) return fail("class_uid is not one of the fixture's classes");
    if (ev.contains("metadata") && ev["metadata"].contains("profiles")) {
      for (const auto& p : ev["metadata"]["profiles"]) {
        if (!(*cls)["profiles"].contains(p)) fail("profile " + p.dump() + " is not the class's");
        profiles_.insert(p.get<std::string>());
      }
    }
    check_members(ev, *cls, (*cls)["name"], "", true);

    // classification: the ids, their captions, type_uid
    int activity = ev.value("activity_id", -1);
    std::string caption = (*cls)["caption"];
    auto name = (*cls)["activities"].find(std::to_string(activity));
    if (name == (*cls)["activities"].end()) return fail("activity_id is not the class's");
    if (ev.value("type_uid", -1) != ev.value("class_uid", 0) * 100 + activity)
      fail("type_uid is not class_uid * 100 + activity_id");
    if (ev.value("class_name", "") != caption) fail("class_name is not " + caption);
    if (ev.value("category_uid", -1) != (*cls)["category_uid"]) fail("category_uid is wrong");
    if (ev.value("category_name", "") != (*cls)["category_name"]) fail("category_name is wrong");
    if (activity != 99 && ev.value("activity_name", "") != *name) fail("activity_name is wrong");
    if (!ev.value("activity_name", json()).is_string()) fail("activity_name is not a string");
    if (ev.value("type_name", "") != caption + ": " + name->get<std::string>())
      fail("type_name is not " + caption + ": " + name->get<std::string>());
    if (!ev.value("time", json()).is_number_integer()) fail("time is not an integer (ms)");
    if (ev.contains("metadata") && ev["metadata"].value("version", "") != "1.1.0")
      fail("metadata.version is not 1.1.0");
  }

 private:
  std::set<std::string> profiles_;  // those the event's metadata names

  void fail(const std::string& what) { errors.push_back(what); }

  // The keys of `obj` against `spec`, a class (is_class) or an object named `context`.
  void check_members(const json& obj, const json& spec, const std::string& context,
                     const std::string& where, bool is_class) {
    std::set<std::string> allowed(spec["attributes"].begin(), spec["attributes"].end());
    std::set<std::string> required(spec["required"].begin(), spec["required"].end());
    for (const auto& p : profiles_) {
      if (spec.contains("profiles") && spec["profiles"].contains(p))
        allowed.insert(spec["profiles"][p].begin(), spec["profiles"][p].end());
      if (is_class && spec["profile_required"].contains(p))
        required.insert(spec["profile_required"][p].begin(), spec["profile_required"][p].end());
    }
    std::string prefix = where.empty() ? "" : where + ".";
    for (const auto& [key, value] : obj.items()) {
      std::string path = prefix + key;
      if (!allowed.count(key)) {
        fail(path + " is not an attribute of " + context);
        continue;
      }
      if (value.is_null()) fail(path + " is null");
      check_value(key, value, path);
      check_enum(obj, key, context, path, is_class);
    }
    for (const auto& r : required)
      if (!obj.contains(r)) fail((where.empty() ? context : where) + " lacks required " + r);
    if (spec.contains("at_least_one")) {
      bool any = false;
      for (const auto& a : spec["at_least_one"]) any = any || obj.contains(a);
      if (!any) fail(where + " has none of " + spec["at_least_one"].dump());
    }
  }

  // The value of attribute `name`, by its dictionary type.
  void check_value(const std::string& name, const json& value, const std::string& path) {
    const json& types = schema()["attribute_types"];
    auto t = types.find(name);
    std::string type = t == types.end() ? "scalar" : (*t)["type"].get<std::string>();
    bool is_array = t != types.end() && (*t)["is_array"].get<bool>();
    if (type == "json_t") return;  // any JSON
    if (type == "object") {        // any JSON object
      if (!value.is_object()) fail(path + " is not an object");
      return;
    }
    if (is_array != value.is_array())
      return fail(path + (is_array ? " is not" : " is") + " an array");
    auto one = [&](const json& v, const std::string& p) {
      if (type == "scalar" || type.ends_with("_t")) {
        if (v.is_structured()) fail(p + " is not a scalar");
        return;
      }
      auto spec = schema()["objects"].find(type);
      if (spec == schema()["objects"].end())
        return fail(p + " is a " + type + ", an object the fixture has no attributes for");
      if (!v.is_object()) return fail(p + " is not an object");
      check_members(v, *spec, type, p, false);
    };
    if (!is_array) return one(value, path);
    for (size_t i = 0; i < value.size(); i++) one(value[i], path + "[" + std::to_string(i) + "]");
  }

  // An id with an enum in the fixture: one of its values, its sibling its caption.
  void check_enum(const json& obj, const std::string& key, const std::string& context,
                  const std::string& path, bool is_class) {
    const json& enums = schema()["enums"];
    auto e = enums.find(context + "." + key);
    if (e == enums.end() && is_class) e = enums.find(key);
    if (e == enums.end()) return;
    const json& value = obj[key];
    if (!value.is_number_integer()) return fail(path + " is not an integer");
    auto caption = e->find(std::to_string(value.get<int>()));
    if (caption == e->end()) return fail(path + " " + value.dump() + " is not in its enum");
    std::string sibling = key.substr(0, key.size() - 3);  // severity_id -> severity
    if (obj.contains(sibling) && obj[sibling] != *caption)
      fail(path + "'s sibling " + sibling + " is not " + caption->dump());
  }
};

std::vector<std::string> schema_errors(const json& ev) {
  Validator v;
  v.check_event(ev);
  return v.errors;
}

// A record with what every record of a session carries.
audit::Record base() {
  audit::Record r;
  r.set_seq(42);
  r.mutable_time()->set_seconds(1700000000);
  r.mutable_time()->set_nanos(123456789);
  r.set_boot_ns(987654321);
  r.set_host("build-1");
  r.set_session("00000000000000ab");
  r.set_prev(std::string(64, 'a'));
  r.set_boot_id("0f4b6a3c-2d5e-4c1a-9b7e-6f0a1d2c3b4e");
  auto* p = r.mutable_process();
  p->set_pid(4242);
  p->set_tid(4243);
  p->set_ppid(4000);
  p->set_uid(1000);
  p->set_gid(100);
  p->set_comm("curl");
  return r;
}

audit::Record exec_record() {
  auto r = base();
  auto* x = r.mutable_exec();
  x->set_path("/usr/bin/curl");
  for (const char* a : {"curl", "-s", "https://example.com"}) x->add_argv(a);
  return r;
}

audit::Record open_record(std::initializer_list<const char*> flags, int64_t result,
                          const char* error = "") {
  auto r = base();
  auto* o = r.mutable_open();
  o->set_path("/work/src/main.c");
  o->set_requested("main.c");
  for (const char* f : flags) o->add_flags(f);
  o->set_result(result);
  o->set_error(error);
  return r;
}

audit::Record connect_record(const char* family, const char* address, uint32_t port, int64_t result,
                             const char* error = "") {
  auto r = base();
  auto* c = r.mutable_connect();
  c->set_family(family);
  c->set_address(address);
  c->set_port(port);
  c->set_fd(5);
  c->set_result(result);
  c->set_error(error);
  return r;
}

void decide(audit::Record& r, const char* action, const char* rule, const char* reason) {
  auto* d = r.mutable_decision();
  d->set_action(action);
  d->set_mode(std::string(action) == "deny" ? "enforce" : "shadow");
  d->set_rule(rule);
  d->set_reason(reason);
  d->set_policy_generation(7);
  d->set_rule_index(3);
}

audit::Record egress_denied() {
  auto r = connect_record("inet", "10.0.0.1", 22, -1, "EPERM");
  r.mutable_connect()->set_fd(-1);
  r.mutable_connect()->set_protocol("tcp");
  decide(r, "deny", "egress-default-deny", "destination not in the egress allowlist");
  return r;
}

audit::Record exec_would_deny() {
  auto r = exec_record();
  decide(r, "would_deny", "", "curl to the network");
  return r;
}

// One or more samples of every kind of record, decided ones too.
std::vector<std::pair<std::string, audit::Record>> samples() {
  std::vector<std::pair<std::string, audit::Record>> out;
  out.emplace_back("exec", exec_record());
  out.emplace_back("exec would_deny", exec_would_deny());
  {
    auto r = base();
    r.mutable_exit()->set_code(3);
    out.emplace_back("exit", r);
    r.mutable_exit()->set_code(0);
    r.mutable_exit()->set_signal(9);
    out.emplace_back("exit by signal", r);
  }
  out.emplace_back("open read", open_record({"O_RDONLY", "O_CLOEXEC"}, 3));
  out.emplace_back("open create", open_record({"O_WRONLY", "O_CREAT", "O_TRUNC"}, 4));
  out.emplace_back("open failed", open_record({"O_RDWR"}, -13, "EACCES"));
  out.emplace_back("open directory", open_record({"O_RDONLY", "O_DIRECTORY"}, 5));
  {
    auto r = open_record({"write"}, -1, "EPERM");
    decide(r, "deny", "protect-git", "write to a protected path");
    out.emplace_back("open denied by the file guard", r);
  }
  {
    auto r = base();
    r.mutable_unlink()->set_path("/tmp/build");
    r.mutable_unlink()->set_directory(true);
    out.emplace_back("rmdir", r);
    auto d = r;
    decide(d, "would_deny", "keep-tmp", "removal of a protected path");
    out.emplace_back("rmdir would_deny", d);
  }
  {
    auto r = base();
    r.mutable_rename()->set_from("/tmp/a");
    r.mutable_rename()->set_to("/tmp/b");
    out.emplace_back("rename", r);
    auto m = r;
    m.mutable_rename()->set_to("/p/.github/workflows/ci.yml");
    decide(m, "missed", "ci-config", "moved into a protected path");
    out.emplace_back("rename missed", m);
    auto l = base();
    l.mutable_link()->set_from("/tmp/a");
    l.mutable_link()->set_to("/tmp/c");
    out.emplace_back("link", l);
    l.mutable_link()->set_from("../evil.sh");
    l.mutable_link()->set_symbolic(true);
    out.emplace_back("symlink", l);
  }
  {
    auto r = base();
    r.mutable_truncate()->set_path("/tmp/b");
    r.mutable_truncate()->set_length(10);
    r.mutable_truncate()->set_fd(-1);
    out.emplace_back("truncate", r);
  }
  out.emplace_back("connect inet", connect_record("inet", "93.184.216.34", 443, 0));
  out.emplace_back("connect inet6 refused",
                   connect_record("inet6", "2606:2800:220:1::1", 443, -111, "ECONNREFUSED"));
  out.emplace_back("connect unix", connect_record("unix", "/run/docker.sock", 0, 0));
  out.emplace_back("connect pending", connect_record("inet", "1.1.1.1", 53, -115, "EINPROGRESS"));
  out.emplace_back("connect timeout", connect_record("inet", "1.1.1.1", 53, -110, "ETIMEDOUT"));
  out.emplace_back("connect other family", connect_record("16", "", 0, 0));
  out.emplace_back("egress denied", egress_denied());
  {
    auto r = base();
    r.clear_process();
    r.mutable_lost()->set_ringbuf_dropped(5);
    out.emplace_back("lost", r);
  }
  {
    auto r = base();
    r.clear_process();
    auto* s = r.mutable_session_start();
    for (const char* a : {"/usr/bin/claude", "--print"}) s->add_command(a);
    s->set_cwd("/work");
    s->set_uid(1000);
    s->set_gid(100);
    s->set_user("dev");
    s->set_cgroup("/sys/fs/cgroup/corral/00000000000000ab");
    s->set_pid(5000);
    out.emplace_back("session start", r);
  }
  {
    auto r = base();
    r.clear_process();
    auto* s = r.mutable_session_end();
    s->set_exit_code(130);
    s->set_signal(2);
    s->set_duration_seconds(12.5);
    s->set_records(99);
    out.emplace_back("session end", r);
  }
  {
    auto r = base();
    r.clear_process();
    r.clear_session();
    auto* p = r.mutable_policy_load();
    p->add_sources("/etc/corral/policy.yaml");
    p->set_generation(7);
    p->set_accepted(true);
    p->set_summary("3 exec rules, 2 protected paths");
    out.emplace_back("policy load", r);
    p->set_accepted(false);
    p->add_errors("/etc/corral/policy.yaml:3:5: unknown key");
    out.emplace_back("policy load refused", r);
  }
  {
    auto r = base();
    r.clear_process();
    r.clear_session();
    r.mutable_checkpoint()->set_reason("interval");
    r.mutable_checkpoint()->set_key_id("0123456789abcdef");
    out.emplace_back("checkpoint", r);
  }
  {
    auto r = base();
    r.clear_process();
    r.clear_session();
    auto* a = r.mutable_agent();
    a->set_component("supervisor");
    a->set_kind("start");
    out.emplace_back("agent start", r);
    a->set_component("export");
    a->set_kind("sink_down");
    a->set_message("kafka unreachable");
    out.emplace_back("agent sink down", r);
  }
  {
    auto r = base();
    r.clear_process();
    auto* b = r.mutable_budget();
    b->set_provider("anthropic");
    b->set_model("claude");
    b->set_input_tokens(1000);
    b->set_output_tokens(200);
    b->set_cost_usd(0.42);
    b->set_limit_usd(5);
    b->set_action("warn");
    out.emplace_back("budget", r);
  }
  {
    auto r = base();
    auto* l = r.mutable_limit();
    l->set_resource("pids");
    l->set_count(12);
    l->set_current(64);
    out.emplace_back("limit", r);
  }
  {
    auto r = base();
    auto* x = r.mutable_refused();
    x->set_syscall("mount");
    x->set_nr(165);
    x->set_error("EPERM");
    out.emplace_back("refused", r);
  }
  out.emplace_back("empty", base());
  return out;
}

json map(const audit::Record& r) { return json::parse(to_ocsf_json(r)); }

TEST(OcsfTest, EverySampleFitsTheSchema) {
  for (const auto& [name, record] : samples()) {
    json ev = map(record);
    EXPECT_EQ(schema_errors(ev), std::vector<std::string>{}) << name << ": " << ev.dump();
  }
}

TEST(OcsfTest, EveryRecordKindIsMappedAndSampled) {
  const auto* oneof = audit::Record::descriptor()->FindOneofByName("event");
  ASSERT_NE(oneof, nullptr);
  std::set<int> sampled;
  for (const auto& [name, record] : samples()) sampled.insert(record.event_case());
  for (int i = 0; i < oneof->field_count(); i++) {
    const auto* field = oneof->field(i);
    SCOPED_TRACE(field->name());
    EXPECT_TRUE(sampled.count(field->number())) << "no sample of this kind: add one";
    auto r = base();
    r.GetReflection()->MutableMessage(&r, field);  // the kind, all its fields zero
    json ev = map(r);
    EXPECT_EQ(schema_errors(ev), std::vector<std::string>{}) << ev.dump();
    EXPECT_NE(ev["activity_id"], 0) << "mapped to an Unknown activity: not handled";
    EXPECT_TRUE(ev["unmapped"].contains(field->name()));
  }
}

TEST(OcsfTest, ExecIsAProcessLaunch) {
  json ev = map(exec_record());
  EXPECT_EQ(ev["class_uid"], 1007);
  EXPECT_EQ(ev["activity_id"], 1);
  EXPECT_EQ(ev["type_uid"], 100701);
  EXPECT_EQ(ev["time"], 1700000000123);  // ms
  EXPECT_EQ(ev["severity_id"], 1);
  EXPECT_EQ(ev["process"]["cmd_line"], "curl -s https://example.com");
  EXPECT_EQ(ev["process"]["file"]["path"], "/usr/bin/curl");
  EXPECT_EQ(ev["process"]["file"]["name"], "curl");
  EXPECT_EQ(ev["process"]["pid"], 4242);
  EXPECT_EQ(ev["process"]["tid"], 4243);
  EXPECT_EQ(ev["process"]["name"], "curl");
  EXPECT_EQ(ev["process"]["user"]["uid"], "1000");
  EXPECT_EQ(ev["process"]["user"]["groups"][0]["uid"], "100");
  EXPECT_EQ(ev["process"]["parent_process"]["pid"], 4000);
  EXPECT_EQ(ev["actor"]["process"]["pid"], 4000);
  EXPECT_EQ(ev["device"]["hostname"], "build-1");
  EXPECT_EQ(ev["metadata"]["uid"], "build-1:42");
  EXPECT_EQ(ev["metadata"]["sequence"], 42);
  EXPECT_EQ(ev["metadata"]["correlation_uid"], "00000000000000ab");
  EXPECT_EQ(ev["metadata"]["product"]["name"], "Corral");
  EXPECT_EQ(ev["metadata"]["log_name"], "corral.audit");
  EXPECT_FALSE(ev["metadata"].contains("profiles"));  // System Activity has its own device
  // the record whole, as the local log writes it (64-bit integers quoted)
  EXPECT_EQ(ev["unmapped"]["seq"], "42");
  EXPECT_EQ(ev["unmapped"]["boot_ns"], "987654321");
  EXPECT_EQ(ev["unmapped"]["boot_id"], "0f4b6a3c-2d5e-4c1a-9b7e-6f0a1d2c3b4e");
  EXPECT_EQ(ev["unmapped"]["prev"], std::string(64, 'a'));
  EXPECT_EQ(ev["unmapped"]["session"], "00000000000000ab");
  EXPECT_EQ(ev["unmapped"]["exec"]["argv"], json::array({"curl", "-s", "https://example.com"}));
}

TEST(OcsfTest, ExitIsAProcessTermination) {
  auto r = base();
  r.mutable_exit()->set_code(3);
  json ev = map(r);
  EXPECT_EQ(ev["type_uid"], 100702);
  EXPECT_EQ(ev["exit_code"], 3);
  EXPECT_EQ(ev["process"]["pid"], 4242);
  r.mutable_exit()->set_code(0);
  r.mutable_exit()->set_signal(9);
  ev = map(r);
  EXPECT_FALSE(ev.contains("exit_code"));  // killed: no exit code
  EXPECT_EQ(ev["unmapped"]["exit"]["signal"], 9);
}

TEST(OcsfTest, FileActivitiesFollowTheSyscallAndItsFlags) {
  json ev = map(open_record({"O_RDONLY", "O_CLOEXEC"}, 3));
  EXPECT_EQ(ev["class_uid"], 1001);
  EXPECT_EQ(ev["activity_id"], 2);  // Read
  EXPECT_EQ(ev["status_id"], 1);
  EXPECT_EQ(ev["file"]["path"], "/work/src/main.c");
  EXPECT_EQ(ev["file"]["name"], "main.c");
  EXPECT_EQ(ev["actor"]["process"]["pid"], 4242);
  EXPECT_EQ(map(open_record({"O_WRONLY", "O_CREAT"}, 4))["activity_id"], 1);  // Create
  EXPECT_EQ(map(open_record({"O_RDONLY", "O_DIRECTORY"}, 4))["file"]["type_id"], 2);

  ev = map(open_record({"O_RDWR"}, -13, "EACCES"));
  EXPECT_EQ(ev["activity_id"], 3);  // Update
  EXPECT_EQ(ev["status_id"], 2);
  EXPECT_EQ(ev["status"], "Failure");
  EXPECT_EQ(ev["status_detail"], "EACCES");
  EXPECT_EQ(ev["status_code"], "13");

  auto r = base();
  r.mutable_unlink()->set_path("/tmp/x");
  EXPECT_EQ(map(r)["type_uid"], 100104);  // Delete
  r.mutable_rename()->set_from("/tmp/a");
  r.mutable_rename()->set_to("/tmp/b");
  ev = map(r);
  EXPECT_EQ(ev["type_uid"], 100105);  // Rename
  EXPECT_EQ(ev["file"]["path"], "/tmp/a");
  EXPECT_EQ(ev["file_result"]["path"], "/tmp/b");
  r.mutable_truncate()->set_path("/tmp/b");
  EXPECT_EQ(map(r)["type_uid"], 100103);  // Update
}

TEST(OcsfTest, ConnectIsNetworkActivityToItsEndpoint) {
  json ev = map(connect_record("inet", "93.184.216.34", 443, 0));
  EXPECT_EQ(ev["class_uid"], 4001);
  EXPECT_EQ(ev["activity_id"], 1);  // Open
  EXPECT_EQ(ev["dst_endpoint"]["ip"], "93.184.216.34");
  EXPECT_EQ(ev["dst_endpoint"]["port"], 443);
  EXPECT_EQ(ev["src_endpoint"]["hostname"], "build-1");
  EXPECT_EQ(ev["connection_info"]["direction_id"], 2);  // Outbound
  EXPECT_EQ(ev["connection_info"]["protocol_ver_id"], 4);
  EXPECT_EQ(ev["metadata"]["profiles"], json::array({"host"}));  // for device and actor

  ev = map(connect_record("inet6", "2606:2800:220:1::1", 443, -111, "ECONNREFUSED"));
  EXPECT_EQ(ev["activity_id"], 5);  // Refuse
  EXPECT_EQ(ev["connection_info"]["protocol_ver_id"], 6);
  EXPECT_EQ(ev["status_detail"], "ECONNREFUSED");

  ev = map(connect_record("unix", "/run/docker.sock", 0, 0));
  EXPECT_EQ(ev["dst_endpoint"], json({{"name", "/run/docker.sock"}}));
  EXPECT_EQ(ev["connection_info"]["boundary_id"], 1);  // Localhost

  EXPECT_EQ(map(connect_record("inet", "1.1.1.1", 53, -110, "ETIMEDOUT"))["activity_id"], 4);
  ev = map(connect_record("inet", "1.1.1.1", 53, -115, "EINPROGRESS"));
  EXPECT_EQ(ev["activity_id"], 1);
  EXPECT_EQ(ev["status_id"], 0);  // under way: not known yet
}

TEST(OcsfTest, ADecisionIsADetectionFindingWithTheEventAsEvidence) {
  json ev = map(egress_denied());
  EXPECT_EQ(ev["class_uid"], 2004);
  EXPECT_EQ(ev["type_uid"], 200401);   // Create
  EXPECT_EQ(ev["severity_id"], 4);     // High
  EXPECT_EQ(ev["action_id"], 2);       // Denied
  EXPECT_EQ(ev["disposition_id"], 2);  // Blocked
  EXPECT_EQ(ev["status_id"], 1);       // New
  const json& info = ev["finding_info"];
  EXPECT_EQ(info["uid"], "build-1:42");
  EXPECT_EQ(info["analytic"]["uid"], "egress-default-deny");
  EXPECT_EQ(info["analytic"]["type_id"], 1);  // Rule
  EXPECT_EQ(info["desc"], "destination not in the egress allowlist");
  EXPECT_EQ(info["types"], json::array({"Network Activity: Refuse"}));
  EXPECT_EQ(ev["metadata"]["profiles"], json::array({"host", "security_control"}));
  const json& evidence = ev["evidences"][0];
  EXPECT_EQ(evidence["dst_endpoint"]["ip"], "10.0.0.1");
  EXPECT_EQ(evidence["dst_endpoint"]["port"], 22);
  EXPECT_EQ(evidence["connection_info"]["protocol_name"], "tcp");
  EXPECT_EQ(evidence["actor"]["process"]["pid"], 4242);
  EXPECT_EQ(evidence["data"]["type_uid"], 400105);
  EXPECT_EQ(evidence["data"]["status_detail"], "EPERM");
  EXPECT_EQ(ev["actor"], evidence["actor"]);
  EXPECT_EQ(ev["unmapped"]["decision"]["rule"], "egress-default-deny");
  EXPECT_EQ(ev["unmapped"]["connect"]["protocol"], "tcp");

  ev = map(exec_would_deny());
  EXPECT_EQ(ev["severity_id"], 3);                          // Medium
  EXPECT_EQ(ev["action_id"], 1);                            // Allowed: shadow mode
  EXPECT_EQ(ev["disposition_id"], 15);                      // Detected
  EXPECT_EQ(ev["finding_info"]["analytic"]["name"], "#3");  // no rule id: its index
  EXPECT_FALSE(ev["finding_info"]["analytic"].contains("uid"));
  EXPECT_EQ(ev["evidences"][0]["process"]["cmd_line"], "curl -s https://example.com");
  EXPECT_EQ(ev["evidences"][0]["actor"]["process"]["pid"], 4000);
  EXPECT_EQ(ev["unmapped"]["decision"]["mode"], "shadow");
}

// A rule in force that could not refuse (a rename into a protected path):
// it happened, and it ranks with the denials.
TEST(OcsfTest, MissedDecisionIsAHighFindingOfWhatHappened) {
  std::map<std::string, json> ev;
  for (const auto& [name, record] : samples()) ev[name] = map(record);
  const json& f = ev["rename missed"];
  EXPECT_EQ(f["severity_id"], 4);        // High
  EXPECT_EQ(f["action_id"], 1);          // Allowed
  EXPECT_EQ(f["disposition_id"], 15);    // Detected
  EXPECT_EQ(f["finding_info"]["title"], "rename missed by rule ci-config");
  EXPECT_EQ(f["finding_info"]["analytic"]["uid"], "ci-config");
}

TEST(OcsfTest, SessionPolicyAndCorralRecords) {
  std::map<std::string, json> ev;
  for (const auto& [name, record] : samples()) ev[name] = map(record);

  EXPECT_EQ(ev["session start"]["type_uid"], 100701);
  EXPECT_EQ(ev["session start"]["process"]["pid"], 5000);
  EXPECT_EQ(ev["session start"]["process"]["uid"], "00000000000000ab");
  EXPECT_EQ(ev["session start"]["process"]["cmd_line"], "/usr/bin/claude --print");
  EXPECT_EQ(ev["session start"]["process"]["user"]["name"], "dev");
  EXPECT_EQ(ev["session start"]["unmapped"]["session_start"]["cwd"], "/work");
  EXPECT_EQ(ev["session end"]["type_uid"], 100702);
  EXPECT_EQ(ev["session end"]["process"]["uid"], "00000000000000ab");
  EXPECT_EQ(ev["session end"]["exit_code"], 130);

  EXPECT_EQ(ev["policy load"]["type_uid"], 300403);  // Entity Management: Update
  EXPECT_EQ(ev["policy load"]["entity"]["version"], "7");
  EXPECT_EQ(ev["policy load"]["status_id"], 1);
  EXPECT_EQ(ev["policy load refused"]["status_id"], 2);
  EXPECT_EQ(ev["policy load refused"]["severity_id"], 3);
  EXPECT_EQ(ev["policy load refused"]["status_detail"], "/etc/corral/policy.yaml:3:5: unknown key");

  EXPECT_EQ(ev["agent start"]["type_uid"], 600203);  // Application Lifecycle: Start
  EXPECT_EQ(ev["agent start"]["app"]["feature"]["name"], "supervisor");
  EXPECT_EQ(ev["agent sink down"]["activity_id"], 99);
  EXPECT_EQ(ev["agent sink down"]["activity_name"], "sink_down");
  EXPECT_EQ(ev["agent sink down"]["message"], "kafka unreachable");

  for (const char* name : {"lost", "checkpoint", "budget", "limit", "refused"}) {
    EXPECT_EQ(ev[name]["class_uid"], 0) << name;  // Base Event
    EXPECT_EQ(ev[name]["type_uid"], 99) << name;
    EXPECT_FALSE(ev[name].contains("device")) << name;  // not a Base Event attribute
  }
  EXPECT_EQ(ev["lost"]["severity_id"], 3);
  EXPECT_EQ(ev["lost"]["unmapped"]["lost"]["ringbuf_dropped"], "5");
  EXPECT_EQ(ev["checkpoint"]["unmapped"]["checkpoint"]["key_id"], "0123456789abcdef");
  EXPECT_EQ(ev["budget"]["unmapped"]["budget"]["cost_usd"], 0.42);
  EXPECT_EQ(ev["limit"]["unmapped"]["limit"]["resource"], "pids");
}

TEST(OcsfTest, InvalidUtf8InAPathStaysValidJson) {
  auto r = open_record({"O_RDONLY"}, 3);
  r.mutable_open()->set_path("/tmp/\xff\xfe");
  json ev = map(r);
  EXPECT_EQ(ev["file"]["path"], "/tmp/\xef\xbf\xbd\xef\xbf\xbd");
}

// The checks catch what they are for, so a pass means something.
TEST(OcsfTest, TheValidatorRejectsWhatIsNotOcsf) {
  json good = map(egress_denied());
  ASSERT_EQ(schema_errors(good), std::vector<std::string>{});
  auto rejected = [&](auto change) {
    json ev = good;
    change(ev);
    return !schema_errors(ev).empty();
  };
  EXPECT_TRUE(rejected([](json& e) { e["file_path"] = "/x"; }));  // invented
  EXPECT_TRUE(rejected([](json& e) { e["evidences"][0]["process"] = {{"path", "/x"}}; }));
  EXPECT_TRUE(rejected([](json& e) { e["metadata"].erase("version"); }));  // required
  EXPECT_TRUE(rejected([](json& e) { e.erase("finding_info"); }));         // required
  EXPECT_TRUE(rejected([](json& e) { e["type_uid"] = 200402; }));
  EXPECT_TRUE(rejected([](json& e) { e["disposition"] = "Allowed"; }));  // not its id's
  EXPECT_TRUE(rejected([](json& e) { e["metadata"]["profiles"] = json::array({"host"}); }));
  EXPECT_TRUE(rejected([](json& e) { e["evidences"] = e["evidences"][0]; }));  // not an array
  EXPECT_TRUE(rejected([](json& e) { e["severity_id"] = 7; }));
}

}  // namespace
}  // namespace corral
