#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstring>
#include <string>
#include <vector>

#include "audit_log.h"
#include "decode.h"
#include "event_layout.h"

using namespace std::string_literals;

namespace corral {
namespace {

template <typename T>
std::vector<uint8_t> bytes_of(const T& ev, size_t size) {
  std::vector<uint8_t> out(size);
  std::memcpy(out.data(), &ev, std::min(size, sizeof(T)));
  return out;
}

void header(corral_event_header& h, uint32_t type, uint32_t size) {
  h.type = type;
  h.size = size;
  h.boot_ns = 123456789;
  h.session_id = 0xabcdef0123456789ull;
  h.pid = 42;
  h.tid = 43;
  h.ppid = 1;
  h.uid = 1000;
  h.gid = 1001;
  std::strcpy(h.comm, "agent");
}

TEST(Decode, ExecWithArgv) {
  auto ev = std::make_unique<corral_exec_event>();
  std::memset(ev.get(), 0, sizeof(*ev));
  std::string comps = "git\0bin\0usr\0"s;
  std::string argv = "git\0push\0--force\0"s;
  std::memcpy(ev->data, comps.data(), comps.size());
  std::memcpy(ev->data + comps.size(), argv.data(), argv.size());
  ev->path = {static_cast<uint16_t>(comps.size()), 0, CORRAL_PATH_RESOLVED, 3};
  ev->argv_len = argv.size();
  ev->argv_full_len = argv.size();
  size_t size = offsetof(corral_exec_event, data) + comps.size() + argv.size();
  header(ev->hdr, CORRAL_EV_EXEC, size);

  audit::Record r;
  std::string err;
  ASSERT_TRUE(decode_event(bytes_of(*ev, size), r, err)) << err;
  EXPECT_EQ(r.session(), "abcdef0123456789");
  EXPECT_EQ(r.process().pid(), 42u);
  EXPECT_EQ(r.process().tid(), 43u);
  EXPECT_EQ(r.process().uid(), 1000u);
  EXPECT_EQ(r.process().comm(), "agent");
  EXPECT_EQ(r.boot_ns(), 123456789u);
  ASSERT_TRUE(r.has_exec());
  EXPECT_EQ(r.exec().path(), "/usr/bin/git");
  ASSERT_EQ(r.exec().argv_size(), 3);
  EXPECT_EQ(r.exec().argv(1), "push");
  EXPECT_EQ(r.exec().argv(2), "--force");
  EXPECT_FALSE(r.exec().argv_truncated());
}

TEST(Decode, ExecArgvTruncationIsFlagged) {
  auto ev = std::make_unique<corral_exec_event>();
  std::memset(ev.get(), 0, sizeof(*ev));
  std::string argv = "a\0b\0"s;
  std::memcpy(ev->data, argv.data(), argv.size());
  ev->path = {0, 0, CORRAL_PATH_RESOLVED, 0};
  ev->argv_len = argv.size();
  ev->argv_full_len = 100000;
  size_t size = offsetof(corral_exec_event, data) + argv.size();
  header(ev->hdr, CORRAL_EV_EXEC, size);
  audit::Record r;
  std::string err;
  ASSERT_TRUE(decode_event(bytes_of(*ev, size), r, err)) << err;
  EXPECT_TRUE(r.exec().argv_truncated());
}

TEST(Decode, ExitStatusAndSignal) {
  corral_exit_event ev{};
  header(ev.hdr, CORRAL_EV_EXIT, sizeof(ev));
  ev.exit_code = 7 << 8;
  audit::Record r;
  std::string err;
  ASSERT_TRUE(decode_event(bytes_of(ev, sizeof(ev)), r, err)) << err;
  EXPECT_EQ(r.exit().code(), 7);
  EXPECT_EQ(r.exit().signal(), 0);

  ev.exit_code = 9;
  r.Clear();
  ASSERT_TRUE(decode_event(bytes_of(ev, sizeof(ev)), r, err)) << err;
  EXPECT_EQ(r.exit().signal(), 9);
}

TEST(Decode, OpenRelativeWithError) {
  auto ev = std::make_unique<corral_open_event>();
  std::memset(ev.get(), 0, sizeof(*ev));
  std::string slot = "tmp\0"s + "./missing\0"s;
  std::memcpy(ev->data, slot.data(), slot.size());
  ev->path = {4, 10, CORRAL_PATH_BASE_CWD, 1};
  ev->dfd = AT_FDCWD;
  ev->ret = -ENOENT;
  ev->flags = O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC;
  size_t size = offsetof(corral_open_event, data) + slot.size();
  header(ev->hdr, CORRAL_EV_OPEN, size);
  audit::Record r;
  std::string err;
  ASSERT_TRUE(decode_event(bytes_of(*ev, size), r, err)) << err;
  EXPECT_EQ(r.open().path(), "/tmp/missing");
  EXPECT_EQ(r.open().requested(), "./missing");
  EXPECT_EQ(r.open().result(), -ENOENT);
  EXPECT_EQ(r.open().error(), "ENOENT");
  std::vector<std::string> flags(r.open().flags().begin(), r.open().flags().end());
  EXPECT_EQ(flags, (std::vector<std::string>{"O_WRONLY", "O_CREAT", "O_TRUNC", "O_CLOEXEC"}));
}

TEST(Decode, RenameUsesBothSlots) {
  auto ev = std::make_unique<corral_rename_event>();
  std::memset(ev.get(), 0, sizeof(*ev));
  std::string from = "out\0"s + "report.xml\0"s;
  std::string to = "/tmp/hidden\0"s;
  std::memcpy(ev->data, from.data(), from.size());
  std::memcpy(ev->data + CORRAL_SLOT_SIZE, to.data(), to.size());
  ev->from = {4, 11, CORRAL_PATH_BASE_CWD, 1};
  ev->to = {0, static_cast<uint16_t>(to.size()), 0, 0};
  size_t size = offsetof(corral_rename_event, data) + CORRAL_SLOT_SIZE + to.size();
  header(ev->hdr, CORRAL_EV_RENAME, size);
  audit::Record r;
  std::string err;
  ASSERT_TRUE(decode_event(bytes_of(*ev, size), r, err)) << err;
  EXPECT_EQ(r.rename().from(), "/out/report.xml");
  EXPECT_EQ(r.rename().to(), "/tmp/hidden");
  EXPECT_EQ(r.rename().result(), 0);
}

TEST(Decode, LinkIsItsOwnRecord) {
  auto ev = std::make_unique<corral_rename_event>();
  std::memset(ev.get(), 0, sizeof(*ev));
  std::string from = "/src/a.txt\0"s;
  std::string to = "/dst/b.txt\0"s;
  std::memcpy(ev->data, from.data(), from.size());
  std::memcpy(ev->data + CORRAL_SLOT_SIZE, to.data(), to.size());
  ev->from = {0, static_cast<uint16_t>(from.size()), 0, 0};
  ev->to = {0, static_cast<uint16_t>(to.size()), 0, 0};
  ev->flags = 0x1000;  // AT_EMPTY_PATH
  ev->ret = -1;
  size_t size = offsetof(corral_rename_event, data) + CORRAL_SLOT_SIZE + to.size();
  header(ev->hdr, CORRAL_EV_LINK, size);
  audit::Record r;
  std::string err;
  ASSERT_TRUE(decode_event(bytes_of(*ev, size), r, err)) << err;
  ASSERT_TRUE(r.has_link());
  EXPECT_FALSE(r.link().symbolic());
  EXPECT_EQ(r.link().from(), "/src/a.txt");
  EXPECT_EQ(r.link().to(), "/dst/b.txt");
  EXPECT_EQ(r.link().flags(), 0x1000u);
  EXPECT_EQ(r.link().result(), -1);
  EXPECT_EQ(r.link().error(), "EPERM");
}

// A symbolic link's target is its text: not joined to the cwd the kernel
// program walked for it.
TEST(Decode, SymlinkKeepsItsTargetAsWritten) {
  auto ev = std::make_unique<corral_rename_event>();
  std::memset(ev.get(), 0, sizeof(*ev));
  std::string from = "work\0"s + "../evil.sh\0"s;
  std::string to = "/repo/.git/hooks/pre-commit\0"s;
  std::memcpy(ev->data, from.data(), from.size());
  std::memcpy(ev->data + CORRAL_SLOT_SIZE, to.data(), to.size());
  ev->from = {5, 11, CORRAL_PATH_BASE_CWD, 1};
  ev->to = {0, static_cast<uint16_t>(to.size()), 0, 0};
  size_t size = offsetof(corral_rename_event, data) + CORRAL_SLOT_SIZE + to.size();
  header(ev->hdr, CORRAL_EV_SYMLINK, size);
  audit::Record r;
  std::string err;
  ASSERT_TRUE(decode_event(bytes_of(*ev, size), r, err)) << err;
  ASSERT_TRUE(r.has_link());
  EXPECT_TRUE(r.link().symbolic());
  EXPECT_EQ(r.link().from(), "../evil.sh");
  EXPECT_EQ(r.link().to(), "/repo/.git/hooks/pre-commit");
}

TEST(Decode, ConnectFamilies) {
  corral_connect_event ev{};
  header(ev.hdr, CORRAL_EV_CONNECT, sizeof(ev));
  ev.family = AF_INET;
  ev.port = 8080;
  inet_pton(AF_INET, "127.0.0.1", ev.addr);
  ev.ret = -ECONNREFUSED;
  audit::Record r;
  std::string err;
  ASSERT_TRUE(decode_event(bytes_of(ev, sizeof(ev)), r, err)) << err;
  EXPECT_EQ(r.connect().family(), "inet");
  EXPECT_EQ(r.connect().address(), "127.0.0.1");
  EXPECT_EQ(r.connect().port(), 8080u);
  EXPECT_EQ(r.connect().error(), "ECONNREFUSED");

  ev.family = AF_INET6;
  inet_pton(AF_INET6, "::1", ev.addr);
  r.Clear();
  ASSERT_TRUE(decode_event(bytes_of(ev, sizeof(ev)), r, err)) << err;
  EXPECT_EQ(r.connect().address(), "::1");

  ev.family = AF_UNIX;
  std::memset(ev.unix_path, 0, sizeof(ev.unix_path));
  std::strcpy(ev.unix_path + 1, "abstract-name");
  r.Clear();
  ASSERT_TRUE(decode_event(bytes_of(ev, sizeof(ev)), r, err)) << err;
  EXPECT_EQ(r.connect().address(), "@abstract-name");

  std::strcpy(ev.unix_path, "/run/docker.sock");
  r.Clear();
  ASSERT_TRUE(decode_event(bytes_of(ev, sizeof(ev)), r, err)) << err;
  EXPECT_EQ(r.connect().address(), "/run/docker.sock");
}

TEST(Decode, RejectsMalformedEvents) {
  audit::Record r;
  std::string err;
  std::vector<uint8_t> tiny(10);
  EXPECT_FALSE(decode_event(tiny, r, err));
  EXPECT_NE(err.find("shorter"), std::string::npos);

  corral_exit_event ev{};
  header(ev.hdr, CORRAL_EV_EXIT, sizeof(ev) + 8);  // lies about its size
  EXPECT_FALSE(decode_event(bytes_of(ev, sizeof(ev)), r, err));

  header(ev.hdr, 99, sizeof(ev));
  EXPECT_FALSE(decode_event(bytes_of(ev, sizeof(ev)), r, err));
  EXPECT_NE(err.find("unknown event type 99"), std::string::npos);

  corral_open_event open{};
  header(open.hdr, CORRAL_EV_OPEN, 70);  // header only: no fixed part
  EXPECT_FALSE(decode_event(bytes_of(open, 70), r, err));
}

std::vector<std::string> open_flag_names(uint32_t flags) {
  google::protobuf::RepeatedPtrField<std::string> names;
  add_open_flag_names(flags, names);
  return {names.begin(), names.end()};
}

TEST(OpenFlagNames, CompoundFlagsNamedWhole) {
  auto names = open_flag_names(O_RDWR | O_TMPFILE);
  EXPECT_EQ(names, (std::vector<std::string>{"O_RDWR", "O_TMPFILE"}));
  names = open_flag_names(O_WRONLY | O_SYNC);
  EXPECT_EQ(names, (std::vector<std::string>{"O_WRONLY", "O_SYNC"}));
  names = open_flag_names(O_RDONLY | 0x80000000u);
  EXPECT_EQ(names, (std::vector<std::string>{"O_RDONLY", "0x80000000"}));
}

TEST(SessionIdString, SixteenLowercaseHexDigits) {
  EXPECT_EQ(session_id_string(0xff), "00000000000000ff");
  EXPECT_EQ(session_id_string(0xabcdef0123456789ull), "abcdef0123456789");
  EXPECT_EQ(session_id_string(~0ull), "ffffffffffffffff");
}

TEST(ErrnoName, NamesAndNumbers) {
  EXPECT_EQ(errno_name(ENOENT), "ENOENT");
  EXPECT_EQ(errno_name(EPERM), "EPERM");
  EXPECT_EQ(errno_name(100000), "100000");
}

}  // namespace
}  // namespace corral
