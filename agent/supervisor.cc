#include "supervisor.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>
#include <future>
#include <iostream>
#include <thread>

#include "console.h"
#include "decode.h"
#include "redact.h"

namespace corral {

int64_t clock_ns(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

namespace {

AuditLogOptions with_identity(AuditLogOptions o, const HostIdentity& id) {
  o.host = id.host;
  o.boot_id = id.boot_id;
  return o;
}

uint64_t new_session_id() {
  uint64_t id = 0;
  while (id == 0) {
    if (getrandom(&id, sizeof(id), 0) != sizeof(id))
      throw std::runtime_error(std::string("failed to draw a session id: ") + std::strerror(errno));
  }
  return id;
}

constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
constexpr size_t kRingBatch = 4096;
// The audit log's batch is written at this size even between beats.
constexpr size_t kFlushLog = 1u << 20;
// While the log cannot be written: how much is held before sessions end
// (an agent that fills the disk does not get to act unrecorded).
constexpr size_t kMaxHeldLog = 64u << 20;
// The kernel wakes us only when a quarter MiB waits (events.h): the rest is
// read on a beat, 1 ms while records come (small reads keep the loop free
// for file-open decisions: at 5 ms, one open in a hundred waited 300 µs
// behind a beat's records), slowing to 64 ms when idle.
constexpr auto kRingBeatBusy = std::chrono::milliseconds(1);
constexpr auto kRingBeatIdle = std::chrono::milliseconds(64);

}  // namespace

Supervisor::Supervisor(boost::asio::io_context& io, SupervisorOptions options)
    : io_(io),
      options_(std::move(options)),
      host_(host_identity()),
      boot_to_wall_ns_(clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_BOOTTIME)),
      cgroup_root_(find_cgroup2_mount()),
      ring_watch_(io),
      signal_watch_(io),
      ring_timer_(io),
      stats_timer_(io),
      dns_timer_(io),
      spare_timer_(io) {
  if (cgroup_root_.empty())
    throw std::runtime_error("cgroup2 is not mounted (no cgroup2 entry in /proc/self/mountinfo)");

  // While the programs load on this thread (the verifier, ~50 ms cold),
  // another opens the audit log, sweeps what a crashed run left behind,
  // reads the policy, and makes what the first session and the first
  // record would make. Its errors surface at get(), after the load's own.
  struct Ahead {
    std::unique_ptr<AuditLog> log;
    rules::LoadResult policy;
  };
  auto ahead = std::async(std::launch::async, [this] {
    Ahead a;
    a.log = std::make_unique<AuditLog>(with_identity(options_.audit, host_));
    Cgroup::sweep_stale(cgroup_root_);
    SessionLimits::sweep_stale();
    prepare_redaction();
    try {
      prepare_session_init();
    } catch (const std::exception&) {
      // the first session meets it again, and reports it
    }
    a.policy = Enforcer::read(options_.policy_path);
    return a;
  });
  bpf_ = std::make_unique<BpfLoader>([this](std::span<const uint8_t> b) { on_event(b); },
                                     options_.ringbuf_bytes);
  btf_prefault_.finish();
  Ahead done = ahead.get();
  log_ = std::move(done.log);
  last_stats_ = bpf_->read_stats();
  if (options_.keep_egress_attached) {
    keeper_cgroup_ = std::make_unique<Cgroup>(cgroup_root_, std::to_string(::getpid()) + "-keep");
    keeper_links_ = std::make_unique<CgroupLinks>(
        bpf_->attach_egress(keeper_cgroup_->open().get(), keeper_cgroup_->path()));
  }
  enforcer_ = std::make_unique<Enforcer>(*bpf_, options_.policy_path);
  policy_load_ = enforcer_->load(std::move(done.policy));
  if (!policy_load_.accepted()) {
    std::string errors;
    for (const auto& e : policy_load_.errors()) errors += "\n  " + e;
    throw std::runtime_error("the policy has errors, nothing was started:" + errors);
  }

  ring_watch_.assign(bpf_->ring_fd());
  watch_ring();
  poll_ring();
  watch_signals();
  schedule_stats();
  if (options_.keep_spare)
    host_mounts_ = std::make_unique<MountTableWatch>(io_, [this] {
      if (!spare_) return;  // one about to be made is made from the new table
      spdlog::debug("the host's mounts changed: the prepared session is dropped");
      drop_spare();
    });
  dns_channel_ = std::make_shared<DnsChannel>();
  dns_channel_->io = &io_;
  dns_channel_->supervisor = this;
  resolve_hosts();
}

Supervisor::~Supervisor() {
  if (dns_channel_) {
    std::lock_guard lock(dns_channel_->mutex);
    dns_channel_->io = nullptr;
    dns_channel_->supervisor = nullptr;
  }
  sessions_.clear();
  spare_.reset();
  ring_watch_.release();  // the ring buffer owns that fd
  close_log(std::chrono::seconds(0));
}

bool Supervisor::close_log(std::chrono::seconds patience) {
  if (log_lost_) return false;  // said already
  auto give_up = std::chrono::steady_clock::now() + patience;
  for (;;) {
    try {
      log_->close();
      return true;
    } catch (const std::exception& e) {
      if (std::chrono::steady_clock::now() >= give_up) {
        spdlog::error("{}: {} records could not be written and are lost", e.what(), log_->pending());
        log_lost_ = true;
        return false;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

Session& Supervisor::start_session(SessionSpec spec, Session::EndHandler on_end) {
  if (log_failing_ && log_->pending_bytes() >= kMaxHeldLog)
    throw std::runtime_error("the audit log " + log_->path() + " cannot be written (" +
                             std::to_string(log_->pending()) +
                             " records held): no session starts until it can");
  std::unique_ptr<Session> session;
  if (spare_ && host_mounts_->changed()) drop_spare();  // the watch's handler has not run yet
  if (spare_ && spare_->fits(spec, policy_generation(), kSpareMaxAge)) {
    session = std::move(spare_);
    drop_spare();  // its timer
    session->adopt(std::move(spec), std::move(on_end));
  } else {
    if (!spare_) drop_spare();  // one about to be made would be made while this one runs
    session = std::make_unique<Session>(*this, new_session_id(), std::move(spec), std::move(on_end));
  }
  Session& ref = *session;
  const uint64_t id = ref.id();
  const bool prepared = ref.init_pid() != 0;  // a spare
  sessions_.emplace(id, std::move(session));
  try {
    if (!prepared) ref.prepare();
    ref.launch();
  } catch (...) {
    sessions_.erase(id);
    throw;
  }
  announce_policy(policy_load_, ref);
  flush_log();
  return ref;
}

void Supervisor::prepare_spare(SessionSpec like) {
  // Not for a worktree's session: its overlays' upper and work directories
  // are the session's alone, and what lands there is taken in after it.
  if (!options_.keep_spare || !like.overlays.empty()) return;
  if (spare_ && spare_->fits(like, policy_generation(), kSpareMaxAge)) return;
  drop_spare();
  spare_timer_.expires_after(kSparePause);
  spare_timer_.async_wait([this, like = std::make_shared<SessionSpec>(std::move(like)),
                           serial = spare_serial_](const boost::system::error_code& ec) {
    if (!ec && serial == spare_serial_) make_spare(*like);
  });
}

void Supervisor::make_spare(const SessionSpec& like) {
  // Before its namespace copies the host's mounts: a change from now on is
  // one it may not have.
  if (host_mounts_->changed() && !host_mounts_->watching()) return;
  auto spare = std::make_unique<Session>(*this, new_session_id(), setup_of(like), nullptr);
  try {
    spare->prepare();
  } catch (const std::exception& e) {
    // The next request makes its own, and reports what fails.
    spdlog::debug("no spare session: {}", e.what());
    return;
  }
  spare_ = std::move(spare);
  spare_timer_.expires_after(kSpareMaxAge);
  spare_timer_.async_wait([this, serial = ++spare_serial_](const boost::system::error_code& ec) {
    if (!ec && serial == spare_serial_) drop_spare();
  });
}

void Supervisor::stop_spares() {
  options_.keep_spare = false;
  drop_spare();
}

void Supervisor::drop_spare() {
  // A handler already queued is not cancelled: the serial tells it it is
  // out of date.
  spare_timer_.cancel();
  ++spare_serial_;
  if (!spare_) return;
  spare_->retire();
  spare_.reset();
}

void Supervisor::forget_session(uint64_t id) { sessions_.erase(id); }

Session* Supervisor::find_session(uint64_t id) {
  auto it = sessions_.find(id);
  return it == sessions_.end() ? nullptr : it->second.get();
}

void Supervisor::signal_sessions(int signo) {
  for (auto& [id, session] : sessions_) session->on_signal(signo, /*from_kernel=*/false);
}

void Supervisor::kill_sessions() {
  for (auto& [id, session] : sessions_) session->kill();
}

void Supervisor::emit(audit::Record& record) {
  if (record.boot_ns() == 0) record.set_boot_ns(clock_ns(CLOCK_BOOTTIME));
  int64_t wall = static_cast<int64_t>(record.boot_ns()) + boot_to_wall_ns_;
  record.mutable_time()->set_seconds(wall / 1'000'000'000);
  record.mutable_time()->set_nanos(static_cast<int32_t>(wall % 1'000'000'000));
  record.set_host(host_.host);
  record.set_boot_id(host_.boot_id);
  // Before anything leaves: the log, the console and the SOC see it masked.
  if (uint32_t masked = redact(record)) record.set_redacted(record.redacted() + masked);
  log_->append(record);
  if (!log_failing_ && log_->pending_bytes() >= kFlushLog) flush_log();
  if (!options_.quiet) std::cerr << format_record(record) << '\n';
}

void Supervisor::on_event(std::span<const uint8_t> bytes) {
  // One record for every event: Clear() keeps what its strings hold
  // allocated (session, host, boot id), where a new one allocates them anew.
  audit::Record& record = event_record_;
  record.Clear();
  std::string error;
  if (!decode_event(bytes, record, error)) {
    undecodable_++;
    spdlog::warn("undecodable event: {}", error);
    return;
  }
  if (record.has_decision() && record.has_exec()) enforcer_->describe(record);
  uint64_t sid = bytes.size() >= sizeof(corral_event_header)
                     ? reinterpret_cast<const corral_event_header*>(bytes.data())->session_id
                     : 0;
  auto it = sessions_.find(sid);
  if (it != sessions_.end()) {
    it->second->annotate(record);
    it->second->count_record();
  }
  emit(record);
}

void Supervisor::watch_ring() {
  ring_watch_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                         [this](const boost::system::error_code& ec) {
                           if (!ec) read_ring();
                         });
}

void Supervisor::read_ring() {
  // In batches, so that signals, timers and exits are served during a storm.
  bool more = bpf_->consume(kRingBatch);
  flush_log();
  if (more)
    boost::asio::post(io_, [this] { read_ring(); });
  else
    watch_ring();
}

void Supervisor::poll_ring() {
  ring_timer_.expires_after(ring_beat_);
  ring_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    bpf_->consume(kRingBatch);  // a storm's rest: the next beat, or a wakeup
    if (bpf_->consumed()) {
      flush_log();
      ring_beat_ = kRingBeatBusy;
    } else {
      ring_beat_ = std::min<std::chrono::milliseconds>(ring_beat_ * 2, kRingBeatIdle);
    }
    poll_ring();
  });
}

void Supervisor::drain() {
  bpf_->consume();
  audit_losses();
  flush_log();
}

void Supervisor::flush_log() {
  if (log_failing_) {  // the beat tries again
    if (log_->pending_bytes() >= kMaxHeldLog && !sessions_.empty()) kill_sessions();
    return;
  }
  try {
    log_->flush();
  } catch (const std::exception& e) {
    log_failed(e);
  }
}

void Supervisor::log_beat() {
  try {
    log_->flush();
    log_->tick();  // rotation by age, fsync by interval
  } catch (const std::exception& e) {
    log_failed(e);
    return;
  }
  if (log_failing_) {
    log_failing_ = false;
    spdlog::info("audit log {} written again, with every record held", log_->path());
  }
}

void Supervisor::log_failed(const std::exception& e) {
  if (!log_failing_)
    spdlog::error("{}; records are held in memory and written once it can be (tried each "
                  "second; sessions end past {} MiB held)",
                  e.what(), kMaxHeldLog >> 20);
  log_failing_ = true;
  if (log_->pending_bytes() >= kMaxHeldLog && !sessions_.empty()) {
    spdlog::error("audit log {}: {} MiB held unwritten; ending every session", log_->path(),
                  log_->pending_bytes() >> 20);
    kill_sessions();
  }
}

void Supervisor::schedule_stats() {
  stats_timer_.expires_after(options_.stats_interval);
  stats_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;
    // Kernel events carry boot time; the wall clock may have been stepped
    // (NTP at boot, `date -s`) or slewed since the last beat.
    boot_to_wall_ns_ = clock_ns(CLOCK_REALTIME) - clock_ns(CLOCK_BOOTTIME);
    watch_resolvers();
    audit_losses();
    log_beat();
    schedule_stats();
  });
}

void Supervisor::audit_losses() {
  BpfStats now = bpf_->read_stats();
  auto rise = [&](corral_stat s) { return now[s] - last_stats_[s]; };
  audit::EventsLost lost;
  lost.set_ringbuf_dropped(rise(CORRAL_STAT_RINGBUF_DROPPED));
  lost.set_session_map_full(rise(CORRAL_STAT_SESSION_MAP_FULL));
  lost.set_read_errors(rise(CORRAL_STAT_READ_ERROR));
  lost.set_undecodable(undecodable_ - last_undecodable_);
  last_stats_ = now;
  last_undecodable_ = undecodable_;
  if (!lost.ringbuf_dropped() && !lost.session_map_full() &&
      !lost.read_errors() && !lost.undecodable())
    return;
  // The kernel cannot say whose events were lost: every live session
  // hears of it, so none of their trails looks complete when it is not.
  spdlog::warn("kernel events lost: ringbuf_dropped={} session_map_full={} "
               "read_errors={} undecodable={}",
               lost.ringbuf_dropped(), lost.session_map_full(),
               lost.read_errors(), lost.undecodable());
  for (auto& [id, session] : sessions_) {
    audit::Record rec;
    rec.set_session(session->id_string());
    *rec.mutable_lost() = lost;
    session->count_record();
    emit(rec);
  }
}

void Supervisor::resolve_hosts() {
  dns_timer_.cancel();
  auto hosts = enforcer_->hosts();
  if (hosts.empty()) return;
  std::thread([hosts, channel = dns_channel_] {
    std::vector<std::future<Resolved>> lookups;
    for (const auto& h : hosts)
      lookups.push_back(std::async(std::launch::async, [h] { return resolve_host(h); }));
    std::map<std::string, Resolved> answers;
    for (size_t i = 0; i < hosts.size(); i++) answers[hosts[i]] = lookups[i].get();
    std::lock_guard lock(channel->mutex);
    if (!channel->io) return;
    boost::asio::post(*channel->io, [channel, answers = std::move(answers)]() mutable {
      Supervisor* sup = channel->supervisor;  // same thread as the destructor
      if (!sup) return;
      sup->enforcer_->apply_answers(std::move(answers));
      sup->schedule_dns_refresh();
    });
  }).detach();
}

Supervisor::ResolvConfState Supervisor::resolv_conf_state() {
  struct stat st {};
  if (::stat("/etc/resolv.conf", &st) != 0) return {};  // through a symlink (systemd-resolved's)
  return {st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
}

void Supervisor::watch_resolvers() {
  ResolvConfState now = resolv_conf_state();
  if (now == resolv_conf_) return;
  resolv_conf_ = now;
  spdlog::info("/etc/resolv.conf changed: the system resolvers' DNS follows it; the policy's "
               "hosts are asked for again");
  enforcer_->resolvers_changed();
  resolve_hosts();
}

void Supervisor::schedule_dns_refresh() {
  uint32_t seconds = enforcer_->refresh_seconds();
  if (!seconds) return;
  dns_timer_.expires_after(std::chrono::seconds(seconds));
  dns_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) resolve_hosts();
  });
}

void Supervisor::reload_policy() {
  audit::PolicyLoad load = enforcer_->load();
  if (load.accepted()) {
    policy_load_ = load;
    drop_spare();  // prepared under the old policy
    for (auto& [id, session] : sessions_) session->apply_policy();
    resolve_hosts();
    spdlog::info("policy reloaded: generation {}: {}", load.generation(), load.summary());
  } else {
    for (const auto& e : load.errors()) spdlog::error("policy reload refused: {}", e);
  }
  for (auto& [id, session] : sessions_) announce_policy(load, *session);
  flush_log();
}

void Supervisor::announce_policy(const audit::PolicyLoad& load, Session& session) {
  session.count_record();
  audit::Record rec;
  rec.set_session(session.id_string());
  *rec.mutable_policy_load() = load;
  emit(rec);
}

void Supervisor::watch_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kSignals) sigaddset(&set, s);
  // Blocked here, received through the loop; the agent unblocks them.
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (fd < 0) throw std::runtime_error(std::string("failed to create signalfd: ") + std::strerror(errno));
  signal_watch_.assign(fd);
  wait_signals();
}

void Supervisor::wait_signals() {
  signal_watch_.async_wait(boost::asio::posix::stream_descriptor::wait_read,
                           [this](const boost::system::error_code& ec) {
                             if (ec) return;
                             signalfd_siginfo info;
                             while (::read(signal_watch_.native_handle(), &info, sizeof(info)) ==
                                    sizeof(info)) {
                               bool from_kernel = info.ssi_code == SI_KERNEL;
                               // SIGHUP sent to corral means "reload"; the
                               // terminal's hangup is the agent's to handle
                               if (info.ssi_signo == SIGHUP && !from_kernel) {
                                 reload_policy();
                                 continue;
                               }
                               int signo = static_cast<int>(info.ssi_signo);
                               if (stop_handler_ && (signo == SIGINT || signo == SIGTERM)) {
                                 stop_handler_(signo);
                                 continue;
                               }
                               for (auto& [id, session] : sessions_)
                                 session->on_signal(signo, from_kernel);
                             }
                             wait_signals();
                           });
}

}  // namespace corral
