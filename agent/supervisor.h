// The supervisor: one Boost.Asio loop that owns the kernel programs, reads
// their ring buffer through its epoll fd, turns events into audit records,
// and hosts the sessions. No globals: a daemon can host many.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "audit.pb.h"
#include "audit_log.h"
#include "bpf_loader.h"
#include "enforcer.h"
#include "mountinfo.h"
#include "session.h"
#include "reaper.h"

namespace corral {

struct SupervisorOptions {
  AuditLogOptions audit;  // host and boot_id are filled in by the supervisor
  bool quiet = false;  // no live lines on stderr
  uint32_t ringbuf_bytes = 16u << 20;
  std::string policy_path;  // empty: the shipped default
  std::chrono::milliseconds stats_interval{1000};
  // Keep the egress programs attached to an empty cgroup of our own for the
  // supervisor's life (a daemon's): the kernel turns its per-hook static
  // keys on at the first attach and off at the last detach, patching code on
  // every CPU with IPIs each time; kept on, a session's attach and detach
  // cost a fraction (~0.3 ms and the other CPU's disturbance per session).
  bool keep_egress_attached = false;
  // Keep one session prepared (a daemon's): as each session ends, the
  // next one's cgroup, namespaces, mounts, init and guard are made while
  // nobody waits, for the same user, directories, network and limits; a
  // request that matches only registers it and releases its agent. It is
  // used only while every path its mounts and its guard's scan for
  // existing files read (the project and each directory walked, the
  // writable, hidden and read-only paths) is as it was, while the host's
  // mount table is (MountTableWatch: it is dropped at the change), under
  // the same policy, and for at most kSpareMaxAge.
  bool keep_spare = false;
};

// Each input a spare was made from is checked at its use; the bound is for
// what no check sees. On CLOCK_BOOTTIME: a laptop's suspension counts.
constexpr std::chrono::minutes kSpareMaxAge{10};
constexpr std::chrono::milliseconds kSparePause{1};

// `clock` now, in ns.
int64_t clock_ns(clockid_t clock);

class Supervisor {
 public:
  // Opens the audit log, loads and attaches the kernel programs, sweeps
  // cgroups that dead supervisors left. Throws with the failing step.
  Supervisor(boost::asio::io_context& io, SupervisorOptions options);
  ~Supervisor();

  // Starts a session; `on_end` runs once it has ended and been recorded.
  Session& start_session(SessionSpec spec, Session::EndHandler on_end);

  // Stamps host, boot and time, masks secrets, writes and shows a record.
  void emit(audit::Record& record);
  // Reads every waiting event now and audits any new loss.
  void drain();
  // Writes what the audit log holds and seals it, trying again for up to
  // `patience` while it fails; false (and said) when records are lost.
  bool close_log(std::chrono::seconds patience);
  // Called by a session once its last record is written.
  void forget_session(uint64_t id);
  Session* find_session(uint64_t id);
  size_t session_count() const { return sessions_.size(); }
  const std::map<uint64_t, std::unique_ptr<Session>>& sessions() const { return sessions_; }
  // Passes a stop signal to every session (killed after a grace period).
  void signal_sessions(int signo);
  void kill_sessions();
  // SIGINT and SIGTERM go to `handler` instead of the sessions (a daemon
  // decides how it stops).
  void on_stop(std::function<void(int signo)> handler) { stop_handler_ = std::move(handler); }

  boost::asio::io_context& io() { return io_; }
  BpfLoader& bpf() { return *bpf_; }
  const rules::Policy& policy() const { return enforcer_->policy(); }
  uint32_t policy_generation() const { return enforcer_->generation(); }
  const std::string& cgroup_root() const { return cgroup_root_; }
  // The file guard's matchers of the policy in force, for an agent's home.
  std::shared_ptr<const PathMatchers> path_matchers(const std::string& home) {
    return matchers_.get(policy(), policy_generation(), home);
  }
  Reaper& reaper() { return reaper_; }
  // keep_spare: prepares a session like `like` (its user, directories,
  // network and limits) unless one is kept already, kSparePause from now.
  // A session calls it as it ends, once its caller has been told:
  // preparing while an agent runs delays that agent's end (the loop is
  // busy ~1.5 ms), and made at once it held the caller's own wake-up
  // behind it on this CPU (a quarter of warm runs ended 1-3 ms late).
  void prepare_spare(SessionSpec like);
  // No more spares (a daemon shutting down); the one kept is dropped.
  void stop_spares();

 private:
  void on_event(std::span<const uint8_t> bytes);
  void watch_ring();
  void read_ring();
  void poll_ring();
  void watch_signals();
  void wait_signals();
  void schedule_stats();
  void audit_losses();
  // Writes what the audit log holds. A write that fails (a full disk, an
  // I/O error) keeps the records in memory, in order; only the beat (each
  // second, log_beat) tries again, and says once when it worked. The
  // sessions go on while what is held stays under kMaxHeldLog; past it
  // every session is ended and none starts (fail closed: their trail cannot
  // be kept), their ends held like the rest.
  void flush_log();
  void log_beat();
  void log_failed(const std::exception& e);
  // Reloads the policy (SIGHUP) and tells every session's trail.
  void reload_policy();
  // Resolves the policy's hosts on a thread of their own, now and again
  // when their TTL runs out; answers come back through the loop.
  void resolve_hosts();
  void schedule_dns_refresh();
  // Each beat: a changed /etc/resolv.conf changes the resolvers allowed DNS.
  void watch_resolvers();
  void announce_policy(const audit::PolicyLoad& load, Session& session);
  void make_spare(const SessionSpec& like);
  // Drops the spare kept, or the one about to be made.
  void drop_spare();

  BtfPrefault btf_prefault_;  // first: it runs while the rest starts
  boost::asio::io_context& io_;
  SupervisorOptions options_;
  HostIdentity host_;
  int64_t boot_to_wall_ns_ = 0;
  std::string cgroup_root_;
  std::unique_ptr<AuditLog> log_;  // opened while the programs load
  bool log_failing_ = false;       // its last write failed; records are held
  bool log_lost_ = false;          // close_log() gave up on what it held
  std::unique_ptr<BpfLoader> bpf_;
  std::unique_ptr<Cgroup> keeper_cgroup_;  // keep_egress_attached: empty
  std::unique_ptr<CgroupLinks> keeper_links_;
  std::unique_ptr<Enforcer> enforcer_;
  audit::PolicyLoad policy_load_;  // the load in force, for new sessions
  boost::asio::posix::stream_descriptor ring_watch_;
  boost::asio::posix::stream_descriptor signal_watch_;
  boost::asio::steady_timer ring_timer_;
  std::chrono::milliseconds ring_beat_{1};
  boost::asio::steady_timer stats_timer_;
  boost::asio::steady_timer dns_timer_;
  // The resolver threads' way back: cleared when the supervisor goes.
  struct DnsChannel {
    std::mutex mutex;
    boost::asio::io_context* io = nullptr;
    Supervisor* supervisor = nullptr;
  };
  std::shared_ptr<DnsChannel> dns_channel_;
  struct ResolvConfState {
    ino_t ino = 0;
    off_t size = 0;
    time_t sec = 0;
    long nsec = 0;
    bool operator==(const ResolvConfState&) const = default;
  };
  static ResolvConfState resolv_conf_state();
  ResolvConfState resolv_conf_ = resolv_conf_state();  // as the policy's load read it
  PathMatcherCache matchers_;
  Reaper reaper_;  // before the sessions: it outlives them
  std::map<uint64_t, std::unique_ptr<Session>> sessions_;
  std::unique_ptr<Session> spare_;  // keep_spare: prepared, not launched
  std::unique_ptr<MountTableWatch> host_mounts_;  // keep_spare
  boost::asio::steady_timer spare_timer_;
  uint64_t spare_serial_ = 0;  // which wait the timer's handler is for
  std::function<void(int)> stop_handler_;
  BpfStats last_stats_;
  audit::Record event_record_;  // on_event's, reused
  uint64_t undecodable_ = 0;
  uint64_t last_undecodable_ = 0;
};

}  // namespace corral
