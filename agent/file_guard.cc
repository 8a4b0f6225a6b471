#include "file_guard.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <boost/asio/post.hpp>

#include <algorithm>
#include <climits>
#include <cstdio>  // RENAME_EXCHANGE
#include <filesystem>
#include <map>

#include "decode.h"
#include "errno_error.h"
#include "mnt.h"
#include "path.h"

namespace corral {
namespace fs = std::filesystem;

namespace {

constexpr size_t kWalkLimit = 100000;
// Entries of a folder moved in looked at for protected paths (see
// FileGuard::protected_within): a few milliseconds on the records' thread.
constexpr size_t kMovedInWalkLimit = 4096;

using Identity = std::pair<dev_t, ino_t>;

bool has_wildcard(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

// The agent could change this file (so a cached allow could outlive what
// made it safe)?
bool agent_may_write(const FileAccess& f, const Credentials& who) {
  auto by_permissions = [&] {
    if (who.uid == 0 || f.foreign_permissions) return true;
    if (f.uid == who.uid) return true;
    if (f.mode & S_IWOTH) return true;
    if (f.mode & S_IWGRP) {
      if (f.acl_write || f.gid == who.gid) return true;
      return std::find(who.groups.begin(), who.groups.end(), f.gid) != who.groups.end();
    }
    return false;
  };
  // Nor, whatever its permissions, a file the session sees read-only under
  // its only name: the session cannot remount, and a link made later from
  // a writable mount would cross mounts (EXDEV). A root agent's system
  // files, the user's tools under a read-only home.
  return by_permissions() && !(f.nlink == 1 && f.read_only_mount());
}

}  // namespace

std::vector<rules::PathRule> PathMatchers::folder_rules(const std::vector<rules::PathRule>& rules) {
  std::vector<rules::PathRule> out;
  for (const auto& rule : rules) {
    if (rule.mode == rules::Mode::kOff) continue;
    rules::PathRule folders = rule;
    folders.globs.clear();
    for (const auto& glob : rule.globs)
      for (size_t end = glob.find('/', 1); end != std::string::npos; end = glob.find('/', end + 1)) {
        std::string prefix = glob.substr(0, end);
        std::string_view last = std::string_view(prefix).substr(prefix.rfind('/') + 1);
        // "**" alone would make every folder one; "~" is the home itself
        if (last.empty() || last == "**" || prefix == "~" || rules::check_glob(prefix)) continue;
        folders.globs.push_back(std::move(prefix));
      }
    if (!folders.globs.empty()) out.push_back(std::move(folders));
  }
  return out;
}

std::shared_ptr<const PathMatchers> PathMatcherCache::get(const rules::Policy& policy,
                                                          uint32_t generation,
                                                          const std::string& home) {
  if (generation != generation_) {
    by_home_.clear();
    generation_ = generation;
  }
  auto& kept = by_home_[home];
  if (!kept) kept = std::make_shared<const PathMatchers>(policy, generation, home);
  return kept;
}

struct FileGuard::Rules {
  std::shared_ptr<const PathMatchers> m;
  std::map<Identity, const rules::PathRule*> secret_ids, protected_ids;
};

std::vector<std::pair<std::string, size_t>> find_existing(const std::vector<std::string>& globs,
                                                          const std::string& home,
                                                          const std::string& cwd, size_t limit,
                                                          PathStates* looked_at) {
  auto look = [&](const std::string& p) {
    if (looked_at) looked_at->add(p);
  };
  std::vector<std::pair<std::string, size_t>> out;
  std::error_code ec;
  // literal paths are looked at; the others are grouped by the directory
  // their walk starts from, so each tree is walked once for all its globs
  std::map<std::string, std::vector<size_t>> by_root;
  for (size_t i = 0; i < globs.size(); i++) {
    const std::string& glob = globs[i];
    std::string pattern = glob.rfind("~/", 0) == 0 ? home + glob.substr(1) : glob;
    if (!has_wildcard(pattern)) {
      look(pattern);
      if (fs::exists(pattern, ec)) out.emplace_back(pattern, i);
      continue;
    }
    std::string root;
    if (pattern.rfind("**/", 0) == 0) {
      root = cwd;
    } else {
      size_t wild = pattern.find_first_of("*?[");
      root = pattern.substr(0, pattern.rfind('/', wild));
      if (root.empty()) root = "/";
    }
    by_root[root].push_back(i);
  }
  for (const auto& [root, indices] : by_root) {
    auto opts = fs::directory_options::skip_permission_denied;
    look(root);  // each directory before its entries are read
    auto it = fs::recursive_directory_iterator(root, opts, ec);
    // Most roots (~/.gnupg, ~/.azure...) do not exist: no set to compile.
    if (ec || it == fs::recursive_directory_iterator()) {
      ec.clear();
      continue;
    }
    std::vector<std::string> subset;
    for (size_t i : indices) subset.push_back(globs[i]);
    rules::GlobSet set(subset, home);
    size_t seen = 0;
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (++seen > limit) {
        spdlog::warn("existing-file scan: stopped walking {} after {} entries", root, limit);
        break;
      }
      std::string p = it->path().string();
      std::error_code type_ec;  // not the walk's: a vanished entry does not end it
      // each directory before its entries are read; each match (a symlink's
      // target, stat follows it) before the guard takes its identity
      auto matches = set.match(p);
      if (looked_at && (!matches.empty() || (it->is_directory(type_ec) && !it->is_symlink(type_ec))))
        look(p);
      for (int k : matches) out.emplace_back(p, indices[k]);
    }
  }
  return out;
}

std::vector<std::string> expand_glob(const std::string& glob, const std::string& home,
                                     const std::string& cwd, size_t limit) {
  std::vector<std::string> out;
  for (auto& [path, index] : find_existing({glob}, home, cwd, limit)) out.push_back(path);
  return out;
}

ExistingFiles scan_existing(const rules::Policy& policy, const std::string& home,
                            const std::string& cwd, PathStates* looked_at) {
  // One glob list for both sections, so that each tree is walked once.
  std::vector<std::string> globs;
  std::vector<std::pair<bool, size_t>> owner;  // (protected?, rule index in its section)
  for (bool prot : {false, true}) {
    const auto& section = prot ? policy.protected_paths : policy.secrets;
    for (size_t r = 0; r < section.size(); r++) {
      if (section[r].mode == rules::Mode::kOff) continue;
      for (const auto& g : section[r].globs) {
        globs.push_back(g);
        owner.emplace_back(prot, r);
      }
    }
  }
  ExistingFiles out;
  for (auto& [path, i] : find_existing(globs, home, cwd, kWalkLimit, looked_at))
    (owner[i].first ? out.protect : out.secrets).emplace_back(std::move(path), owner[i].second);
  return out;
}

std::vector<std::string> protected_mount_points(const rules::Policy& policy,
                                                const ExistingFiles& existing) {
  std::set<std::string> found;
  for (const auto& [p, rule] : existing.protect)
    if (policy.protected_paths[rule].mode == rules::Mode::kEnforce) found.insert(normalize_path(p));
  std::vector<std::string> out;
  for (const auto& p : found) {  // sorted: an ancestor comes before its descendants
    if (!out.empty() && p.rfind(out.back() + "/", 0) == 0) continue;
    struct stat st;
    if (::lstat(p.c_str(), &st) == 0 && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode))) out.push_back(p);
  }
  return out;
}

std::unique_ptr<FileGuard::Rules> FileGuard::build(std::shared_ptr<const PathMatchers> matchers,
                                                   const ExistingFiles* existing) const {
  auto r = std::make_unique<Rules>(Rules{std::move(matchers), {}, {}});
  const rules::Policy& policy = *r->m->policy;
  ExistingFiles scanned;
  if (!existing) existing = &(scanned = scan_existing(policy, agent_.home, cwd_));
  auto index = [&](const std::vector<rules::PathRule>& section,
                   const std::vector<std::pair<std::string, size_t>>& files,
                   std::map<Identity, const rules::PathRule*>& ids) {
    for (const auto& [path, i] : files) {
      const rules::PathRule* rule = &section[i];
      struct stat st;
      // the first rule in policy order wins for a file several match
      if (::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
        auto [it, fresh] = ids.emplace(Identity{st.st_dev, st.st_ino}, rule);
        if (!fresh && rule < it->second) it->second = rule;
      }
    }
  };
  index(policy.secrets, existing->secrets, r->secret_ids);
  index(policy.protected_paths, existing->protect, r->protected_ids);
  return r;
}

FileGuard::FileGuard(boost::asio::io_context& io, pid_t ns_pid, const Credentials& agent,
                     std::string cwd, std::shared_ptr<const PathMatchers> matchers, Emit emit,
                     const ExistingFiles* existing)
    : io_(io),
      agent_(agent),
      cwd_(std::move(cwd)),
      outbox_(std::make_shared<Outbox>()) {
  // Held, not named by pid: a session's last records are read after its
  // processes are gone, and a pid can be reused.
  std::string root = "/proc/" + std::to_string(ns_pid) + "/root";
  session_root_fd_.reset(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!session_root_fd_) throw errno_error("failed to open " + root);
  session_root_ = "/proc/self/fd/" + std::to_string(session_root_fd_.get());
  outbox_->emit = std::move(emit);
  rules_ = build(std::move(matchers), existing);
  guard_ = std::make_unique<FanotifyGuard>(ns_pid, [this](const FileAccess& a) { return decide(a); });
  guard_->start();
}

FileGuard::~FileGuard() { stop(); }

void FileGuard::Outbox::drain() {
  std::vector<audit::Record> out;
  {
    std::lock_guard lock(mu);
    out.swap(records);
  }
  if (emit)
    for (auto& r : out) emit(r);
}

void FileGuard::stop() {
  guard_->stop();
  outbox_->drain();
  std::lock_guard lock(outbox_->mu);
  outbox_->emit = nullptr;  // for the handlers still posted
}

UniqueFd FileGuard::take_group() {
  stop();
  return guard_->take_group();
}

void FileGuard::apply(std::shared_ptr<const PathMatchers> matchers) {
  std::unique_ptr<Rules> fresh = build(std::move(matchers));
  guard_->reset_cache([&] { rules_.swap(fresh); });
}

void FileGuard::annotate(audit::Record& r) const {
  if (r.has_decision()) return;
  // Runs on every record: the paths are pointed at, not collected.
  const std::string* paths[2] = {};
  const std::string* error = nullptr;
  if (r.has_open()) paths[0] = &r.open().path(), error = &r.open().error();
  if (r.has_unlink()) paths[0] = &r.unlink().path(), error = &r.unlink().error();
  if (r.has_truncate()) paths[0] = &r.truncate().path(), error = &r.truncate().error();
  if (r.has_rename()) {
    const auto& mv = r.rename();
    if (mv.result() == 0 && mv.error().empty()) {
      // RENAME_EXCHANGE: each name takes the other's file
      return annotate_moved_in(r, mv.to(), (mv.flags() & RENAME_EXCHANGE) ? &mv.from() : nullptr);
    }
    paths[0] = &mv.from(), paths[1] = &mv.to(), error = &mv.error();
  }
  if (r.has_link()) {
    const auto& ln = r.link();
    if (ln.result() == 0 && ln.error().empty()) return annotate_moved_in(r, ln.to(), nullptr);
    paths[0] = &ln.to(), error = &ln.error();
    if (!ln.symbolic()) paths[1] = &ln.from();  // a symlink's target is text
  }
  if (!error || *error != "EROFS") return;
  for (const std::string* path : paths) {
    if (!path) continue;
    const rules::PathRule* rule = rules_->m->protect.match(*path).rule;
    if (!rule || rule->mode != rules::Mode::kEnforce) continue;
    decide_record(r, *rule, "deny", "write to a protected path (read-only in the session)");
    return;
  }
}

void FileGuard::decide_record(audit::Record& r, const rules::PathRule& rule, const char* action,
                              const char* reason) const {
  auto* d = r.mutable_decision();
  d->set_action(action);
  d->set_rule(rule.id);
  d->set_mode(std::string(rules::mode_name(rule.mode)));
  d->set_reason(reason);
  d->set_policy_generation(rules_->m->generation);
  for (size_t i = 0; i < rules_->m->policy->protected_paths.size(); i++)
    if (rules_->m->policy->protected_paths[i].id == rule.id) d->set_rule_index(static_cast<uint32_t>(i));
}

// A rename or a link is not a permission event, and only the protected
// paths that existed at the start are read-only mounts: a file or a folder
// moved or linked to a protected path made later (`mkdir -p
// .github/workflows; mv ci.yml .github/workflows/`) gets there. It is told,
// not refused: the decision says the rule missed it (would_deny in shadow
// mode).
void FileGuard::annotate_moved_in(audit::Record& r, const std::string& to,
                                  const std::string* also) const {
  const rules::PathRule* unchecked = nullptr;
  const rules::PathRule* rule = protected_within(to, unchecked);
  if (!rule) {
    // The record's new name is its folder argument resolved and the rest as
    // written: a symlink in the rest (`ln -s .github/workflows wf; mv x wf/`)
    // hides where the file went. Looked at again as the kernel resolves it
    // now; one gone already is told as written.
    std::string real = resolved_in_session(to);
    if (!real.empty() && real != to) rule = protected_within(real, unchecked);
  }
  if (!rule && also) rule = protected_within(*also, unchecked);
  if (rule) {
    bool enforce = rule->mode == rules::Mode::kEnforce;
    decide_record(r, *rule, enforce ? "missed" : "would_deny",
                  r.has_link() ? "linked into a protected path: a link is not asked about, and the "
                                 "path was not there to be made read-only when the session started"
                               : "moved into a protected path: a rename is not asked about, and "
                                 "the path was not there to be made read-only when the session "
                                 "started");
    return;
  }
  // At a protected folder's path, and not looked through: told under the
  // rule that names that folder.
  if (unchecked)
    decide_record(r, *unchecked, unchecked->mode == rules::Mode::kEnforce ? "missed" : "would_deny",
                  "put at a protected folder's path, and not looked through whole (a symlink, "
                  "more than 4096 entries, or gone or changed meanwhile)");
}

std::string FileGuard::resolved_in_session(const std::string& path) const {
  size_t slash = path.rfind('/');
  if (path.empty() || path[0] != '/' || slash == std::string::npos) return {};
  std::string folder = "." + path.substr(0, slash);  // relative to the root
  struct open_how how = {};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  UniqueFd fd(static_cast<int>(
      ::syscall(SYS_openat2, session_root_fd_.get(), folder.c_str(), &how, sizeof(how))));
  if (!fd) return {};
  char buf[PATH_MAX];
  std::string self = "/proc/self/fd/" + std::to_string(fd.get());
  ssize_t n = ::readlink(self.c_str(), buf, sizeof(buf));
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf) || buf[0] != '/') return {};
  std::string real(buf, static_cast<size_t>(n));
  return (real == "/" ? "" : real) + path.substr(slash);
}

const rules::PathRule* FileGuard::protected_within(const std::string& path,
                                                   const rules::PathRule*& unchecked) const {
  if (const auto* rule = rules_->m->protect.match(path).rule) return rule;
  // A folder moved in brings its tree. Looked through only when its path
  // is a folder of a protected glob (`mv stage .github`), not at every
  // rename of a folder (a package manager's staging): this runs on the
  // records' thread. As the session sees it (its /tmp is its own), through
  // its root; bounded. A symlink put there (its target's tree is reached
  // through it) and a tree not looked through whole count as unchecked.
  const rules::PathRule* folder = rules_->m->protect_folders.match(path).rule;
  if (!folder || path.empty() || path[0] != '/') return nullptr;
  std::error_code ec;
  const fs::path root = session_root_ + path;
  auto status = fs::symlink_status(root, ec);
  if (ec || fs::is_symlink(status)) {
    unchecked = folder;
    return nullptr;
  }
  if (!fs::is_directory(status)) return nullptr;
  size_t seen = 0;
  fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec), end;
  for (; !ec && it != end && seen < kMovedInWalkLimit; it.increment(ec), seen++) {
    std::string inside = path + "/" + it->path().lexically_relative(root).string();
    if (const auto* rule = rules_->m->protect.match(inside).rule) return rule;
  }
  if (ec || it != end) unchecked = folder;
  return nullptr;
}

Verdict FileGuard::decide(const FileAccess& a) {
  const rules::PathRule* rule = nullptr;
  const char* what = nullptr;
  // A protected match is looked up before the write intent is read: most
  // opens match nothing and never pay for the intent.
  const rules::PathRule* protect = nullptr;
  bool protect_by_id = false;
  if (auto it = rules_->secret_ids.find({a.dev, a.ino}); it != rules_->secret_ids.end()) {
    rule = it->second;
    what = "secret file (by identity)";
  } else if ((rule = rules_->m->secrets.match(a.path).rule)) {
    what = "secret file";
  } else {
    if (auto it = rules_->protected_ids.find({a.dev, a.ino}); it != rules_->protected_ids.end())
      protect = it->second, protect_by_id = true;
    else
      protect = rules_->m->protect.match(a.path).rule;
    // Through a read-only mount (every protected path that existed at the
    // start is one) a write open of a file or folder fails with EROFS
    // before fanotify asks: an open asked about there is not a write,
    // whatever the intent reads. Not so for devices, FIFOs and sockets.
    bool ro_file = (S_ISREG(a.mode) || S_ISDIR(a.mode)) && a.read_only_mount();
    if (protect && !ro_file && a.write()) {
      rule = protect;
      what = protect_by_id ? (a.write_known() ? "write to a protected path (by identity)"
                                              : "possible write to a protected path (by identity)")
                           : (a.write_known() ? "write to a protected path" : "possible write to a protected path");
    }
  }

  if (!rule) {
    // Cache only what no session process can change, and only on a
    // protected-free path: a cached inode is allowed for writes too. An
    // exec's opens (the binary, its interpreter) are cached like reads: no
    // file rule depends on exec, and a build's thousand runs of the
    // compiler ask once, not twice a run.
    if (!protect && !agent_may_write(a, agent_)) return Verdict::kAllowCache;
    return Verdict::kAllow;
  }

  bool enforce = rule->mode == rules::Mode::kEnforce;
  audit::Record rec;
  auto* p = rec.mutable_process();
  const ProcStatus& st = a.status();
  p->set_pid(st.tgid);
  p->set_tid(a.tid);
  p->set_comm(st.comm);
  p->set_ppid(st.ppid);
  p->set_uid(st.uid);
  p->set_gid(st.gid);
  auto* o = rec.mutable_open();
  o->set_path(a.path);
  o->add_flags(a.exec() ? "exec" : a.write() ? (a.write_known() ? "write" : "write?") : "read");
  o->set_result(enforce ? -EPERM : 0);
  if (enforce) o->set_error("EPERM");
  auto* d = rec.mutable_decision();
  d->set_action(enforce ? "deny" : "would_deny");
  d->set_rule(rule->id);
  d->set_mode(std::string(rules::mode_name(rule->mode)));
  d->set_reason(what);
  d->set_policy_generation(rules_->m->generation);
  // the matchers hold copies of the rules: find it in its section by id
  for (const auto* section : {&rules_->m->policy->secrets, &rules_->m->policy->protected_paths})
    for (size_t i = 0; i < section->size(); i++)
      if ((*section)[i].id == rule->id) d->set_rule_index(static_cast<uint32_t>(i));
  bool first;
  {
    std::lock_guard lock(outbox_->mu);
    first = outbox_->records.empty();
    outbox_->records.push_back(std::move(rec));
  }
  if (first) boost::asio::post(io_, [box = outbox_] { box->drain(); });
  return enforce ? Verdict::kDeny : Verdict::kAllow;
}

}  // namespace corral
