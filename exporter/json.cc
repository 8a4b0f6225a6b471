#include "json.h"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstring>

namespace corral {
namespace {

// Appends to a string through a cursor, making room ahead: std::string's push_back and append
// cost a call and a capacity check each, and a record is ~150 small writes.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out), len_(out.size()) {}
  // What was written stays, the room ahead goes.
  ~Writer() { out_.resize(len_); }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Where the next `n` bytes go; commit() those written. Forced inline, as GCC would not for
  // the ~150 calls per record: with constant sizes a write becomes a store or two.
  [[gnu::always_inline]] char* room(size_t n) {
    if (out_.size() - len_ < n) grow(n);
    return out_.data() + len_;
  }
  [[gnu::always_inline]] void commit(size_t n) { len_ += n; }
  [[gnu::always_inline]] void put(char c) {
    *room(1) = c;
    len_++;
  }
  [[gnu::always_inline]] void put(std::string_view s) {
    std::memcpy(room(s.size()), s.data(), s.size());
    len_ += s.size();
  }

 private:
  // Out of line, so that room() inlines: it is the rare path.
  [[gnu::noinline]] void grow(size_t n) { out_.resize(len_ + std::max<size_t>(n, 1024)); }

  std::string& out_;
  size_t len_;
};

// Bytes that go into a JSON string as they are: printable ASCII but '"' and '\\'.
constexpr std::array<bool, 256> kPlain = [] {
  std::array<bool, 256> plain{};
  for (int c = 0x20; c < 0x7f; c++) plain[c] = c != '"' && c != '\\';
  return plain;
}();

// Length of the valid UTF-8 sequence at s[i], or 0 when invalid.
size_t utf8_len(std::string_view s, size_t i) {
  unsigned char c = s[i];
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; k++)
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  return n;
}

// Whether all 8 bytes of `v` are plain (kPlain), tested together: none below 0x20, none above
// 0x7e, no '"', no '\\' (the exact tests for such a byte in a word, from "Bit Twiddling Hacks").
bool all_plain(uint64_t v) {
  constexpr uint64_t k01 = 0x0101010101010101, k80 = 0x8080808080808080;
  auto has_zero = [](uint64_t x) { return (x - k01) & ~x & k80; };
  uint64_t below = (v - k01 * 0x20) & ~v & k80;
  uint64_t above = ((v + k01 * (127 - 0x7e)) | v) & k80;
  return !(below | above | has_zero(v ^ (k01 * '"')) | has_zero(v ^ (k01 * '\\')));
}

// A JSON string: escapes, \u00XX for the other control bytes, well-formed UTF-8 sequences as
// they are, U+FFFD for each byte of no sequence, so that every line stays valid JSON.
void append_string(std::string_view s, Writer& w) {
  static constexpr char kHex[] = "0123456789abcdef";
  // Each byte takes at most 6 ("\u00XX", "\ufffd"), plus the quotes.
  char* start = w.room(s.size() * 6 + 2);
  char* p = start;
  *p++ = '"';
  for (size_t i = 0; i < s.size();) {
    // Eight plain bytes at a time: most strings are nothing else.
    uint64_t word;
    if (s.size() - i >= sizeof word) {
      std::memcpy(&word, s.data() + i, sizeof word);
      if (all_plain(word)) {
        std::memcpy(p, &word, sizeof word);
        p += sizeof word;
        i += sizeof word;
        continue;
      }
    }
    unsigned char c = s[i];
    if (kPlain[c]) {
      *p++ = static_cast<char>(c);
      i++;
      continue;
    }
    char escape = c == '"' ? '"' : c == '\\' ? '\\' : c == '\n' ? 'n' : c == '\r' ? 'r'
                : c == '\t' ? 't' : 0;
    if (escape) {
      *p++ = '\\';
      *p++ = escape;
      i++;
    } else if (c < 0x20 || c == 0x7f) {
      const char u[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      std::memcpy(p, u, sizeof u);
      p += sizeof u;
      i++;
    } else if (size_t n = utf8_len(s, i)) {
      std::memcpy(p, s.data() + i, n);
      p += n;
      i += n;
    } else {
      std::memcpy(p, "\\ufffd", 6);
      p += 6;
      i++;
    }
  }
  *p++ = '"';
  w.commit(static_cast<size_t>(p - start));
}

template <typename Int>
void append_int(Int v, Writer& w) {
  char* p = w.room(24);
  w.commit(static_cast<size_t>(std::to_chars(p, p + 24, v).ptr - p));
}

// As fmt's {:0Nd}: zero-padded to `width` characters, the sign among them.
void append_padded(int32_t v, size_t width, Writer& w) {
  char buf[16];
  std::string_view digits(buf, static_cast<size_t>(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
  if (v < 0) {
    w.put('-');
    digits.remove_prefix(1);
    width--;
  }
  while (digits.size() < width--) w.put('0');
  w.put(digits);
}

// In RFC 3339 with 0, 3, 6 or 9 fractional digits, as protobuf prints a Timestamp.
void append_timestamp(int64_t seconds, int32_t nanos, Writer& w) {
  // Records come in order: the seconds' text changes once a second.
  thread_local int64_t cached_seconds = 0;
  thread_local char cached[32] = "";
  thread_local size_t cached_len = 0;
  if (cached_len == 0 || seconds != cached_seconds) {
    time_t t = static_cast<time_t>(seconds);
    struct tm tm;
    gmtime_r(&t, &tm);
    cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
    cached_seconds = seconds;
  }
  w.put('"');
  w.put(std::string_view(cached, cached_len));
  if (nanos % 1000000 == 0) {
    if (nanos) {
      w.put('.');
      append_padded(nanos / 1000000, 3, w);
    }
  } else if (nanos % 1000 == 0) {
    w.put('.');
    append_padded(nanos / 1000, 6, w);
  } else {
    w.put('.');
    append_padded(nanos, 9, w);
  }
  w.put(std::string_view("Z\""));
}

// Shortest round-trip text, as fmt prints it: rare (limits, durations), not worth more.
void append_double(double v, Writer& w) {
  fmt::memory_buffer buf;
  fmt::format_to(std::back_inserter(buf), "{}", v);
  w.put(std::string_view(buf.data(), buf.size()));
}

void append_bool(bool v, Writer& w) { w.put(v ? std::string_view("true") : std::string_view("false")); }

#include "audit_json.inc"

}  // namespace

void append_json(const audit::Record& record, std::string& out) {
  Writer w(out);
  append(record, w);
}

}  // namespace corral
