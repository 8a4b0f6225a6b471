// `corral audit verify`: checks a log's hash chain and checkpoint signatures
// across its rotated files and says where and how it was tampered with.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "chain.h"

namespace corral {

enum class Tamper {
  kEdited,     // a record's bytes no longer hash to what its successor holds
  kRemoved,    // records missing inside the chain
  kReordered,  // a record out of sequence
  kTruncated,  // a file ends short of its seal, or a record is cut
  kBadSignature,
};
const char* tamper_name(Tamper t);

struct VerifyResult {
  uint64_t records = 0;       // records checked and intact
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  uint64_t signed_through = 0;   // seq of the last good checkpoint
  uint64_t checkpoints = 0;
  std::vector<std::string> warnings;  // intact, but worth saying
  struct Problem {
    Tamper kind;
    uint64_t seq;         // the first bad sequence number
    std::string file;
    uint64_t line;        // 1-based line in that file
    std::string detail;
  };
  std::optional<Problem> problem;  // the first one found; checking stops there
};

// Verifies `files` (any order: they are ordered by their first seq) with
// the checkpoints' public key. Throws only when a file cannot be read.
VerifyResult verify_audit_logs(const std::vector<std::string>& files,
                               const chain::VerifyKey& key);

// The report `corral audit verify` prints: one line per finding.
std::string describe(const VerifyResult& r);

}  // namespace corral
