#include <gtest/gtest.h>

#include <string>

#include "path.h"

using namespace std::string_literals;

namespace corral {
namespace {

TEST(ComponentsToPath, ReversesLeafFirstNames) {
  EXPECT_EQ(components_to_path("hostname\0etc\0"s), "/etc/hostname");
  EXPECT_EQ(components_to_path("c\0b\0a\0"s), "/a/b/c");
  // cut off before its NUL, an empty name, a filesystem's root dentry
  EXPECT_EQ(components_to_path("c\0b"s), "/b/c");
  EXPECT_EQ(components_to_path("c\0\0a\0"s), "/a/c");
  EXPECT_EQ(components_to_path("leaf\0/\0"s), "/leaf");
}

TEST(ComponentsToPath, EmptyIsRoot) {
  EXPECT_EQ(components_to_path(""), "/");
  EXPECT_EQ(components_to_path("/\0"s), "/");
}

TEST(NormalizePath, CollapsesDotsAndSlashes) {
  EXPECT_EQ(normalize_path("/tmp/./a//b/../c"), "/tmp/a/c");
  EXPECT_EQ(normalize_path("/../../etc"), "/etc");
  EXPECT_EQ(normalize_path("/a/b/.."), "/a");
  EXPECT_EQ(normalize_path("/"), "/");
  EXPECT_EQ(normalize_path("/a/"), "/a");
}

corral_path desc(uint16_t comp, uint16_t str, uint16_t flags) {
  return corral_path{comp, str, flags, 0};
}

TEST(ResolveSlot, RelativeJoinsCwd) {
  std::string slot = "work\0tmp\0"s + "./sub/../x\0"s;
  auto r = resolve_slot(desc(9, 11, CORRAL_PATH_BASE_CWD), slot);
  EXPECT_EQ(r.path, "/tmp/work/x");
  EXPECT_EQ(r.requested, "./sub/../x");
  EXPECT_FALSE(r.truncated);
}

TEST(ResolveSlot, RelativeJoinsDirfd) {
  std::string slot = "d\0"s + "f\0"s;
  auto r = resolve_slot(desc(2, 2, CORRAL_PATH_BASE_DIRFD), slot);
  EXPECT_EQ(r.path, "/d/f");
}

TEST(ResolveSlot, AbsoluteIgnoresBase) {
  std::string slot = "/etc/../etc/passwd\0"s;
  auto r = resolve_slot(desc(0, 19, 0), slot);
  EXPECT_EQ(r.path, "/etc/passwd");
}

TEST(ResolveSlot, ResolvedFileWinsOverString) {
  // opened as a symlink alias: the kernel's answer is the real file
  std::string slot = "shadow\0etc\0"s + "/proc/self/root/etc/shadow\0"s;
  auto r = resolve_slot(desc(11, 27, CORRAL_PATH_RESOLVED), slot);
  EXPECT_EQ(r.path, "/etc/shadow");
  EXPECT_EQ(r.requested, "/proc/self/root/etc/shadow");
}

TEST(ResolveSlot, TruncatedIsFlagged) {
  std::string slot = "x\0"s;
  auto r = resolve_slot(desc(2, 0, CORRAL_PATH_RESOLVED | CORRAL_PATH_TRUNCATED), slot);
  EXPECT_TRUE(r.truncated);
}

TEST(ResolveSlot, LengthsBeyondTheSlotAreClamped) {
  std::string slot = "a\0"s;
  auto r = resolve_slot(desc(4000, 4000, CORRAL_PATH_BASE_CWD), slot);
  EXPECT_EQ(r.path, "/a");
  EXPECT_EQ(r.requested, "");
}

TEST(ResolveSlot, BadDirfdKeepsTheStringAsGiven) {
  std::string slot = "rel\0"s;
  auto r = resolve_slot(desc(0, 4, CORRAL_PATH_BAD_FD), slot);
  EXPECT_EQ(r.path, "rel");
}

}  // namespace
}  // namespace corral
