#include "tail.h"

#include <unistd.h>

#include <thread>

#include "audit_log.h"
#include "console.h"
#include "decision.h"
#include "log_reader.h"

namespace corral {
namespace {

bool wanted(const LogRecord& rec, const TailOptions& o) {
  const audit::Record& r = rec.record;
  if (!o.session.empty() && !r.session().starts_with(o.session)) return false;
  if (o.kind.empty()) return true;
  if (o.kind == "decision") return r.has_decision();
  if (r.event_case() == audit::Record::EVENT_NOT_SET) return false;
  return r.GetDescriptor()->FindFieldByNumber(r.event_case())->name() == o.kind;
}

const char* color_of(const audit::Record& r) {
  if (r.has_decision()) return enforced(r.decision()) ? "\033[1;31m" : "\033[33m";
  if (r.has_lost()) return "\033[35m";
  if (r.has_session_start() || r.has_session_end() || r.has_policy_load()) return "\033[1m";
  if (r.has_checkpoint()) return "\033[2m";
  return nullptr;
}

}  // namespace

void tail(const TailOptions& o, std::ostream& out, const std::atomic<bool>& stop) {
  uint64_t from = 1;
  if (!o.from_start) {
    uint64_t end = last_seq_in_log(o.path);
    from = end > o.last ? end - o.last + 1 : 1;
  }
  LogReader reader(o.path, from);
  while (!stop) {
    auto rec = reader.next();
    if (!rec) {
      if (!o.follow) break;
      out.flush();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (!wanted(*rec, o)) continue;
    if (o.json) {
      out << rec->line << '\n';
      continue;
    }
    const char* c = o.color ? color_of(rec->record) : nullptr;
    if (c) out << c;
    out << format_record(rec->record);
    if (c) out << "\033[0m";
    out << '\n';
  }
  out.flush();
}

}  // namespace corral
