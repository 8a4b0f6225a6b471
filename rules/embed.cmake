# Writes OUT, a C++ source holding the bytes of IN as
# corral::rules::internal::kDefaultPolicyYaml, so the shipped default policy
# is inside the binary. Run as: cmake -DIN=... -DOUT=... -P embed.cmake
# A byte array rather than a raw string: no delimiter can clash with the text.
if(NOT IN OR NOT OUT)
  message(FATAL_ERROR "usage: cmake -DIN=file -DOUT=file.cc -P embed.cmake")
endif()
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR size "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUT}.tmp"
"// Generated from ${IN} by rules/embed.cmake. Do not edit.
#include <cstddef>
namespace corral::rules::internal {
extern const char kDefaultPolicyYaml[];
extern const size_t kDefaultPolicyYamlSize;
const char kDefaultPolicyYaml[] = {
${bytes}0};
const size_t kDefaultPolicyYamlSize = ${size};
}  // namespace corral::rules::internal
")
file(RENAME "${OUT}.tmp" "${OUT}")
