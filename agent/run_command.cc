#include "run_command.h"

#include <filesystem>
#include <stdexcept>

#include "control.h"
#include "limit_spec.h"

extern char** environ;

namespace corral {

void AuditFlags::add_to(CLI::App* cmd) {
  cmd->add_option("--audit", path, "audit log (hash-chained JSON lines)")->capture_default_str();
  cmd->add_option("--audit-key", key,
                  "Ed25519 key signing the log's checkpoints (created when missing; the public "
                  "half is KEY.pub)")
      ->capture_default_str();
  cmd->add_option("--audit-fsync", fsync,
                  "never | interval (fdatasync once a second) | always (after every batch)")
      ->capture_default_str()
      ->check(CLI::IsMember({"never", "interval", "always"}));
  cmd->add_option("--checkpoint-every", checkpoint_every, "records between signed checkpoints")
      ->capture_default_str()
      ->check(CLI::Range(1u, 10'000'000u));
  cmd->add_option("--audit-max-mib", max_mib, "rotate the log at this size")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 20));
  cmd->add_option("--audit-max-age", max_age_hours, "rotate the log at this age, hours")
      ->capture_default_str()
      ->check(CLI::Range(0.001, 24.0 * 366));
}

CLI::App* add_run_command(CLI::App& app, RunOptions& o) {
  auto* run_cmd = app.add_subcommand("run", "run a command as a guarded session");
  o.audit.add_to(run_cmd);
  run_cmd->add_flag("--quiet,-q", o.quiet, "no live event lines on stderr");
  run_cmd->add_option("--user", o.user, "run the command as USER (default: the sudo caller)");
  run_cmd->add_flag("--allow-root", o.allow_root, "allow the command to run as root");
  run_cmd->add_option("--ring-mib", o.ringbuf_mib, "kernel ring buffer size, MiB (power of 2)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 1024u));
  run_cmd->add_option("--linger", o.linger_seconds,
                      "seconds processes left by the agent may run on before they are killed")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 3600.0));
  run_cmd->add_option("--timeout", o.timeout_seconds,
                      "kill the session after this many seconds (0: never)")
      ->check(CLI::Range(0.0, 30.0 * 24 * 3600));
  run_cmd->add_option("--max-pids", o.max_pids, "tasks (threads included) the session may have")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 22));
  run_cmd->add_option("--max-memory-mib", o.max_memory_mib,
                      "memory the session may use, MiB (beyond it the kernel's OOM killer acts "
                      "inside the session)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 30));
  run_cmd->add_option("--max-open-files", o.max_open_files, "open files per process (RLIMIT_NOFILE)")
      ->check(CLI::Range(uint64_t{0}, uint64_t{1} << 30));
  run_cmd->add_option("--net", o.net,
                      "allow: the policy's egress allowlist; none: loopback only (a network "
                      "namespace of its own); host: unrestricted, connects only recorded")
      ->capture_default_str()
      ->check(CLI::IsMember({"allow", "none", "host"}));
  auto* wt_opt = run_cmd->add_option(
      "--worktree", o.worktree,
      "run in the git worktree NAME (branch corral/NAME, outside your checkout), made or resumed");
  run_cmd->add_option("--base", o.base, "what a new --worktree starts from (default: HEAD)")
      ->needs(wt_opt);
  run_cmd->add_option("--worktrees-dir", o.worktrees_dir,
                      "where new worktrees go (default: ~/.local/share/corral/worktrees)")
      ->needs(wt_opt);
  run_cmd->add_option("--policy", o.policy,
                      "policy file (default: the shipped one; `extends: default` builds on it); "
                      "SIGHUP to corral reloads it");
  run_cmd->add_option("--daemon-socket", o.daemon_socket,
                      std::string("run in the corral daemon listening here (default: in the one "
                                  "at ") + kDefaultControlSocket + " if it runs, else embedded)");
  run_cmd->add_flag("--embedded", o.embedded,
                    "load the kernel programs in this run even when a daemon runs");
  run_cmd->add_option("command", o.command, "the command and its arguments, after --")
      ->required();
  return run_cmd;
}

void note_embedded_flags(const CLI::App& run_cmd, RunOptions& o) {
  for (const char* flag : {"--audit", "--audit-key", "--audit-fsync", "--checkpoint-every",
                           "--audit-max-mib", "--audit-max-age", "--ring-mib", "--policy"})
    if (run_cmd.get_option(flag)->count()) o.embedded_flags.push_back(flag);
}

RunContext RunContext::ours() {
  RunContext ctx;
  for (char** e = environ; e && *e; e++) ctx.env.emplace_back(*e);
  ctx.cwd = std::filesystem::current_path();
  return ctx;
}

const char* RunContext::get(std::string_view name) const {
  for (const auto& kv : env)
    if (kv.size() > name.size() && kv[name.size()] == '=' && kv.starts_with(name))
      return kv.c_str() + name.size() + 1;
  return nullptr;
}

Credentials run_credentials(const RunOptions& o, const RunContext& ctx) {
  Credentials creds;
  try {
    creds = resolve_credentials(o.user, ctx.get("SUDO_UID"), ctx.get("SUDO_GID"));
  } catch (const std::exception& e) {
    throw Failure{kCorralFailed, e.what()};
  }
  if (creds.uid == 0 && !o.allow_root)
    throw Failure{kCorralFailed,
                  "refusing to run the agent as root: run corral with sudo from your own account, "
                  "or pass --user USER (or --allow-root if you really mean it)"};
  return creds;
}

std::string run_executable(const RunOptions& o, const RunContext& ctx) {
  const char* path_env = ctx.get("PATH");
  // Where the user typed it, whatever the session's directory.
  auto exe = find_executable(o.command.front(), path_env ? path_env : "/usr/bin:/bin", ctx.cwd);
  if (!exe) throw Failure{kNotFound, "command not found: " + o.command.front()};
  return *exe;
}

control::RunRequest run_request(const RunOptions& o, const Credentials& creds,
                                const std::string& exe, const RunContext& ctx) {
  LimitSpec limits;
  if (o.max_pids) limits.max_pids = o.max_pids;
  if (o.max_memory_mib) limits.max_memory_bytes = o.max_memory_mib << 20;
  if (o.max_open_files) limits.max_open_files = o.max_open_files;
  try {
    validate_limits(limits);
  } catch (const std::invalid_argument& e) {
    throw Failure{kCorralFailed, e.what()};
  }
  control::RunRequest r;
  r.set_exe(exe);
  for (const auto& a : o.command) r.add_argv(a);
  for (const auto& e : agent_environment(ctx.env, creds)) r.add_env(e);
  r.set_cwd(ctx.cwd);
  r.set_uid(creds.uid);
  r.set_gid(creds.gid);
  r.set_user(creds.name);
  r.set_home(creds.home);
  r.set_net(o.net);
  r.set_max_pids(limits.max_pids.value_or(0));
  r.set_max_memory_bytes(limits.max_memory_bytes.value_or(0));
  r.set_max_open_files(limits.max_open_files.value_or(0));
  r.set_timeout_seconds(o.timeout_seconds);
  r.set_linger_seconds(o.linger_seconds);
  return r;
}

InvocationReader::InvocationReader(std::string socket)
    : socket_(std::move(socket)), run_cmd_(add_run_command(app_, o_)) {}

std::optional<control::RunRequest> InvocationReader::request(const control::Invocation& inv) {
  if (inv.args_size() == 0 || inv.args(0) != "run" || !inv.cwd().starts_with("/"))
    return std::nullopt;
  // The flags' variables keep their addresses (the parser's bindings), and
  // their defaults again.
  o_ = RunOptions{};
  app_.clear();
  std::vector<const char*> argv = {"corral"};
  for (const auto& a : inv.args()) argv.push_back(a.c_str());
  try {
    app_.parse(static_cast<int>(argv.size()), argv.data());
    note_embedded_flags(*run_cmd_, o_);
    if (o_.embedded || !o_.worktree.empty() || !o_.embedded_flags.empty() ||
        (o_.daemon_socket.empty() ? kDefaultControlSocket : o_.daemon_socket) != socket_)
      return std::nullopt;
    RunContext ctx{{inv.env().begin(), inv.env().end()}, inv.cwd()};
    control::RunRequest r = run_request(o_, run_credentials(o_, ctx), run_executable(o_, ctx), ctx);
    r.set_terminal(inv.terminal());
    return r;
  } catch (...) {  // --help, a parse error, a Failure: corral-core says it
    return std::nullopt;
  }
}

}  // namespace corral
