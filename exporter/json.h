// Protobuf messages as proto3 JSON, written directly by reflection.
// protobuf's own printer goes message -> binary -> type resolver -> JSON and
// was the supervisor's bottleneck (~75k records/s); this one writes the same
// mapping (proto field names, zero values printed, 64-bit integers quoted,
// Timestamps in RFC 3339) straight into a string.
#pragma once

#include <google/protobuf/message.h>

#include <string>

namespace corral {

// Appends `message`, of a generated type, as one JSON object. Invalid UTF-8 in
// strings becomes U+FFFD, so every line stays valid JSON.
void append_json(const google::protobuf::Message& message, std::string& out);

}  // namespace corral
