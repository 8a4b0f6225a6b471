// Audit records as OCSF 1.1.0 events (see ocsf.h for the class of each record kind).
#include "ocsf.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>

#include "decision.h"
#include "json.h"

// The project's version, project() in CMakeLists.txt, unless the build passes it.
#ifndef CORRAL_VERSION
#define CORRAL_VERSION "0.1.0"
#endif

namespace corral {
namespace {

using nlohmann::json;
using Strings = google::protobuf::RepeatedPtrField<std::string>;

// Where a class takes `device` (and `actor`) from: its own attributes (System
// Activity), the Host profile, named in metadata.profiles, or nowhere (Base Event).
enum class Host { kNone, kNative, kProfile };

struct Class {
  int uid;
  const char* name;
  int category_uid;
  const char* category_name;
  Host host;
};

constexpr Class kBaseEvent{0, "Base Event", 0, "Uncategorized", Host::kNone};
constexpr Class kFileActivity{1001, "File System Activity", 1, "System Activity", Host::kNative};
constexpr Class kProcessActivity{1007, "Process Activity", 1, "System Activity", Host::kNative};
constexpr Class kDetectionFinding{2004, "Detection Finding", 2, "Findings", Host::kProfile};
constexpr Class kEntityManagement{3004, "Entity Management", 3, "Identity & Access Management",
                                  Host::kProfile};
constexpr Class kNetworkActivity{4001, "Network Activity", 4, "Network Activity", Host::kProfile};
constexpr Class kApplicationLifecycle{6002, "Application Lifecycle", 6, "Application Activity",
                                      Host::kProfile};

constexpr int kOther = 99;  // an activity the class has no id for; activity_name says which
constexpr const char* kSeverities[] = {"Unknown", "Informational", "Low", "Medium", "High"};
constexpr const char* kFileActivities[] = {"Unknown", "Create", "Read",
                                           "Update",  "Delete", "Rename"};
constexpr const char* kNetworkActivities[] = {"Unknown", "Open", "Close",
                                              "Reset",   "Fail", "Refuse"};
// OCSF file type_id 0..7
constexpr const char* kFileTypes[] = {"Unknown",      "Regular File", "Folder",     "Character Device",
                                      "Block Device", "Local Socket", "Named Pipe", "Symbolic Link"};

// One record as an event of `cls`, before what every event carries.
struct Event {
  const Class* cls = &kBaseEvent;
  int activity_id = 0;
  std::string activity_name = "Unknown";  // the caption, or the record's own name for kOther
  int severity_id = 1;                    // Informational
  json body = json::object();             // the class's own attributes
};

int64_t epoch_ms(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000 + t.nanos() / 1000000;
}

std::string base_name(std::string_view path) {
  auto slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string join(const Strings& parts) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += ' ';
    out += p;
  }
  return out;
}

json array(const Strings& parts) {
  return json(std::vector<std::string>(parts.begin(), parts.end()));
}

bool has(const Strings& flags, std::string_view flag) {
  for (const auto& f : flags)
    if (f == flag) return true;
  return false;
}

std::string event_uid(const audit::Record& r) { return r.host() + ":" + std::to_string(r.seq()); }

// The primary group is one of the user's groups; OCSF uids are strings.
json user(uint32_t uid, uint32_t gid) {
  json group = {{"uid", std::to_string(gid)}};
  return {{"uid", std::to_string(uid)}, {"groups", json::array({group})}};
}

json process(const audit::Process& p) {
  json j = {
      {"pid", p.pid()}, {"tid", p.tid()}, {"name", p.comm()}, {"user", user(p.uid(), p.gid())}};
  if (p.ppid()) j["parent_process"] = {{"pid", p.ppid()}};
  return j;
}

// The process a file or network event came from acted on the file or socket.
json actor(const audit::Record& r) { return {{"process", process(r.process())}}; }

// type_id is required: 0 Unknown when the record does not say.
json file(std::string_view path, int type_id) {
  return {{"path", path},
          {"name", base_name(path)},
          {"type_id", type_id},
          {"type", kFileTypes[type_id]}};
}

// A syscall's outcome: on failure the errno as status_code, its name as status_detail.
void set_status(json& body, int64_t result, const std::string& error) {
  if (result < 0) {
    body["status_id"] = 2;
    body["status"] = "Failure";
    body["status_code"] = std::to_string(-result);
    body["status_detail"] = error;
  } else {
    body["status_id"] = 1;
    body["status"] = "Success";
  }
}

json product() {
  return {{"name", "Corral"}, {"vendor_name", "Corral"}, {"version", CORRAL_VERSION}};
}

Event exec_event(const audit::Record& r) {
  const auto& x = r.exec();
  Event e{&kProcessActivity, 1, "Launch"};
  json p = process(r.process());
  p["cmd_line"] = join(x.argv());
  p["file"] = file(x.path(), 1);  // execve ran it: a regular file
  e.body["process"] = p;
  e.body["actor"] = {{"process", {{"pid", r.process().ppid()}}}};  // the parent launched it
  return e;
}

Event exit_event(const audit::Record& r) {
  const auto& x = r.exit();
  Event e{&kProcessActivity, 2, "Terminate"};
  json p = process(r.process());
  e.body["process"] = p;
  e.body["actor"] = {{"process", p}};  // an exit is reflexive
  // killed by a signal, it has no exit code: the signal is in unmapped
  if (!x.signal()) e.body["exit_code"] = x.code();
  return e;
}

// open's activity from its flags by name: the kernel's O_* names, or the file
// guard's read, write, write? (maybe) and exec.
int open_activity(const Strings& flags) {
  if (has(flags, "O_CREAT") || has(flags, "O_TMPFILE")) return 1;  // Create
  for (const char* w : {"O_WRONLY", "O_RDWR", "O_TRUNC", "write", "write?"})
    if (has(flags, w)) return 3;  // Update
  // Read: O_RDONLY, read, exec (a binary or library opened to run), O_PATH
  return 2;
}

Event open_event(const audit::Record& r) {
  const auto& o = r.open();
  int activity = open_activity(o.flags());
  Event e{&kFileActivity, activity, kFileActivities[activity]};
  e.body["actor"] = actor(r);
  e.body["file"] = file(o.path(), has(o.flags(), "O_DIRECTORY") ? 2 : 0);
  set_status(e.body, o.result(), o.error());
  return e;
}

Event unlink_event(const audit::Record& r) {
  const auto& u = r.unlink();
  Event e{&kFileActivity, 4, "Delete"};
  e.body["actor"] = actor(r);
  e.body["file"] = file(u.path(), u.directory() ? 2 : 0);
  set_status(e.body, u.result(), u.error());
  return e;
}

Event rename_event(const audit::Record& r) {
  const auto& n = r.rename();
  Event e{&kFileActivity, 5, "Rename"};
  e.body["actor"] = actor(r);
  e.body["file"] = file(n.from(), 0);
  e.body["file_result"] = file(n.to(), 0);
  set_status(e.body, n.result(), n.error());
  return e;
}

// A new name for a file: the name is what is created.
Event link_event(const audit::Record& r) {
  const auto& n = r.link();
  Event e{&kFileActivity, 1, "Create"};
  e.body["actor"] = actor(r);
  e.body["file"] = file(n.to(), n.symbolic() ? 7 : 0);  // 7: Symbolic Link
  set_status(e.body, n.result(), n.error());
  return e;
}

Event truncate_event(const audit::Record& r) {
  const auto& t = r.truncate();
  Event e{&kFileActivity, 3, "Update"};
  e.body["actor"] = actor(r);
  e.body["file"] = file(t.path(), 0);
  set_status(e.body, t.result(), t.error());
  return e;
}

Event connect_event(const audit::Record& r) {
  const auto& c = r.connect();
  // Open; Refuse when the peer or a policy (ours or an LSM's) said no; Fail when
  // the network did (timeout, unreachable). A non-blocking connect is under way.
  bool pending = c.error() == "EINPROGRESS";
  int activity = 1;
  if (c.result() < 0 && !pending)
    activity = c.error() == "ECONNREFUSED" || c.error() == "EACCES" || c.error() == "EPERM" ? 5 : 4;
  Event e{&kNetworkActivity, activity, kNetworkActivities[activity]};
  e.body["actor"] = actor(r);
  e.body["src_endpoint"] = {{"hostname", r.host()}};  // this host: its address is not recorded
  json dst;
  json conn = {{"direction_id", 2}, {"direction", "Outbound"}};
  if (c.family() == "inet" || c.family() == "inet6") {
    dst = {{"ip", c.address()}, {"port", c.port()}};
    bool v4 = c.family() == "inet";
    conn["protocol_ver_id"] = v4 ? 4 : 6;
    conn["protocol_ver"] =
        v4 ? "Internet Protocol version 4 (IPv4)" : "Internet Protocol version 6 (IPv6)";
  } else if (c.family() == "unix") {
    // an endpoint has no path attribute: a socket's path ("@name" if abstract) is its name
    dst = {{"name", c.address()}};
    conn["boundary_id"] = 1;
    conn["boundary"] = "Localhost";
  } else {
    dst = {{"name", "address family " + c.family()}};  // dst_endpoint is required
  }
  if (!c.protocol().empty()) {
    conn["protocol_name"] = c.protocol();
    conn["protocol_num"] = c.protocol() == "udp" ? 17 : 6;
  }
  e.body["dst_endpoint"] = dst;
  e.body["connection_info"] = conn;
  if (pending) {
    e.body["status_id"] = 0;
    e.body["status"] = "Unknown";
    e.body["status_detail"] = c.error();
  } else {
    set_status(e.body, c.result(), c.error());
  }
  return e;
}

// Base Event: OCSF 1.1.0 has no class for a monitor's own losses.
Event lost_event(const audit::Record& r) {
  const auto& l = r.lost();
  Event e{&kBaseEvent, kOther, "Events Lost", 3};  // Medium: the trail has a gap
  e.body["message"] = fmt::format(
      "kernel events lost: ringbuf_dropped={} session_map_full={} read_errors={} undecodable={}",
      l.ringbuf_dropped(), l.session_map_full(), l.read_errors(), l.undecodable());
  return e;
}

// Session start and end: Process Activity of the agent's main process, the
// session's root. Its uid is the session id, the one thing both records have.
Event session_start_event(const audit::Record& r) {
  const auto& s = r.session_start();
  Event e{&kProcessActivity, 1, "Launch"};
  json u = user(s.uid(), s.gid());
  u["name"] = s.user();
  json p = {{"pid", s.pid()}, {"uid", r.session()}, {"cmd_line", join(s.command())}, {"user", u}};
  if (!s.command().empty()) p["name"] = base_name(s.command(0));
  e.body["process"] = p;
  e.body["actor"] = {{"invoked_by", "corral"}};  // the supervisor, not in the record
  return e;
}

Event session_end_event(const audit::Record& r) {
  const auto& s = r.session_end();
  Event e{&kProcessActivity, 2, "Terminate"};
  e.body["process"] = {{"uid", r.session()}};
  e.body["actor"] = {{"invoked_by", "corral"}};
  e.body["exit_code"] = s.exit_code();
  return e;
}

// Entity Management (IAM): the policy is Corral's access control model, and a
// load updates it. A refused reload is a failed update; the old one stays.
Event policy_load_event(const audit::Record& r) {
  const auto& p = r.policy_load();
  Event e{&kEntityManagement, 3, "Update", p.accepted() ? 1 : 3};
  e.body["entity"] = {
      {"name", "policy"},
      {"type", "Policy"},
      {"version", std::to_string(p.generation())},
      {"data",
       {{"sources", array(p.sources())}, {"summary", p.summary()}, {"errors", array(p.errors())}}}};
  e.body["status_id"] = p.accepted() ? 1 : 2;
  e.body["status"] = p.accepted() ? "Success" : "Failure";
  if (!p.accepted()) {
    std::string errors;
    for (const auto& err : p.errors()) errors += (errors.empty() ? "" : "; ") + err;
    e.body["status_detail"] = errors;
  }
  e.body["message"] = p.accepted() ? p.summary() : "policy reload refused";
  return e;
}

// Base Event: a signed point in Corral's own hash chain has no OCSF class.
Event checkpoint_event(const audit::Record& r) {
  const auto& c = r.checkpoint();
  Event e{&kBaseEvent, kOther, "Checkpoint"};
  e.body["message"] = "audit chain checkpoint: " + c.reason();
  return e;
}

// Application Lifecycle: Corral starting and stopping; a sink going down or up
// is its own activity (Other). The component is the product's feature.
Event agent_event(const audit::Record& r) {
  const auto& a = r.agent();
  Event e{&kApplicationLifecycle, kOther, a.kind()};
  if (a.kind() == "start") {
    e.activity_id = 3;
    e.activity_name = "Start";
  } else if (a.kind() == "stop") {
    e.activity_id = 4;
    e.activity_name = "Stop";
  }
  if (a.kind() == "sink_down") e.severity_id = 3;  // records wait, or are lost
  json app = product();
  app["feature"] = {{"name", a.component()}};
  e.body["app"] = app;
  e.body["message"] = a.message();
  return e;
}

// Base Event: OCSF 1.1.0 has nothing for spending on LLM calls.
Event budget_event(const audit::Record& r) {
  const auto& b = r.budget();
  Event e{&kBaseEvent, kOther, "Budget"};
  e.severity_id = b.action() == "stop" ? 3 : b.action() == "warn" ? 2 : 1;
  e.body["message"] = fmt::format("llm budget {}: ${:.4f} of ${:.2f} ({} {})", b.action(),
                                  b.cost_usd(), b.limit_usd(), b.provider(), b.model());
  return e;
}

Event limit_event(const audit::Record& r) {
  const auto& l = r.limit();
  Event e{&kBaseEvent, kOther, "Limit"};
  e.severity_id = 3;  // medium: the kernel refused or killed something
  e.body["message"] = fmt::format("session limit {} hit: {} (now {})", l.resource(), l.count(),
                                  l.current());
  return e;
}

Event refused_event(const audit::Record& r) {
  Event e{&kBaseEvent, kOther, "Syscall refused"};
  e.severity_id = 3;
  e.body["message"] = fmt::format("syscall {} refused ({})", r.refused().syscall(),
                                  r.refused().error());
  return e;
}

// No default: a new kind of record breaks the build (-Wswitch) until it is mapped.
Event event_of(const audit::Record& r) {
  switch (r.event_case()) {
    case audit::Record::kExec:
      return exec_event(r);
    case audit::Record::kExit:
      return exit_event(r);
    case audit::Record::kOpen:
      return open_event(r);
    case audit::Record::kUnlink:
      return unlink_event(r);
    case audit::Record::kRename:
      return rename_event(r);
    case audit::Record::kLink:
      return link_event(r);
    case audit::Record::kTruncate:
      return truncate_event(r);
    case audit::Record::kConnect:
      return connect_event(r);
    case audit::Record::kLost:
      return lost_event(r);
    case audit::Record::kSessionStart:
      return session_start_event(r);
    case audit::Record::kSessionEnd:
      return session_end_event(r);
    case audit::Record::kPolicyLoad:
      return policy_load_event(r);
    case audit::Record::kCheckpoint:
      return checkpoint_event(r);
    case audit::Record::kAgent:
      return agent_event(r);
    case audit::Record::kBudget:
      return budget_event(r);
    case audit::Record::kLimit:
      return limit_event(r);
    case audit::Record::kRefused:
      return refused_event(r);
    case audit::Record::EVENT_NOT_SET:
      break;
  }
  return Event{};  // Base Event, activity Unknown
}

std::string type_name(const Event& e) {
  return std::string(e.cls->name) + ": " + (e.activity_id == kOther ? "Other" : e.activity_name);
}

void classify(json& j, const Event& e) {
  j["class_uid"] = e.cls->uid;
  j["class_name"] = e.cls->name;
  j["category_uid"] = e.cls->category_uid;
  j["category_name"] = e.cls->category_name;
  j["activity_id"] = e.activity_id;
  j["activity_name"] = e.activity_name;
  j["type_uid"] = e.cls->uid * 100 + e.activity_id;
  j["type_name"] = type_name(e);
}

// A decided record is a finding about its event: the event's objects are the
// evidence, its other attributes (its class and outcome too) the evidence's data.
Event finding(const audit::Record& r, Event ev) {
  const auto& d = r.decision();
  const auto* field = audit::Record::descriptor()->FindFieldByNumber(r.event_case());
  std::string kind = field ? field->name() : "record";
  bool in_force = enforced(d);  // else would_deny: shadow mode let it happen
  bool deny = d.action() == "deny";  // else it happened: missed, or would_deny
  json evidence;
  json data = std::move(ev.body);
  classify(data, ev);
  for (const char* key :
       {"actor", "process", "file", "src_endpoint", "dst_endpoint", "connection_info"}) {
    if (!data.contains(key)) continue;
    evidence[key] = std::move(data[key]);
    data.erase(key);
  }
  evidence["data"] = std::move(data);

  std::string rule = d.rule().empty() ? fmt::format("#{}", d.rule_index()) : d.rule();
  std::string title =
      fmt::format("{} {} by rule {}", kind,
                  deny ? "denied" : in_force ? d.action() : "would be denied", rule);
  json analytic = {{"name", rule}, {"type_id", 1}, {"type", "Rule"}};
  if (!d.rule().empty()) analytic["uid"] = d.rule();

  Event f{&kDetectionFinding, 1, "Create", in_force ? 4 : 3};  // High, or Medium
  f.body["finding_info"] = {{"uid", event_uid(r)},  {"title", title},
                            {"desc", d.reason()},   {"created_time", epoch_ms(r.time())},
                            {"analytic", analytic}, {"types", json::array({type_name(ev)})}};
  f.body["evidences"] = json::array({evidence});
  if (evidence.contains("actor")) f.body["actor"] = evidence["actor"];
  f.body["action_id"] = deny ? 2 : 1;
  f.body["action"] = deny ? "Denied" : "Allowed";
  f.body["disposition_id"] = deny ? 2 : 15;
  f.body["disposition"] = deny ? "Blocked" : "Detected";
  f.body["status_id"] = 1;  // a finding's status: New
  f.body["status"] = "New";
  f.body["message"] = title;
  return f;
}

json render(const audit::Record& r, Event e) {
  json j = std::move(e.body);
  classify(j, e);
  j["time"] = epoch_ms(r.time());
  j["severity_id"] = e.severity_id;
  j["severity"] = kSeverities[e.severity_id];

  json meta = {{"version", "1.1.0"},
               {"product", product()},
               {"uid", event_uid(r)},
               {"sequence", r.seq()},
               {"log_name", "corral.audit"}};
  if (!r.session().empty()) meta["correlation_uid"] = r.session();
  json profiles = json::array();
  if (e.cls->host == Host::kProfile) profiles.push_back("host");
  if (e.cls == &kDetectionFinding) profiles.push_back("security_control");  // action, disposition
  if (!profiles.empty()) meta["profiles"] = profiles;
  j["metadata"] = meta;

  if (e.cls->host != Host::kNone) {
    j["device"] = {{"hostname", r.host()},
                   {"type_id", 0},
                   {"type", "Unknown"},
                   {"os", {{"name", "Linux"}, {"type_id", 200}, {"type", "Linux"}}}};
  }
  return j;
}

}  // namespace

std::string to_ocsf_json(const audit::Record& record) {
  Event e = event_of(record);
  if (record.has_decision()) e = finding(record, std::move(e));
  // paths are bytes: invalid UTF-8 becomes U+FFFD rather than an exception
  std::string out =
      render(record, std::move(e)).dump(-1, ' ', false, json::error_handler_t::replace);
  // `unmapped` is the record whole, as the local log writes it: what OCSF has
  // no attribute for (seq, prev, boot_id, the decision, the kind's other
  // fields) is not lost, nor anything the record gains later. Spliced in as
  // text: parsing it back would halve the speed.
  out.pop_back();  // the closing brace
  out += ",\"unmapped\":";
  append_json(record, out);
  out += '}';
  return out;
}

}  // namespace corral
