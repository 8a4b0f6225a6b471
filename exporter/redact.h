// Masking of secrets in audit records, right before they are written, so that none reaches the
// log, the SOC or the console: values of secret-looking names (API_KEY=x, --token x, "password":
// "x"), credential headers, URL passwords, PEM private keys and known token formats. The name or
// label in front of a value stays visible; only the value becomes kRedacted.
#pragma once

#include <google/protobuf/repeated_ptr_field.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "audit.pb.h"

namespace corral {

// What replaces each masked value.
inline constexpr std::string_view kRedacted = "[REDACTED]";

// Masks the secrets in the free-text fields of `record` (exec path and argv, session command
// and cwd, file paths, the decision's reason, agent messages) and returns how many values it
// masked, for the caller to add to record.redacted. A record with nothing to mask is left as it
// is, byte for byte. Redacting again masks nothing more. Thread-safe.
uint32_t redact(audit::Record& record);

// The same for one argument vector, where a value may also be the next argument
// ("--token X", "curl -u user:X", "aws configure set aws_secret_access_key X") and the argument
// of "bash -c" is a command line, read word by word.
uint32_t redact_argv(google::protobuf::RepeatedPtrField<std::string>& argv);

// The same for one string taken as a single argument or path: in "API_KEY=a b" the value is all
// the rest.
uint32_t redact_string(std::string& text);

// Compiles the rules (RE2, ~4 ms here) now rather than at the first record:
// a supervisor does it on another thread while its programs load.
void prepare_redaction();

}  // namespace corral
