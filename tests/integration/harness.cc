#include "harness.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

namespace corral::test {

bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

std::string actor_bin() { return CORRAL_ACTOR_BIN; }
std::string corral_bin() { return CORRAL_BIN; }
std::string audit_key() { return "/tmp/corral-it-audit.key"; }

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file(const std::string& path, const std::string& text) {
  {
    std::ofstream out(path, std::ios::trunc | std::ios::binary);
    out << text;
  }
  std::filesystem::permissions(path, std::filesystem::perms(0644));
}

CommandResult run_command(const std::vector<std::string>& args) {
  int pipefd[2];
  CommandResult r;
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return r;
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(pipefd[1], 1);
    ::dup2(pipefd[1], 2);
    ::execv(argv[0], argv.data());
    _exit(127);
  }
  ::close(pipefd[1]);
  char buf[4096];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) r.output.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

CommandResult verify_audit(const std::vector<std::string>& files) {
  std::vector<std::string> args = {CORRAL_BIN, "audit", "verify", "--key", audit_key() + ".pub"};
  args.insert(args.end(), files.begin(), files.end());
  return run_command(args);
}

TempDir::TempDir(const std::string& parent) {
  std::string tmpl = parent + "/corral-test-XXXXXX";
  path_ = ::mkdtemp(tmpl.data());
  std::filesystem::permissions(path_, std::filesystem::perms::all);
}

InDir::InDir(const std::string& dir) : old_(std::filesystem::current_path()) {
  std::filesystem::current_path(dir);
}

InDir::~InDir() {
  std::error_code ec;
  std::filesystem::current_path(old_, ec);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<std::string> audit_files(const std::string& path) {
  std::vector<std::string> files;
  const std::filesystem::path p(path);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(p.parent_path(), ec)) {
    std::string name = e.path().filename().string();
    std::string rotated = p.filename().string() + ".";
    if (name.starts_with(rotated) && name.size() == rotated.size() + 20 &&
        name.find_first_not_of("0123456789", rotated.size()) == std::string::npos)
      files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());  // 20-digit first seqs: name order is seq order
  if (std::filesystem::exists(path)) files.push_back(path);
  return files;
}

std::vector<audit::Record> read_audit(const std::string& path) {
  std::vector<audit::Record> out;
  for (const auto& file : audit_files(path)) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
      audit::Record r;
      auto status = google::protobuf::util::JsonStringToMessage(line, &r);
      EXPECT_TRUE(status.ok()) << "unparseable audit line: " << line;
      if (r.has_checkpoint()) continue;  // the log's own; `corral audit verify` checks them
      out.push_back(std::move(r));
    }
  }
  return out;
}

pid_t spawn_corral(const std::vector<std::string>& options, const std::vector<std::string>& command,
                   const std::string& audit_path, const std::string& stderr_path,
                   const std::vector<std::string>& wrapper) {
  std::vector<std::string> args = wrapper;
  for (const char* a : {CORRAL_BIN, "run", "--quiet", "--audit"}) args.push_back(a);
  args.push_back(audit_path);
  args.push_back("--audit-key");
  args.push_back(audit_key());
  args.insert(args.end(), options.begin(), options.end());
  args.push_back("--");
  args.insert(args.end(), command.begin(), command.end());
  return spawn_command(args, stderr_path, /*with_stdout=*/false);
}

pid_t spawn_command(std::vector<std::string> args, const std::string& output_path, bool with_stdout) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    // A test that dies leaves no daemon or session behind.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(with_stdout ? fd : null, 1);
    ::execv(argv[0], argv.data());
    _exit(120);
  }
  return pid;
}

bool wait_for_session_start(const std::string& audit_path, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in(audit_path);
    std::string line;
    while (std::getline(in, line))
      if (line.find("\"session_start\"") != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

RunResult run_corral(const std::vector<std::string>& options, const std::vector<std::string>& command,
                     const std::function<void(pid_t)>& while_running,
                     const std::vector<std::string>& wrapper) {
  static int counter = 0;
  RunResult r;
  std::string base = "/tmp/corral-it-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
  r.audit_path = base + ".jsonl";
  std::string err_path = base + ".stderr";
  std::filesystem::remove(r.audit_path);
  pid_t pid = spawn_corral(options, command, r.audit_path, err_path, wrapper);
  if (while_running) {
    EXPECT_TRUE(wait_for_session_start(r.audit_path)) << "session never started";
    while_running(pid);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  std::ifstream err(err_path);
  std::stringstream ss;
  ss << err.rdbuf();
  r.stderr_text = ss.str();
  r.records = read_audit(r.audit_path);
  auto files = audit_files(r.audit_path);
  if (!files.empty()) {
    auto v = verify_audit(files);
    EXPECT_EQ(v.exit_code, 0) << "the audit log does not verify:\n" << v.output;
  }
  std::filesystem::remove(err_path);
  for (const auto& f : files) std::filesystem::remove(f);
  std::filesystem::remove(r.audit_path + ".lock");
  return r;
}

std::string prelude(const std::string& status) {
  return "S=" + status + "\n" +
         "t() { local n=$1; shift; \"$@\" >/dev/null 2>&1; echo \"$n $?\" >> $S; }\n"
         "o() { local r; r=$(" + actor_bin() + " openat . \"$2\"); echo \"$1 ${r##*-> }\" >> $S; }\n"
         "await() { local i=0; while [ ! -e \"$1\" ]; do sleep 0.01; i=$((i+1)); "
         "[ $i -gt 500 ] && exit 99; done; }\n";
}

std::map<std::string, std::string> read_status(const std::string& path) {
  std::map<std::string, std::string> out;
  std::ifstream in(path);
  std::string name, value;
  while (in >> name >> value) out[name] = value;
  return out;
}

bool running(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return false;
  auto close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

std::vector<pid_t> cgroup_pids(const std::string& cgroup) {
  std::vector<pid_t> out;
  std::ifstream in(cgroup + "/cgroup.procs");
  for (pid_t p; in >> p;) out.push_back(p);
  return out;
}

}  // namespace corral::test
