// Ring-buffer events -> audit records. Pure: no kernel, no clock, no I/O;
// the caller fills in what only it knows (time, host, sequence number).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "audit.pb.h"

namespace corral {

// Fills `out` from one event. Returns false and sets `error` when the bytes
// are not a well-formed event (short, unknown type, size mismatch).
bool decode_event(std::span<const uint8_t> bytes, audit::Record& out, std::string& error);

// The session id as records carry it: 16 lowercase hex digits.
std::string session_id_string(uint64_t id);
void format_session_id(uint64_t id, char (&out)[16]);

// "ENOENT" for 2; the number as text when glibc has no name.
std::string errno_name(int err);

// Adds O_RDONLY/O_WRONLY/O_RDWR, then each set flag by name.
void add_open_flag_names(uint32_t flags, google::protobuf::RepeatedPtrField<std::string>& names);

}  // namespace corral
