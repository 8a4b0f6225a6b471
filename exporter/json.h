// Audit records as proto3 JSON, written directly. protobuf's own printer
// goes message -> binary -> type resolver -> JSON and was the supervisor's
// bottleneck (~75k records/s); this one writes the same mapping (proto field
// names, zero values printed, 64-bit integers quoted, Timestamps in RFC 3339)
// straight into a string, through code generated from audit.proto's
// descriptors at build time (json_gen.cc).
#pragma once

#include <string>

#include "audit.pb.h"

namespace corral {

// Appends `record` as one JSON object. Invalid UTF-8 in strings becomes
// U+FFFD, so every line stays valid JSON.
void append_json(const audit::Record& record, std::string& out);

}  // namespace corral
