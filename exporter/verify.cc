#include "verify.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "audit.pb.h"
#include "unique_fd.h"

namespace corral {
namespace {

struct LogFile {
  std::string path;
  std::string bytes;
  std::optional<uint64_t> first_seq;
};

std::string read_whole(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw std::system_error(errno, std::generic_category(), "cannot read " + path);
  std::string out;
  char buf[1 << 16];
  while (true) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw std::system_error(errno, std::generic_category(), "cannot read " + path);
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// A JSON object key that only a checkpoint record has: inside a JSON string
// a quote is escaped, so this cannot appear in an argv or a path.
constexpr std::string_view kCheckpointKey = "\"checkpoint\":{";

}  // namespace

const char* tamper_name(Tamper t) {
  switch (t) {
    case Tamper::kEdited: return "edited";
    case Tamper::kRemoved: return "removed";
    case Tamper::kReordered: return "reordered";
    case Tamper::kTruncated: return "truncated";
    case Tamper::kBadSignature: return "bad signature";
  }
  return "?";
}

VerifyResult verify_audit_logs(const std::vector<std::string>& paths,
                               const chain::VerifyKey& key) {
  std::vector<LogFile> files;
  for (const auto& p : paths) {
    LogFile f{p, read_whole(p), std::nullopt};
    if (auto head = chain::parse_head(std::string_view(f.bytes).substr(0, f.bytes.find('\n'))))
      f.first_seq = head->seq;
    files.push_back(std::move(f));
  }
  // Oldest first; a file whose first line is unreadable sorts first and is
  // reported there.
  std::stable_sort(files.begin(), files.end(), [](const LogFile& a, const LogFile& b) {
    return a.first_seq.value_or(0) < b.first_seq.value_or(0);
  });

  VerifyResult r;
  chain::Hasher hasher;
  uint64_t expected_seq = 0;  // 0: nothing read yet
  std::string expected_prev;
  bool prev_file_sealed = true;
  auto fail = [&](Tamper kind, uint64_t seq, const LogFile& f, uint64_t line, std::string detail) {
    r.problem = VerifyResult::Problem{kind, seq, f.path, line, std::move(detail)};
  };

  for (size_t fi = 0; fi < files.size() && !r.problem; ++fi) {
    const LogFile& f = files[fi];
    std::string_view all(f.bytes);
    size_t pos = 0;
    uint64_t line_no = 0;
    bool sealed = false;
    while (pos < all.size()) {
      size_t nl = all.find('\n', pos);
      if (nl == std::string_view::npos) {
        if (fi + 1 == files.size()) {
          r.warnings.push_back(fmt::format(
              "{}: the last {} bytes are a torn record (a crash mid-write); the writer cuts "
              "them off and records their hash when it restarts",
              f.path, all.size() - pos));
        } else {
          fail(Tamper::kTruncated, expected_seq, f, line_no + 1,
               "the file ends inside a record, and newer files follow it");
        }
        break;
      }
      std::string_view line = all.substr(pos, nl - pos);
      pos = nl + 1;
      ++line_no;
      sealed = false;
      auto head = chain::parse_head(line);
      if (!head) {
        fail(Tamper::kEdited, expected_seq, f, line_no,
             "this line is not a chained record (no seq/prev head)");
        break;
      }
      bool file_start = line_no == 1 && fi > 0;
      if (expected_seq == 0) {
        if (head->seq == 1 && head->prev != chain::kGenesis) {
          fail(Tamper::kEdited, 1, f, line_no, "the first record's prev is not the genesis hash");
          break;
        }
        if (head->seq != 1)
          r.warnings.push_back(fmt::format(
              "the chain starts at seq {} in {}: earlier records are in files not given",
              head->seq, f.path));
        r.first_seq = head->seq;
      } else if (head->seq < expected_seq) {
        fail(Tamper::kReordered, head->seq, f, line_no,
             fmt::format("seq {} comes after seq {}", head->seq, expected_seq - 1));
        break;
      } else if (head->seq > expected_seq) {
        // Missing here but further on: moved, not removed.
        std::optional<uint64_t> later;
        for (size_t p = pos, n = 1; p < all.size(); ++n) {
          size_t e = all.find('\n', p);
          if (e == std::string_view::npos) break;
          auto h = chain::parse_head(all.substr(p, e - p));
          if (h && h->seq == expected_seq) later = line_no + n;
          if (later) break;
          p = e + 1;
        }
        if (later)
          fail(Tamper::kReordered, expected_seq, f, line_no,
               fmt::format("seq {} is at line {}, after seq {}", expected_seq, *later, head->seq));
        else if (file_start && !prev_file_sealed)
          fail(Tamper::kTruncated, expected_seq, f, line_no,
               fmt::format("{} ends at seq {} without its rotation seal; seq {}..{} are missing",
                           files[fi - 1].path, expected_seq - 1, expected_seq, head->seq - 1));
        else
          fail(Tamper::kRemoved, expected_seq, f, line_no,
               fmt::format("seq {}..{} are missing before seq {}", expected_seq, head->seq - 1,
                           head->seq));
        break;
      } else if (head->prev != expected_prev) {
        if (file_start && !prev_file_sealed)
          fail(Tamper::kTruncated, expected_seq - 1, f, line_no,
               fmt::format("{} ends without its rotation seal, and its last record is not the "
                           "one seq {} chains to",
                           files[fi - 1].path, head->seq));
        else
          fail(Tamper::kEdited, expected_seq - 1, f, line_no > 1 ? line_no - 1 : line_no,
               fmt::format("seq {} does not hash to the prev that seq {} holds: one of them "
                           "was changed",
                           expected_seq - 1, head->seq));
        // The record before this one is the suspect: not intact either.
        r.records--;
        r.last_seq = expected_seq - 2;
        break;
      }

      if (line.find(kCheckpointKey) != std::string_view::npos) {
        audit::Record rec;
        google::protobuf::util::JsonParseOptions opts;
        if (!google::protobuf::util::JsonStringToMessage(std::string(line), &rec, opts).ok() ||
            !rec.has_checkpoint()) {
          fail(Tamper::kEdited, head->seq, f, line_no, "a checkpoint that does not parse");
          break;
        }
        const auto& cp = rec.checkpoint();
        if (cp.key_id() != key.key_id()) {
          fail(Tamper::kBadSignature, head->seq, f, line_no,
               fmt::format("checkpoint signed by key {}, not by the given key {}", cp.key_id(),
                           key.key_id()));
          break;
        }
        if (!key.verify_hex(chain::checkpoint_message(head->seq, head->prev, cp.reason()),
                            cp.signature())) {
          fail(Tamper::kBadSignature, head->seq, f, line_no,
               "the checkpoint's signature does not match its seq and prev");
          break;
        }
        r.checkpoints++;
        r.signed_through = head->seq;
        sealed = cp.reason() == "rotation";
        if (cp.torn_bytes())
          r.warnings.push_back(fmt::format(
              "seq {}: the writer resumed after a crash and cut off a torn record of {} bytes "
              "(sha256 {})",
              head->seq, cp.torn_bytes(), cp.torn_sha256()));
      }
      expected_prev = hasher.hex(line);
      expected_seq = head->seq + 1;
      r.last_seq = head->seq;
      r.records++;
    }
    prev_file_sealed = sealed;
  }
  if (!r.problem && r.records && r.signed_through < r.last_seq)
    r.warnings.push_back(fmt::format(
        "seq {}..{} are chained but not yet signed (the writer is running, or stopped before "
        "its next checkpoint)",
        r.signed_through + 1, r.last_seq));
  return r;
}

std::string describe(const VerifyResult& r) {
  std::string out;
  if (r.problem) {
    const auto& p = *r.problem;
    out += fmt::format("TAMPERED: {} at seq {} ({}:{}): {}\n", tamper_name(p.kind), p.seq, p.file,
                       p.line, p.detail);
    if (r.records)
      out += fmt::format("intact before it: {} records, seq {}..{}, signed through seq {}\n",
                         r.records, r.first_seq, r.last_seq, r.signed_through);
    return out;
  }
  for (const auto& w : r.warnings) out += "warning: " + w + "\n";
  out += fmt::format("ok: {} records intact, seq {}..{}, signed through seq {} ({} checkpoints)\n",
                     r.records, r.first_seq, r.last_seq, r.signed_through, r.checkpoints);
  return out;
}

}  // namespace corral
