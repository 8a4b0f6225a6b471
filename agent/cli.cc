#include "cli.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <optional>
#include <thread>

#include "cgroup2.h"
#include "check.h"
#include "control.h"
#include "daemon.h"
#include "process.h"
#include "run_command.h"
#include "kafka_sink.h"
#include "redact.h"
#include "shipper.h"
#include "supervisor.h"
#include "syslog_sink.h"
#include "tail.h"
#include "verify.h"
#include "worktree.h"

extern char** environ;

namespace corral {
namespace {

AuditLogOptions audit_log_options(const AuditFlags& f) {
  AuditLogOptions o;
  o.path = f.path;
  o.key_path = f.key;
  o.fsync = f.fsync == "never"    ? FsyncPolicy::kNever
            : f.fsync == "always" ? FsyncPolicy::kAlways
                                  : FsyncPolicy::kInterval;
  o.checkpoint_every = f.checkpoint_every;
  o.max_bytes = f.max_mib << 20;
  o.max_age = std::chrono::seconds(static_cast<int64_t>(f.max_age_hours * 3600));
  return o;
}

void preflight(const RunOptions& o) {
  if (::geteuid() != 0)
    throw Failure{kCorralFailed,
                  "corral run must run as root (it loads BPF programs and creates cgroups); "
                  "try: sudo corral run -- " + o.command.front()};
  struct stat st;
  if (::stat("/sys/kernel/btf/vmlinux", &st) != 0)
    throw Failure{kCorralFailed,
                  "this kernel has no BTF (/sys/kernel/btf/vmlinux is missing); corral needs a "
                  "kernel built with CONFIG_DEBUG_INFO_BTF=y"};
  if (find_cgroup2_mount().empty())
    throw Failure{kCorralFailed,
                  "cgroup2 is not mounted; mount it (mount -t cgroup2 none /sys/fs/cgroup/unified) "
                  "and retry"};
}

// The session of `request`: in a running daemon (warm), else in a
// supervisor of this run's own.
int run_session(const RunOptions& o, const control::RunRequest& request) {
  // Warm: a running daemon hosts the session, its programs already loaded.
  if (!o.embedded) {
    const std::string path = o.daemon_socket.empty() ? kDefaultControlSocket : o.daemon_socket;
    if (!o.daemon_socket.empty() && !o.embedded_flags.empty())
      throw Failure{kCorralFailed, o.embedded_flags.front() +
                                       " configures a supervisor of this run's own; the daemon's "
                                       "session uses the daemon's (drop it, or pass --embedded)"};
    UniqueFd sock;
    if (o.embedded_flags.empty()) {
      try {
        sock = connect_control(path);
      } catch (const std::exception& e) {
        throw Failure{kCorralFailed, e.what()};
      }
    }
    if (sock) {
      std::optional<int> code;
      try {
        code = run_in_daemon(sock.get(), [&](bool terminal) {
          control::ClientMessage start;
          *start.mutable_run() = request;
          start.mutable_run()->set_terminal(terminal);
          return start.SerializeAsString();
        });
      } catch (const std::exception& e) {
        throw Failure{kCannotRun, e.what()};
      }
      if (!code) throw Failure{kCannotRun, "the corral daemon handed a run request back"};
      return *code;
    }
    if (!o.daemon_socket.empty())
      throw Failure{kCorralFailed, "no corral daemon listens on " + path};
  }

  if (o.audit.path == kDefaultAudit) std::filesystem::create_directories("/var/log/corral");
  boost::asio::io_context io;
  SupervisorOptions sopts;
  sopts.audit = audit_log_options(o.audit);
  sopts.quiet = o.quiet;
  sopts.ringbuf_bytes = o.ringbuf_mib << 20;
  sopts.policy_path = o.policy;
  std::unique_ptr<Supervisor> sup;
  try {
    sup = std::make_unique<Supervisor>(io, sopts);
  } catch (const std::exception& e) {
    throw Failure{kCorralFailed, e.what()};
  }

  int exit_code = kCorralFailed;
  try {
    sup->start_session(from_request(request), [&](int code) {
      exit_code = code;
      io.stop();
    });
  } catch (const std::exception& e) {
    throw Failure{kCannotRun, e.what()};
  }
  io.run();
  // A trail that could not be written is this run's failure, whatever the
  // agent's status (said on stderr as it happened).
  if (!sup->close_log(std::chrono::seconds(5))) return kCorralFailed;
  return exit_code;
}

int run(const RunOptions& o) {
  preflight(o);

  RunContext ctx = RunContext::ours();
  const std::string& cwd = ctx.cwd;
  Credentials creds = run_credentials(o, ctx);
  std::string exe = run_executable(o, ctx);
  // Every check done before a worktree is made for it.
  control::RunRequest request = run_request(o, creds, exe, ctx);
  if (o.worktree.empty()) return run_session(o, request);

  // git runs as the user, with the user's groups (the request has none:
  // the session looks them up where it starts).
  creds.groups = supplementary_groups(creds.name, creds.gid);
  std::optional<Worktree> wt;
  WorktreeGitMounts git;  // its lock held until the take-in
  try {
    wt = prepare_worktree(cwd, o.worktree, o.base, creds, o.worktrees_dir);
    spdlog::info("{} worktree {} at {} (branch {} from {})", wt->resumed ? "resuming" : "new",
                 wt->name, wt->path, wt->branch, wt->base_ref);
    request.set_cwd(worktree_cwd(*wt, cwd));
    request.set_worktree(wt->name);
    request.add_writable(wt->path);
    git = worktree_git_mounts(*wt, creds);
    for (const auto& p : git.writable) request.add_writable(p);
    for (const auto& ov : git.overlays) {
      auto* m = request.add_overlays();
      m->set_target(ov.target);
      m->set_upper(ov.upper);
      m->set_work(ov.work);
    }
  } catch (const std::exception& e) {
    throw Failure{kCorralFailed, e.what()};
  }
  int code = run_session(o, request);
  // What the session committed, onto its branch; nothing of another's.
  try {
    for (const auto& what : take_in_worktree_session(*wt, creds))
      spdlog::warn("worktree {}: the session's change to {} was dropped", wt->name, what);
  } catch (const std::exception& e) {
    spdlog::error("worktree {}: {} (the next run takes it in)", wt->name, e.what());
  }
  return code;
}

struct ExportOptions {
  AuditFlags audit;
  std::string state_dir = "/var/lib/corral/export";
  std::string format = "json";  // for every sink without a format of its own
  std::string syslog_format, kafka_format;
  std::string syslog;  // HOST:PORT
  bool syslog_tls = false;
  std::string syslog_ca, syslog_cert, syslog_key, syslog_server_name;
  double replay_window = 2;
  std::string kafka;  // bootstrap servers
  std::string kafka_topic = "corral.audit";
  std::vector<std::string> kafka_properties;  // K=V
};

std::pair<std::string, uint16_t> host_port(const std::string& s, const char* flag) {
  auto colon = s.rfind(':');
  unsigned long port = 0;
  try {
    if (colon != std::string::npos) port = std::stoul(s.substr(colon + 1));
  } catch (const std::exception&) {
  }
  if (colon == std::string::npos || colon == 0 || port == 0 || port > 65535)
    throw Failure{2, std::string(flag) + ": expected HOST:PORT, got '" + s + "'"};
  std::string host = s.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  return {host, static_cast<uint16_t>(port)};
}

// Waits for SIGINT or SIGTERM on this thread (blocked everywhere else).
int wait_for_stop_signal() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  return sig;
}

void block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int export_main(const ExportOptions& o) {
  if (o.syslog.empty() && o.kafka.empty())
    throw Failure{2, "corral export: no sink given (--syslog HOST:PORT, --kafka BROKERS)"};
  auto format_of = [&](const std::string& own) {
    return (own.empty() ? o.format : own) == "ocsf" ? SinkFormat::kOcsf : SinkFormat::kJson;
  };
  block_stop_signals();  // before any thread starts, so they inherit it

  // The shipper's own news (a sink down, back) goes into the trail itself.
  AuditLogOptions lo = audit_log_options(o.audit);
  HostIdentity id = host_identity();
  lo.host = id.host;
  lo.boot_id = id.boot_id;
  std::mutex log_mutex;
  std::unique_ptr<AuditLog> log;
  try {
    log = std::make_unique<AuditLog>(lo);
  } catch (const std::exception& e) {
    throw Failure{kCorralFailed, e.what()};
  }
  auto note = [&](const std::string& kind, const std::string& message) {
    std::lock_guard lock(log_mutex);
    audit::Record r;
    auto now = std::chrono::system_clock::now().time_since_epoch();
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count();
    r.mutable_time()->set_seconds(ns / 1'000'000'000);
    r.mutable_time()->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
    r.set_host(lo.host);
    r.set_boot_id(lo.boot_id);
    timespec boot;
    clock_gettime(CLOCK_BOOTTIME, &boot);
    r.set_boot_ns(static_cast<uint64_t>(boot.tv_sec) * 1'000'000'000 + boot.tv_nsec);
    r.mutable_agent()->set_component("export");
    r.mutable_agent()->set_kind(kind);
    r.mutable_agent()->set_message(message);
    if (uint32_t masked = redact(r)) r.set_redacted(masked);
    try {
      log->append(r);
      log->flush();
    } catch (const std::exception& e) {
      spdlog::error("{}", e.what());
    }
  };

  ShipperOptions so;
  so.log_path = o.audit.path;
  so.state_dir = o.state_dir;
  so.on_change = [&](const std::string& sink, bool up, const std::string& message) {
    note(up ? "sink_up" : "sink_down", sink + ": " + message);
  };
  Shipper shipper(so);
  if (!o.syslog.empty()) {
    SyslogSinkOptions sy;
    std::tie(sy.host, sy.port) = host_port(o.syslog, "--syslog");
    sy.tls = o.syslog_tls;
    sy.ca_file = o.syslog_ca;
    sy.cert_file = o.syslog_cert;
    sy.key_file = o.syslog_key;
    sy.server_name = o.syslog_server_name;
    sy.format = format_of(o.syslog_format);
    sy.replay_window = std::chrono::milliseconds(static_cast<int64_t>(o.replay_window * 1000));
    shipper.add(std::make_unique<SyslogSink>(sy));
  }
  if (!o.kafka.empty()) {
    KafkaSinkOptions ko;
    ko.brokers = o.kafka;
    ko.topic = o.kafka_topic;
    ko.format = format_of(o.kafka_format);
    for (const auto& kv : o.kafka_properties) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0)
        throw Failure{2, "--kafka-property: expected KEY=VALUE, got '" + kv + "'"};
      ko.properties[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    try {
      shipper.add(std::make_unique<KafkaSink>(ko));
    } catch (const std::invalid_argument& e) {
      throw Failure{2, e.what()};
    }
  }
  note("start", "shipping " + o.audit.path);
  shipper.start();
  int sig = wait_for_stop_signal();
  shipper.stop();
  note("stop", std::string("stopped by ") + strsignal(sig));
  return 0;
}

int tail_main(TailOptions o) {
  block_stop_signals();
  std::atomic<bool> stop{false};
  std::thread waiter;
  if (o.follow)
    waiter = std::thread([&] {
      wait_for_stop_signal();
      stop = true;
    });
  tail(o, std::cout, stop);
  if (waiter.joinable()) {
    // The waiter is still in sigwait when tail ended by itself.
    if (!stop) kill(getpid(), SIGTERM);
    waiter.join();
  }
  return 0;
}

}  // namespace

int cli_main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("corral");
  logger->set_pattern("corral: %^%l%$: %v");
  spdlog::set_default_logger(logger);

  CLI::App app{"corral: run AI coding agents under a kernel-enforced guard"};
  app.require_subcommand(1);
  std::string log_level = "info";
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));

  RunOptions ro;
  auto* run_cmd = add_run_command(app, ro);

  RunOptions dopts;  // the daemon's supervisor: a run's options minus the session's
  std::string daemon_socket = kDefaultControlSocket;
  auto* daemon_cmd = app.add_subcommand(
      "daemon", "keep the kernel programs loaded and host the sessions of `corral run` (warm "
                "starts), until SIGTERM");
  dopts.audit.add_to(daemon_cmd);
  daemon_cmd->add_flag("--quiet,-q", dopts.quiet, "no live event lines on stderr");
  daemon_cmd->add_option("--ring-mib", dopts.ringbuf_mib, "kernel ring buffer size, MiB (power of 2)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1024u));
  daemon_cmd->add_option("--policy", dopts.policy,
                         "policy file for every session (default: the shipped one); SIGHUP "
                         "reloads it");
  daemon_cmd->add_option("--socket", daemon_socket, "control socket (root only)")
      ->capture_default_str();

  std::string ask_socket = kDefaultControlSocket;
  auto* ps_cmd = app.add_subcommand("ps", "the sessions of the running corral daemon");
  ps_cmd->add_option("--daemon-socket", ask_socket, "the daemon's control socket")
      ->capture_default_str();
  std::string kill_id;
  auto* kill_cmd = app.add_subcommand("kill", "kill a session of the running corral daemon");
  kill_cmd->add_option("session", kill_id, "the session's id, or a prefix naming one")->required();
  kill_cmd->add_option("--daemon-socket", ask_socket, "the daemon's control socket")
      ->capture_default_str();

  auto* policy_cmd = app.add_subcommand("policy", "work with policy files");
  policy_cmd->require_subcommand(1);
  std::string check_path;
  auto* check_cmd = policy_cmd->add_subcommand("check", "validate a policy file");
  check_cmd->add_option("file", check_path, "the policy file")->required();

  auto* audit_cmd = app.add_subcommand("audit", "work with the audit trail");
  audit_cmd->require_subcommand(1);
  std::vector<std::string> verify_files;
  std::string verify_key = std::string(kDefaultAuditKey) + ".pub";
  auto* verify_cmd = audit_cmd->add_subcommand(
      "verify", "check the hash chain and signatures of a log and its rotated files; exit 1 "
                "when tampered with");
  verify_cmd->add_option("--key", verify_key, "the signing key's public half (PEM)")
      ->capture_default_str();
  verify_cmd->add_option("files", verify_files, "the log files (PATH and PATH.<seq>)")
      ->required();

  ExportOptions eo;
  auto* export_cmd = app.add_subcommand(
      "export", "ship the audit log to the SOC (syslog, Kafka), each sink from its own durable "
                "cursor, until SIGTERM");
  eo.audit.add_to(export_cmd);
  export_cmd->add_option("--state-dir", eo.state_dir, "where the sinks' cursors are kept")
      ->capture_default_str();
  export_cmd->add_option("--format", eo.format, "message body: json (the record) or ocsf")
      ->capture_default_str()
      ->check(CLI::IsMember({"json", "ocsf"}));
  export_cmd->add_option("--syslog", eo.syslog,
                         "RFC 5424 over TCP (octet counting) to HOST:PORT");
  export_cmd->add_option("--syslog-format", eo.syslog_format, "json or ocsf (default: --format)")
      ->check(CLI::IsMember({"json", "ocsf"}));
  export_cmd->add_flag("--syslog-tls", eo.syslog_tls, "over TLS (RFC 5425)");
  export_cmd->add_option("--syslog-ca", eo.syslog_ca, "CA file the collector's certificate must chain to");
  export_cmd->add_option("--syslog-cert", eo.syslog_cert, "client certificate (PEM)");
  export_cmd->add_option("--syslog-key", eo.syslog_key, "client key (PEM)");
  export_cmd->add_option("--syslog-server-name", eo.syslog_server_name,
                         "name the collector's certificate must carry (default: HOST)");
  export_cmd->add_option("--replay-window", eo.replay_window,
                         "seconds of records sent again when a syslog connection fails")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 600.0));

  export_cmd->add_option("--kafka", eo.kafka, "Kafka bootstrap servers, HOST:PORT[,...]");
  export_cmd->add_option("--kafka-topic", eo.kafka_topic, "Kafka topic")->capture_default_str();
  export_cmd->add_option("--kafka-format", eo.kafka_format, "json or ocsf (default: --format)")
      ->check(CLI::IsMember({"json", "ocsf"}));
  export_cmd->add_option("--kafka-property", eo.kafka_properties,
                         "a librdkafka property KEY=VALUE (repeatable), e.g. "
                         "security.protocol=ssl");

  // The review commands run git as the user who asked (sudo's caller).
  auto git_user = [] {
    Credentials c = resolve_credentials("", std::getenv("SUDO_UID"), std::getenv("SUDO_GID"));
    c.groups = supplementary_groups(c.name, c.gid);
    return c;
  };
  auto* worktrees_cmd = app.add_subcommand("worktrees", "this repository's agent worktrees");
  ReviewOptions rvo;
  std::string review_color = "auto";
  bool no_pager = false;
  uint64_t large_mib = 1;
  auto* review_cmd =
      app.add_subcommand("review", "what the agent did in worktree NAME: risks, stat, diff");
  review_cmd->add_option("name", rvo.name, "the worktree")->required();
  review_cmd->add_option("--protect", rvo.protected_paths,
                         "a path whose changes are flagged (repeatable; replaces the defaults)")
      ->capture_default_str();
  review_cmd->add_option("--large-mib", large_mib, "flag binary files from this size")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 20));
  review_cmd->add_option("--color", review_color, "auto, always, never")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "always", "never"}));
  review_cmd->add_flag("--no-pager", no_pager, "print, even to a terminal");
  MergeOptions mo;
  auto* merge_cmd =
      app.add_subcommand("merge", "merge worktree NAME into the branch it was started from");
  merge_cmd->add_option("name", mo.name, "the worktree")->required();
  DiscardOptions dso;
  auto* discard_cmd = app.add_subcommand("discard", "remove worktree NAME and its branch");
  discard_cmd->add_option("name", dso.name, "the worktree")->required();

  TailOptions to;
  to.path = kDefaultAudit;
  bool no_follow = false;
  std::string color = "auto";
  auto* tail_cmd = app.add_subcommand("tail", "follow the audit trail live");
  tail_cmd->add_option("--audit", to.path, "the audit log")->capture_default_str();
  tail_cmd->add_option("--session", to.session, "only this session (id or prefix)");
  tail_cmd->add_option("--kind", to.kind,
                       "only this kind: exec, open, connect, unlink, rename, link, decision, ...");
  tail_cmd->add_flag("--json", to.json, "the log's JSON lines");
  tail_cmd->add_option("-n,--last", to.last, "start with this many records")->capture_default_str();
  tail_cmd->add_flag("--from-start", to.from_start, "start at the log's first record");
  tail_cmd->add_flag("--no-follow", no_follow, "stop at the end of the log");
  tail_cmd->add_option("--color", color, "auto, always, never")
      ->capture_default_str()
      ->check(CLI::IsMember({"auto", "always", "never"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));

  try {
    if (run_cmd->parsed()) {
      note_embedded_flags(*run_cmd, ro);
      return run(ro);
    }
    if (ps_cmd->parsed() || kill_cmd->parsed()) {
      UniqueFd sock;
      control::DaemonMessage reply;
      control::ClientMessage q;
      if (ps_cmd->parsed()) q.mutable_list();
      else q.mutable_kill()->set_session(kill_id);
      try {
        sock = connect_control(ask_socket);
        if (!sock)
          throw Failure{kCorralFailed, "no corral daemon listens on " + ask_socket +
                                           " (sessions of an embedded corral run are not listed)"};
        reply = ask_daemon(sock.get(), q);
      } catch (const std::runtime_error& e) {
        throw Failure{kCorralFailed, e.what()};
      }
      if (kill_cmd->parsed()) {
        std::cout << "killed " << reply.killed() << "\n";
        return 0;
      }
      std::cout << "SESSION           USER        PID     AGE  CWD  COMMAND\n";
      for (const auto& s : reply.sessions().sessions()) {
        std::string cmd;
        for (const auto& a : s.command()) cmd += (cmd.empty() ? "" : " ") + a;
        std::cout << fmt::format("{:<17} {:<10} {:>6} {:>6.0f}s  {}  {}\n", s.session(), s.user(),
                                 s.pid(), s.seconds(), s.cwd() + (s.worktree().empty() ? "" : " [" + s.worktree() + "]"), cmd);
      }
      return 0;
    }
    if (daemon_cmd->parsed()) {
      if (::geteuid() != 0) throw Failure{kCorralFailed, "corral daemon must run as root"};
      if (dopts.audit.path == kDefaultAudit) std::filesystem::create_directories("/var/log/corral");
      SupervisorOptions sopts;
      sopts.audit = audit_log_options(dopts.audit);
      sopts.quiet = dopts.quiet;
      sopts.ringbuf_bytes = dopts.ringbuf_mib << 20;
      sopts.policy_path = dopts.policy;
      try {
        return run_daemon(sopts, daemon_socket);
      } catch (const std::exception& e) {
        throw Failure{kCorralFailed, e.what()};
      }
    }
    if (check_cmd->parsed()) return rules::policy_check(check_path, std::cout, std::cerr);
    std::string here = std::filesystem::current_path();
    if (worktrees_cmd->parsed()) return worktrees_main({here, git_user()}, std::cout, std::cerr);
    if (review_cmd->parsed()) {
      rvo.repo_dir = here;
      rvo.as = git_user();
      rvo.large_bytes = large_mib << 20;
      bool tty = isatty(STDOUT_FILENO);
      rvo.color = review_color == "always" || (review_color == "auto" && tty);
      const char* pager = std::getenv("PAGER");
      if (tty && !no_pager) rvo.pager = pager && *pager ? pager : "less -R";
      return review_main(rvo, std::cout, std::cerr);
    }
    if (merge_cmd->parsed()) return merge_main({here, git_user(), mo.name}, std::cout, std::cerr);
    if (discard_cmd->parsed())
      return discard_main({here, git_user(), dso.name}, std::cout, std::cerr);
    if (export_cmd->parsed()) return export_main(eo);
    if (tail_cmd->parsed()) {
      to.follow = !no_follow;
      to.color = color == "always" || (color == "auto" && isatty(STDOUT_FILENO));
      return tail_main(to);
    }
    if (verify_cmd->parsed()) {
      auto r = verify_audit_logs(verify_files, chain::VerifyKey::load(verify_key));
      std::cout << describe(r);
      return r.problem ? 1 : 0;
    }
  } catch (const Failure& f) {
    spdlog::error("{}", f.message);
    return f.code;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return kCorralFailed;
  }
  return 0;
}

}  // namespace corral
