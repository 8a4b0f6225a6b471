#include "session.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>


#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <utility>

#include "decode.h"
#include "mnt.h"
#include "procfs.h"
#include "supervisor.h"

namespace corral {
namespace {

constexpr auto kSignalGrace = std::chrono::seconds(5);
// Until the init has no child left, a fallback; after, the moment the last
// of them leave the cgroup.
constexpr auto kEmptyPoll = std::chrono::milliseconds(50);
constexpr auto kEmptyPollAfterInit = std::chrono::milliseconds(1);
constexpr auto kEmptyDeadline = std::chrono::seconds(10);
constexpr auto kLimitsPoll = std::chrono::seconds(1);

std::string node_name() {
  utsname u{};
  ::uname(&u);
  return u.nodename;
}

}  // namespace

SessionSpec from_request(const control::RunRequest& r) {
  auto bad = [](const std::string& field, const std::string& why) {
    return std::invalid_argument("run request: " + field + ": " + why);
  };
  if (!r.exe().starts_with("/")) throw bad("exe", "not an absolute path: '" + r.exe() + "'");
  // C strings on their way to the agent and the kernel: a NUL inside
  // would split an argument, or cut a path short
  auto no_nul = [&](const std::string& field, const std::string& v) {
    if (v.find('\0') != std::string::npos) throw bad(field, "contains a NUL byte");
  };
  no_nul("exe", r.exe());
  for (const auto& a : r.argv()) no_nul("argv", a);
  for (const auto& e : r.env()) no_nul("env", e);
  no_nul("cwd", r.cwd());
  no_nul("home", r.home());
  for (const auto& w : r.writable()) no_nul("writable", w);
  for (const auto& o : r.overlays())
    for (const std::string* p : {&o.target(), &o.upper(), &o.work()}) no_nul("overlays", *p);
  if (r.argv().empty()) throw bad("argv", "no command");
  if (!r.cwd().starts_with("/")) throw bad("cwd", "not an absolute path: '" + r.cwd() + "'");
  if (!r.home().starts_with("/")) throw bad("home", "not an absolute path: '" + r.home() + "'");
  for (const auto& w : r.writable())
    if (!w.starts_with("/")) throw bad("writable", "not an absolute path: '" + w + "'");
  auto seconds = [&](double s, const char* field) {
    if (!(s >= 0 && s <= 366.0 * 24 * 3600)) throw bad(field, "out of range");
    return std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
  };
  SessionSpec spec;
  spec.exe = r.exe();
  spec.argv.assign(r.argv().begin(), r.argv().end());
  spec.env.assign(r.env().begin(), r.env().end());
  spec.cwd = r.cwd();
  spec.creds.uid = r.uid();
  spec.creds.gid = r.gid();
  spec.creds.name = r.user();
  spec.creds.groups = supplementary_groups(spec.creds.name, spec.creds.gid);
  spec.creds.home = r.home();
  spec.writable.assign(r.writable().begin(), r.writable().end());
  for (const auto& o : r.overlays()) {
    for (const std::string* p : {&o.target(), &o.upper(), &o.work()})
      // the overlay's mount options are a comma-separated list
      if (!p->starts_with("/") || p->find_first_of(",:\\") != std::string::npos)
        throw bad("overlays", "not an absolute path free of ',', ':' and '\\': '" + *p + "'");
    spec.overlays.push_back({o.target(), o.upper(), o.work()});
  }
  spec.worktree = r.worktree();
  spec.terminal = r.terminal();
  if (r.net() == "allow") spec.net = NetMode::kAllow;
  else if (r.net() == "none") spec.net = NetMode::kNone;
  else if (r.net() == "host") spec.net = NetMode::kHost;
  else throw bad("net", "'" + r.net() + "' is not allow, none or host");
  if (r.max_pids()) spec.limits.max_pids = r.max_pids();
  if (r.max_memory_bytes()) spec.limits.max_memory_bytes = r.max_memory_bytes();
  if (r.max_open_files()) spec.limits.max_open_files = r.max_open_files();
  validate_limits(spec.limits);
  spec.timeout = seconds(r.timeout_seconds(), "timeout_seconds");
  spec.linger = seconds(r.linger_seconds(), "linger_seconds");
  return spec;
}

SessionSpec setup_of(const SessionSpec& spec) {
  SessionSpec s;
  s.creds = spec.creds;
  s.cwd = spec.cwd;
  s.writable = spec.writable;
  s.overlays = spec.overlays;
  s.net = spec.net;
  s.limits = spec.limits;
  return s;
}

Session::Session(Supervisor& supervisor, uint64_t id, SessionSpec spec, EndHandler on_end)
    : sup_(supervisor),
      id_(id),
      id_string_(session_id_string(id)),
      spec_(std::move(spec)),
      on_end_(std::move(on_end)),
      status_watch_(supervisor.io()),
      exec_watch_(supervisor.io()),
      timer_(supervisor.io()),
      grace_timer_(supervisor.io()),
      limits_timer_(supervisor.io()),
      timeout_timer_(supervisor.io()) {}

Session::~Session() {
  status_watch_.close();
  exec_watch_.close();
  uint64_t cgroup_id = cgroup_ ? cgroup_->id() : 0;
  // A start that failed after the agent was released: its processes die
  // before the guard's group closes (which allows whatever is pending).
  if (cgroup_ && child_) {
    try {
      cgroup_->kill();
    } catch (const std::exception& e) {
      spdlog::warn("session {}: {}", id_string_, e.what());
    }
  }
  file_guard_.reset();
  seccomp_.reset();
  egress_links_.reset();
  child_.reset();   // kills a child never released
  cgroup_.reset();  // kills what is left, removes the directory
  limits_.reset();  // after: v1 groups are removed once empty
  if (registered_) {
    try {
      sup_.bpf().remove_session(id_, cgroup_id);
    } catch (const std::exception& e) {
      spdlog::warn("session {}: {}", id_string_, e.what());
    }
  }
}

void Session::prepare() {
  prepared_boot_ns_ = clock_ns(CLOCK_BOOTTIME);
  node_name_ = node_name();  // before the UTS namespace copies it
  generation_ = sup_.policy_generation();
  const std::string name = std::to_string(::getpid()) + "-" + id_string_;
  cgroup_ = std::make_unique<Cgroup>(sup_.cgroup_root(), name);
  // A limit asked for and not enforceable stops the session here.
  limits_ = std::make_unique<SessionLimits>(sup_.cgroup_root(), name, spec_.limits);
  UniqueFd dir = cgroup_->open();
  if (spec_.net != NetMode::kHost)
    egress_links_ = std::make_unique<CgroupLinks>(sup_.bpf().attach_egress(dir.get(), cgroup_->path()));

  ExistingFiles existing;  // one walk of the trees, for the plan and the guard
  inputs_ = std::make_unique<PathStates>();
  MountPlan mounts = session_mounts(sup_.policy(), spec_.creds.home, spec_.cwd, spec_.writable,
                                    &existing, inputs_.get());
  mounts.overlays = spec_.overlays;
  child_ = std::make_unique<SessionInit>(spec_.creds, mounts, session_rlimits(spec_.limits),
                                         spec_.net, dir.get());
  seccomp_ = std::make_unique<SeccompListener>(
      sup_.io(), ::dup(child_->notify_fd()), [this](audit::Record& r) {
        // The kernel names the thread; the rest of the process from /proc.
        if (auto st = read_proc_status(static_cast<pid_t>(r.process().tid()))) {
          auto* p = r.mutable_process();
          p->set_comm(st->comm);
          p->set_pid(static_cast<uint32_t>(st->tgid));
          p->set_ppid(static_cast<uint32_t>(st->ppid));
          p->set_uid(st->uid);
          p->set_gid(st->gid);
        }
        r.set_session(id_string_);
        r.mutable_decision()->set_policy_generation(sup_.policy_generation());
        count_record();
        sup_.emit(r);
      });
  // Every mount the agent will see is marked before it runs.
  file_guard_ = std::make_unique<FileGuard>(sup_.io(), child_->pid(), spec_.creds, spec_.cwd,
                                            sup_.path_matchers(spec_.creds.home),
                                            [this](audit::Record& r) {
                                              r.set_session(id_string_);
                                              count_record();
                                              sup_.emit(r);
                                            },
                                            &existing);
  limits_->add_pid(child_->pid());
}

bool Session::fits(const SessionSpec& s, uint32_t generation,
                   std::chrono::steady_clock::duration max_age) const {
  const SessionSpec& p = spec_;
  return child_ && !launched_ && child_->running() && generation == generation_ &&
         std::chrono::nanoseconds(clock_ns(CLOCK_BOOTTIME) - prepared_boot_ns_) < max_age &&
         s.creds.uid == p.creds.uid &&
         s.creds.gid == p.creds.gid && s.creds.groups == p.creds.groups &&
         s.creds.home == p.creds.home && s.cwd == p.cwd && s.writable == p.writable &&
         s.overlays == p.overlays && s.net == p.net && s.limits == p.limits &&
         node_name_ == node_name() && inputs_->unchanged();
}

void Session::adopt(SessionSpec spec, EndHandler on_end) {
  spec_ = std::move(spec);
  on_end_ = std::move(on_end);
}

void Session::launch() {
  launched_ = true;
  started_ = std::chrono::steady_clock::now();
  // Only now: the init's own exec of corral-init, in the cgroup, is not the
  // agent's and belongs in no record; nor does an init prepared for a
  // session that never came.
  sup_.bpf().add_session(id_, cgroup_->id());
  registered_ = true;
  // Before release: the kernel sees the agent as a member from its first
  // instruction, through its task entry and through the cgroup (the init
  // was born in it).
  sup_.bpf().add_session_task(id_, child_->pidfd(), /*quiet=*/true);

  audit::Record rec;
  rec.set_session(id_string_);
  auto* s = rec.mutable_session_start();
  for (const auto& a : spec_.argv) s->add_command(a);
  s->set_cwd(spec_.cwd);
  s->set_worktree(spec_.worktree);
  s->set_net(spec_.net == NetMode::kNone ? "none" : spec_.net == NetMode::kHost ? "host" : "allow");
  s->set_uid(spec_.creds.uid);
  s->set_gid(spec_.creds.gid);
  s->set_user(spec_.creds.name);
  s->set_cgroup(cgroup_->path());
  s->set_pid(child_->pid());
  auto* l = s->mutable_limits();
  l->set_max_pids(spec_.limits.max_pids.value_or(0));
  l->set_max_memory_bytes(spec_.limits.max_memory_bytes.value_or(0));
  l->set_max_open_files(spec_.limits.max_open_files.value_or(0));
  l->set_timeout_seconds(std::chrono::duration<double>(spec_.timeout).count());
  count_record();
  sup_.emit(rec);

  file_guard_->expect_start();
  child_->release(spec_.exe, spec_.argv, spec_.env,
                  spec_.stdio.size() == 3 ? std::array<int, 3>{spec_.stdio[0].get(), spec_.stdio[1].get(),
                                                               spec_.stdio[2].get()}
                                          : std::array<int, 3>{-1, -1, -1},
                  spec_.terminal);
  spec_.stdio.clear();  // the init has its copies
  exec_watch_.assign(::dup(child_->exec_result_fd()));
  exec_watch_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                         [this](const boost::system::error_code& ec) {
                           if (!ec && !ended_) report_exec_error();
                         });
  status_watch_.assign(::dup(child_->status_fd()));
  watch_main();
  if (spec_.limits.max_pids || spec_.limits.max_memory_bytes) watch_limits();
  if (spec_.timeout.count() > 0) {
    timeout_timer_.expires_after(spec_.timeout);
    timeout_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || ended_) return;
      timed_out_ = true;
      spdlog::warn("session {}: timeout of {:.1f}s reached; killing the session", id_string_,
                   std::chrono::duration<double>(spec_.timeout).count());
      audit::Record rec;
      rec.set_session(id_string_);
      rec.mutable_limit()->set_resource("time");
      rec.mutable_limit()->set_count(1);
      rec.mutable_limit()->set_current(
          static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(spec_.timeout).count()));
      count_record();
      sup_.emit(rec);
      cgroup_->kill();
    });
  }
}

void Session::watch_limits() {
  limits_timer_.expires_after(kLimitsPoll);
  limits_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || ended_) return;
    check_limits();
    watch_limits();
  });
}

void Session::check_limits() {
  SessionLimits::Usage now;
  try {
    now = limits_->read();
  } catch (const std::exception& e) {
    spdlog::warn("session {}: {}", id_string_, e.what());
    return;
  }
  auto record = [&](const char* resource, uint64_t count, uint64_t current) {
    audit::Record rec;
    rec.set_session(id_string_);
    rec.mutable_limit()->set_resource(resource);
    rec.mutable_limit()->set_count(count);
    rec.mutable_limit()->set_current(current);
    count_record();
    sup_.emit(rec);
  };
  if (now.pids_max_hits > limits_seen_.pids_max_hits)
    record("pids", now.pids_max_hits - limits_seen_.pids_max_hits, now.pids_current);
  if (now.oom_kills > limits_seen_.oom_kills)
    record("memory", now.oom_kills - limits_seen_.oom_kills, now.memory_peak_bytes);
  limits_seen_ = now;
}

void Session::watch_main() {
  status_watch_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                           [this](const boost::system::error_code& ec) {
                             if (ec == boost::asio::error::operation_aborted) return;
                             on_main_exit();
                           });
}

void Session::on_main_exit() {
  int status = SIGKILL;  // an init that died first took the agent with it
  try {
    status = child_->read_agent_status();
  } catch (const std::exception& e) {
    spdlog::warn("session {}: {}", id_string_, e.what());
  }
  report_exec_error();  // final now, even if its watch has not run yet
  exit_code_ = shell_exit_code(status);
  exit_signal_ = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  grace_timer_.cancel();

  watch_init_idle();
  // Background work the agent started may finish within the linger time;
  // after it, nothing of the session may run on unwatched.
  await_empty(std::chrono::steady_clock::now() + spec_.linger, true);
}

void Session::report_exec_error() {
  if (int e = child_->exec_error())  // once: the pipe is gone after
    spdlog::error("session {}: failed to start {}: {}", id_string_, spec_.exe, std::strerror(e));
}

void Session::watch_init_idle() {
  status_watch_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                           [this](const boost::system::error_code& ec) {
                             if (ec || ended_) return;
                             char byte;
                             ssize_t n = ::read(status_watch_.native_handle(), &byte, 1);
                             if (n < 0 && errno == EINTR) return watch_init_idle();
                             init_idle_ = true;  // no child left, or gone (EOF)
                             if (n > 0) watch_init_idle();
                             timer_.cancel();
                             await_empty(empty_deadline_, kill_at_deadline_);
                           });
}

bool Session::only_init_left() const {
  for (pid_t p : cgroup_->pids())
    if (p != child_->pid()) return false;
  return true;
}

void Session::await_empty(std::chrono::steady_clock::time_point deadline, bool kill_at_deadline) {
  if (ended_) return;
  empty_deadline_ = deadline;
  kill_at_deadline_ = kill_at_deadline;
  // The init only reaps: once it is alone, every event of the session is
  // in the ring, and its own exit (the namespace's unmounting) is the
  // reaper's to wait for.
  if (only_init_left()) {
    finish();
    return;
  }
  if (std::chrono::steady_clock::now() >= deadline) {
    if (!kill_at_deadline) {
      spdlog::error("session {}: cgroup {} still populated after kill", id_string_,
                    cgroup_->path());
      finish();
      return;
    }
    auto left = cgroup_->pids();
    leftovers_killed_ = left.size() - std::count(left.begin(), left.end(), child_->pid());
    spdlog::info("session {}: killing {} process(es) left after the agent exited", id_string_,
                 leftovers_killed_);
    cgroup_->kill();
    await_empty(std::chrono::steady_clock::now() + kEmptyDeadline, false);
    return;
  }
  timer_.expires_after(std::min<std::chrono::steady_clock::duration>(
      init_idle_ ? kEmptyPollAfterInit : kEmptyPoll, deadline - std::chrono::steady_clock::now()));
  timer_.async_wait([this, deadline, kill_at_deadline](const boost::system::error_code& ec) {
    if (!ec) await_empty(deadline, kill_at_deadline);
  });
}

void Session::finish() {
  if (ended_) return;
  ended_ = true;
  // Every member but the quiet init has exited, so every event of the
  // session is in the ring, and every decision of its file guard made.
  sup_.drain();
  file_guard_->stop();

  audit::Record rec;
  rec.set_session(id_string_);
  auto* e = rec.mutable_session_end();
  e->set_exit_code(exit_code_);
  e->set_signal(exit_signal_);
  e->set_leftover_processes_killed(leftovers_killed_);
  e->set_duration_seconds(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
  if (spec_.limits.max_pids || spec_.limits.max_memory_bytes) {
    check_limits();  // what the last poll did not see yet
    auto* u = e->mutable_usage();
    u->set_pids_peak(limits_seen_.pids_peak);
    u->set_pids_max_hits(limits_seen_.pids_max_hits);
    u->set_memory_peak_bytes(limits_seen_.memory_peak_bytes);
    u->set_oom_kills(limits_seen_.oom_kills);
  }
  e->set_timed_out(timed_out_);
  const FanotifyGuard::Stats guarded = file_guard_->stats();
  auto* g = e->mutable_file_guard();
  g->set_asked(guarded.events);
  g->set_denied(guarded.denied);
  g->set_cached(guarded.cached);
  g->set_errors(guarded.errors);
  e->set_records(records_ + 1);
  sup_.emit(rec);
  sup_.drain();  // the end on disk before anyone hears of it
  limits_timer_.cancel();
  timeout_timer_.cancel();

  // The verdict before the teardown, which changes nothing the caller could
  // see: no process of the session runs any more.
  boost::asio::post(sup_.io(), [sup = &sup_, id = id_] { sup->forget_session(id); });
  if (auto on_end = std::move(on_end_)) on_end(exit_code_);
  sup_.prepare_spare(setup_of(spec_));

  retire();
}

void Session::retire() {
  seccomp_.reset();
  const bool registered = std::exchange(registered_, false);
  // What waits on the kernel goes to the reaper, in this order: the
  // session's kernel registration (its ports' removal walks a 64k-bucket
  // map), the init's exit (its namespace's unmounting), the fanotify
  // group's close (an SRCU grace period), the links, then the emptied
  // cgroups' removal. The supervisor's BPF maps outlive its reaper.
  struct Remains {
    std::unique_ptr<SessionInit> init;
    UniqueFd group;
    std::unique_ptr<CgroupLinks> links;
    std::unique_ptr<Cgroup> cgroup;
    std::unique_ptr<SessionLimits> limits;
  };
  auto rest = std::make_shared<Remains>(Remains{std::move(child_), file_guard_->take_group(),
                                                std::move(egress_links_), std::move(cgroup_),
                                                std::move(limits_)});
  file_guard_.reset();
  sup_.reaper().post([rest, bpf = &sup_.bpf(), id = id_, registered] {
    if (registered) bpf->remove_session(id, rest->cgroup->id());
    rest->init->reap();
    rest->group.reset();
    rest->links.reset();
    rest->cgroup.reset();
    rest->limits.reset();
  });
}

void Session::apply_policy() {
  if (file_guard_ && !ended_) file_guard_->apply(sup_.path_matchers(spec_.creds.home));
}

void Session::forward_signal(int signo) {
  if (!ended_ && child_) child_->signal_agent(signo);
}

void Session::kill() {
  if (!ended_ && cgroup_) cgroup_->kill();
}

void Session::on_signal(int signo, bool from_kernel) {
  if (ended_ || !child_) return;
  if (!from_kernel) {
    spdlog::info("session {}: passing signal {} to the agent", id_string_, signo);
    child_->signal_agent(signo);
  }
  // Only when someone asked corral itself to stop: the terminal's Ctrl-C is
  // the agent's to interpret (many agents cancel a step and go on).
  if (!from_kernel) {
    grace_timer_.expires_after(kSignalGrace);
    grace_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec || ended_) return;
      spdlog::warn("session {}: agent still running {}s after a signal; killing the session",
                   id_string_, kSignalGrace.count());
      cgroup_->kill();
    });
  }
}

}  // namespace corral
