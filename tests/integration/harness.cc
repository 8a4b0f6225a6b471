#include "harness.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

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

TempDir::TempDir() {
  char tmpl[] = "/tmp/corral-test-XXXXXX";
  path_ = ::mkdtemp(tmpl);
  std::filesystem::permissions(path_, std::filesystem::perms::all);
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::vector<audit::Record> read_audit(const std::string& path) {
  std::vector<audit::Record> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    audit::Record r;
    auto status = google::protobuf::util::JsonStringToMessage(line, &r);
    EXPECT_TRUE(status.ok()) << "unparseable audit line: " << line;
    out.push_back(std::move(r));
  }
  return out;
}

pid_t spawn_corral(const std::vector<std::string>& options, const std::vector<std::string>& command,
                   const std::string& audit_path, const std::string& stderr_path,
                   const std::vector<std::string>& wrapper) {
  std::vector<std::string> args = wrapper;
  for (const char* a : {CORRAL_BIN, "run", "--quiet", "--audit"}) args.push_back(a);
  args.push_back(audit_path);
  args.insert(args.end(), options.begin(), options.end());
  args.push_back("--");
  args.insert(args.end(), command.begin(), command.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    int fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 2);
    int null = ::open("/dev/null", O_RDWR);
    ::dup2(null, 0);
    ::dup2(null, 1);
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
  std::filesystem::remove(err_path);
  std::filesystem::remove(r.audit_path);
  return r;
}

}  // namespace corral::test
