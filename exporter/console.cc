#include "console.h"

#include <fmt/format.h>

#include "decision.h"

namespace corral {
namespace {

std::string outcome(int64_t result, const std::string& error) {
  return result < 0 ? fmt::format("-> {}", error) : std::string("-> ok");
}

std::string join(const google::protobuf::RepeatedPtrField<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += sep;
    out += p;
  }
  return out;
}

std::string describe(const audit::Record& r) {
  switch (r.event_case()) {
    case audit::Record::kExec:
      return fmt::format("exec     {}  [{}]{}", r.exec().path(), join(r.exec().argv(), " "),
                         r.exec().argv_truncated() ? " (argv truncated)" : "");
    case audit::Record::kExit:
      return r.exit().signal() ? fmt::format("exit     killed by signal {}", r.exit().signal())
                               : fmt::format("exit     code {}", r.exit().code());
    case audit::Record::kOpen:
      return fmt::format("open     {} {} {}", r.open().path(), join(r.open().flags(), "|"),
                         outcome(r.open().result(), r.open().error()));
    case audit::Record::kUnlink:
      return fmt::format("{} {} {}", r.unlink().directory() ? "rmdir   " : "unlink  ",
                         r.unlink().path(), outcome(r.unlink().result(), r.unlink().error()));
    case audit::Record::kRename:
      return fmt::format("rename   {} => {} {}", r.rename().from(), r.rename().to(),
                         outcome(r.rename().result(), r.rename().error()));
    case audit::Record::kLink:
      if (r.link().symbolic())
        return fmt::format("symlink  {} -> {} {}", r.link().to(), r.link().from(),
                           outcome(r.link().result(), r.link().error()));
      return fmt::format("link     {} => {} {}", r.link().from(), r.link().to(),
                         outcome(r.link().result(), r.link().error()));
    case audit::Record::kTruncate:
      return fmt::format("truncate {} to {} {}", r.truncate().path(), r.truncate().length(),
                         outcome(r.truncate().result(), r.truncate().error()));
    case audit::Record::kConnect: {
      const auto& c = r.connect();
      std::string dest = c.family() == "inet6" ? fmt::format("[{}]:{}", c.address(), c.port())
                         : c.family() == "unix" ? c.address()
                                                : fmt::format("{}:{}", c.address(), c.port());
      return fmt::format("connect  {} {} {}", c.family(), dest, outcome(c.result(), c.error()));
    }
    case audit::Record::kLost: {
      const auto& l = r.lost();
      return fmt::format(
          "LOST     ringbuf_dropped={} session_map_full={} read_errors={} "
          "undecodable={}",
          l.ringbuf_dropped(), l.session_map_full(), l.read_errors(),
          l.undecodable());
    }
    case audit::Record::kSessionStart:
      return fmt::format("session  start [{}] as {} (uid {}) in {}",
                         join(r.session_start().command(), " "), r.session_start().user(),
                         r.session_start().uid(), r.session_start().cwd());
    case audit::Record::kSessionEnd:
      return fmt::format("session  end exit {} after {:.3f}s, {} records, {} leftover killed",
                         r.session_end().exit_code(), r.session_end().duration_seconds(),
                         r.session_end().records(), r.session_end().leftover_processes_killed());
    case audit::Record::kPolicyLoad: {
      const auto& p = r.policy_load();
      if (p.accepted()) return fmt::format("policy   generation {}: {}", p.generation(), p.summary());
      return fmt::format("policy   reload refused, generation {} stays: {}", p.generation(),
                         p.errors_size() ? p.errors(0) : std::string("(no error text)"));
    }
    case audit::Record::kCheckpoint:
      return fmt::format("audit    checkpoint ({}) signed through seq {}", r.checkpoint().reason(),
                         r.seq());
    case audit::Record::kAgent:
      return fmt::format("corral   {} {}: {}", r.agent().component(), r.agent().kind(),
                         r.agent().message());
    case audit::Record::kBudget: {
      const auto& b = r.budget();
      return fmt::format("budget   {} {}: {} in / {} out tokens, ${:.4f} of ${:.2f} ({})",
                         b.provider(), b.model(), b.input_tokens(), b.output_tokens(),
                         b.cost_usd(), b.limit_usd(), b.action());
    }
    case audit::Record::kRefused:
      return fmt::format("syscall  {} -> {}", r.refused().syscall(), r.refused().error());
    case audit::Record::kLimit:
      return fmt::format("LIMIT    {}: {} (now {})", r.limit().resource(), r.limit().count(),
                         r.limit().current());
    case audit::Record::EVENT_NOT_SET:
      break;
  }
  return "(empty record)";
}

}  // namespace

std::string format_record(const audit::Record& r) {
  std::string who;
  if (r.has_process())
    who = fmt::format(" {:>7} {:<15}", r.process().pid(), r.process().comm());
  std::string verdict;
  if (r.has_decision())
    verdict = fmt::format("  [{} by {}]", verdict_word(r.decision()), r.decision().rule());
  return fmt::format("corral[{}]{} {}{}", r.session().substr(0, 8), who, describe(r), verdict);
}

}  // namespace corral
