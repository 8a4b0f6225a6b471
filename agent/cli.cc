#include "cli.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "cgroup2.h"
#include "check.h"
#include "process.h"
#include "supervisor.h"

extern char** environ;

namespace corral {
namespace {

constexpr int kCorralFailed = 125;
constexpr int kCannotRun = 126;
constexpr int kNotFound = 127;
constexpr const char* kDefaultAudit = "/var/log/corral/audit.jsonl";

struct RunOptions {
  std::string audit = kDefaultAudit;
  bool quiet = false;
  std::string user;
  bool allow_root = false;
  uint32_t ringbuf_mib = 16;
  double linger_seconds = 2;
  std::string policy;
  std::vector<std::string> command;
};

struct Failure {
  int code;
  std::string message;
};

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

int run(const RunOptions& o) {
  preflight(o);

  Credentials creds;
  try {
    creds = resolve_credentials(o.user, std::getenv("SUDO_UID"), std::getenv("SUDO_GID"));
  } catch (const std::exception& e) {
    throw Failure{kCorralFailed, e.what()};
  }
  if (creds.uid == 0 && !o.allow_root)
    throw Failure{kCorralFailed,
                  "refusing to run the agent as root: run corral with sudo from your own account, "
                  "or pass --user USER (or --allow-root if you really mean it)"};

  const char* path_env = std::getenv("PATH");
  auto exe = find_executable(o.command.front(), path_env ? path_env : "/usr/bin:/bin");
  if (!exe) throw Failure{kNotFound, "command not found: " + o.command.front()};

  if (o.audit == kDefaultAudit) std::filesystem::create_directories("/var/log/corral");

  boost::asio::io_context io;
  SupervisorOptions sopts;
  sopts.audit_path = o.audit;
  sopts.quiet = o.quiet;
  sopts.ringbuf_bytes = o.ringbuf_mib << 20;
  sopts.policy_path = o.policy;
  std::unique_ptr<Supervisor> sup;
  try {
    sup = std::make_unique<Supervisor>(io, sopts);
  } catch (const std::exception& e) {
    throw Failure{kCorralFailed, e.what()};
  }

  SessionSpec spec;
  spec.exe = *exe;
  spec.argv = o.command;
  spec.env = agent_environment(environ, creds);
  spec.creds = creds;
  spec.cwd = std::filesystem::current_path();
  spec.linger = std::chrono::milliseconds(static_cast<int64_t>(o.linger_seconds * 1000));

  int exit_code = kCorralFailed;
  try {
    sup->start_session(std::move(spec), [&](int code) {
      exit_code = code;
      io.stop();
    });
  } catch (const std::exception& e) {
    throw Failure{kCannotRun, e.what()};
  }
  io.run();
  return exit_code;
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
  auto* run_cmd = app.add_subcommand("run", "run a command as a guarded session");
  run_cmd->add_option("--audit", ro.audit, "audit log (JSON lines)")->capture_default_str();
  run_cmd->add_flag("--quiet,-q", ro.quiet, "no live event lines on stderr");
  run_cmd->add_option("--user", ro.user, "run the command as USER (default: the sudo caller)");
  run_cmd->add_flag("--allow-root", ro.allow_root, "allow the command to run as root");
  run_cmd->add_option("--ring-mib", ro.ringbuf_mib, "kernel ring buffer size, MiB (power of 2)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1024u));
  run_cmd->add_option("--linger", ro.linger_seconds,
                      "seconds processes left by the agent may run on before they are killed")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  run_cmd->add_option("--policy", ro.policy,
                      "policy file (default: the shipped one; `extends: default` builds on it); "
                      "SIGHUP to corral reloads it");
  run_cmd->add_option("command", ro.command, "the command and its arguments, after --")
      ->required();

  auto* policy_cmd = app.add_subcommand("policy", "work with policy files");
  policy_cmd->require_subcommand(1);
  std::string check_path;
  auto* check_cmd = policy_cmd->add_subcommand("check", "validate a policy file");
  check_cmd->add_option("file", check_path, "the policy file")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  spdlog::set_level(spdlog::level::from_str(log_level));

  try {
    if (run_cmd->parsed()) return run(ro);
    if (check_cmd->parsed()) return rules::policy_check(check_path, std::cout, std::cerr);
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
