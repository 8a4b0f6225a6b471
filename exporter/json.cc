#include "json.h"

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/timestamp.pb.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <unordered_map>
#include <vector>

namespace corral {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::OneofDescriptor;
using google::protobuf::Reflection;

// How a field's values are written.
enum class Kind : uint8_t {
  kInt32,
  kUInt32,
  kInt64,  // quoted: JSON numbers lose 64-bit precision
  kUInt64,
  kDouble,
  kFloat,
  kBool,
  kEnum,
  kString,
  kTimestamp,
  kMessage,
};

struct Layout;

struct Field {
  const FieldDescriptor* descriptor;
  std::string key;  // "name":
  Kind kind;
  bool repeated;
  bool message;          // written only when set (oneof members too: see `oneof`)
  int oneof;             // index of its real oneof; -1 when in none
  const Layout* layout;  // kMessage, kTimestamp: that of its type
};

// What a message type's JSON is made of, read off its descriptor once: walking the descriptor
// for every record (names, types, oneofs, the Timestamp test) cost more than the values.
struct Layout {
  // The generated type's: asking each message for its own (GetReflection) costs a call_once.
  const Reflection* reflection = nullptr;
  std::vector<Field> fields;
  std::vector<const OneofDescriptor*> oneofs;  // the real ones
  const FieldDescriptor* seconds = nullptr;    // a Timestamp's
  const FieldDescriptor* nanos = nullptr;
};

Kind kind_of(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: return Kind::kInt32;
    case FieldDescriptor::CPPTYPE_UINT32: return Kind::kUInt32;
    case FieldDescriptor::CPPTYPE_INT64: return Kind::kInt64;
    case FieldDescriptor::CPPTYPE_UINT64: return Kind::kUInt64;
    case FieldDescriptor::CPPTYPE_DOUBLE: return Kind::kDouble;
    case FieldDescriptor::CPPTYPE_FLOAT: return Kind::kFloat;
    case FieldDescriptor::CPPTYPE_BOOL: return Kind::kBool;
    case FieldDescriptor::CPPTYPE_ENUM: return Kind::kEnum;
    case FieldDescriptor::CPPTYPE_STRING: return Kind::kString;
    case FieldDescriptor::CPPTYPE_MESSAGE:
      return f->message_type() == google::protobuf::Timestamp::descriptor() ? Kind::kTimestamp
                                                                             : Kind::kMessage;
  }
  throw std::logic_error("json: field " + f->full_name() + " has an unknown type");
}

// The layouts of every type written so far; never freed, as generated types live as long as
// the program.
class Layouts {
 public:
  const Layout& of(const Descriptor* d) {
    std::lock_guard lock(mutex_);
    return build(d);
  }

 private:
  // Entered before its fields are filled in: a type may contain itself.
  const Layout& build(const Descriptor* d) {
    auto [it, fresh] = layouts_.try_emplace(d);
    if (!fresh) return *it->second;
    it->second = std::make_unique<Layout>();
    Layout& layout = *it->second;
    const Message* prototype =
        google::protobuf::MessageFactory::generated_factory()->GetPrototype(d);
    if (!prototype) throw std::invalid_argument("json: " + d->full_name() + " is no generated type");
    layout.reflection = prototype->GetReflection();
    // Real oneofs come first in a descriptor, synthetic ones (proto3 optional) after.
    for (int i = 0; i < d->real_oneof_decl_count(); i++) layout.oneofs.push_back(d->oneof_decl(i));
    if (d == google::protobuf::Timestamp::descriptor()) {
      layout.seconds = d->FindFieldByName("seconds");
      layout.nanos = d->FindFieldByName("nanos");
    }
    for (int i = 0; i < d->field_count(); i++) {
      const FieldDescriptor* f = d->field(i);
      const OneofDescriptor* oneof = f->real_containing_oneof();
      layout.fields.push_back({f, "\"" + f->name() + "\":", kind_of(f), f->is_repeated(),
                               f->message_type() != nullptr, oneof ? oneof->index() : -1,
                               f->message_type() ? &build(f->message_type()) : nullptr});
    }
    return layout;
  }

  std::mutex mutex_;
  std::unordered_map<const Descriptor*, std::unique_ptr<Layout>> layouts_;
};

// The layout of `m`'s type. The one written last is kept per thread: one record type is
// written over and over.
const Layout& layout_of(const Message& m) {
  static Layouts layouts;
  thread_local const Reflection* last = nullptr;
  thread_local const Layout* last_layout = nullptr;
  const Reflection* r = m.GetReflection();
  if (r != last) {
    const Layout& layout = layouts.of(m.GetDescriptor());
    // A dynamic message's reflection is its factory's, and its parts' not the layouts'.
    if (layout.reflection != r)
      throw std::invalid_argument("json: " + m.GetDescriptor()->full_name() +
                                  " is not of the generated type");
    last_layout = &layout;
    last = r;
  }
  return *last_layout;
}

// Appends to a string through a cursor, making room ahead: std::string's push_back and append
// cost a call and a capacity check each, and a record is ~150 small writes.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out), len_(out.size()) {}
  // What was written stays, the room ahead goes.
  ~Writer() { out_.resize(len_); }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  // Where the next `n` bytes go; commit() those written.
  char* room(size_t n) {
    if (out_.size() - len_ < n) out_.resize(std::max(out_.size() * 2, len_ + n + 512));
    return out_.data() + len_;
  }
  void commit(size_t n) { len_ += n; }
  void put(char c) {
    *room(1) = c;
    len_++;
  }
  void put(std::string_view s) {
    std::memcpy(room(s.size()), s.data(), s.size());
    len_ += s.size();
  }

 private:
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

// A JSON string: escapes, \u00XX for the other control bytes, well-formed UTF-8 sequences as
// they are, U+FFFD for each byte of no sequence, so that every line stays valid JSON.
void append_string(std::string_view s, Writer& w) {
  static constexpr char kHex[] = "0123456789abcdef";
  // Each byte takes at most 6 ("\u00XX", "\ufffd"), plus the quotes.
  char* start = w.room(s.size() * 6 + 2);
  char* p = start;
  *p++ = '"';
  for (size_t i = 0; i < s.size();) {
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
void append_timestamp(const Message& m, const Layout& layout, Writer& w) {
  const Reflection* r = layout.reflection;
  int64_t seconds = r->GetInt64(m, layout.seconds);
  int32_t nanos = r->GetInt32(m, layout.nanos);
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
template <typename Float>
void append_float(Float v, Writer& w) {
  fmt::memory_buffer buf;
  fmt::format_to(std::back_inserter(buf), "{}", v);
  w.put(std::string_view(buf.data(), buf.size()));
}

void append_message(const Message& m, const Layout& layout, Writer& w);

void append_value(const Message& m, const Reflection* r, const Field& f, int index, Writer& w) {
  const FieldDescriptor* d = f.descriptor;
  bool rep = f.repeated;
  switch (f.kind) {
    case Kind::kInt32:
      append_int(rep ? r->GetRepeatedInt32(m, d, index) : r->GetInt32(m, d), w);
      break;
    case Kind::kUInt32:
      append_int(rep ? r->GetRepeatedUInt32(m, d, index) : r->GetUInt32(m, d), w);
      break;
    case Kind::kInt64:
      w.put('"');
      append_int(rep ? r->GetRepeatedInt64(m, d, index) : r->GetInt64(m, d), w);
      w.put('"');
      break;
    case Kind::kUInt64:
      w.put('"');
      append_int(rep ? r->GetRepeatedUInt64(m, d, index) : r->GetUInt64(m, d), w);
      w.put('"');
      break;
    case Kind::kDouble:
      append_float(rep ? r->GetRepeatedDouble(m, d, index) : r->GetDouble(m, d), w);
      break;
    case Kind::kFloat:
      append_float(rep ? r->GetRepeatedFloat(m, d, index) : r->GetFloat(m, d), w);
      break;
    case Kind::kBool:
      w.put((rep ? r->GetRepeatedBool(m, d, index) : r->GetBool(m, d)) ? std::string_view("true")
                                                                        : std::string_view("false"));
      break;
    case Kind::kEnum:
      append_string((rep ? r->GetRepeatedEnum(m, d, index) : r->GetEnum(m, d))->name(), w);
      break;
    case Kind::kString: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, d, index, &scratch)
                                 : r->GetStringReference(m, d, &scratch);
      append_string(s, w);
      break;
    }
    case Kind::kTimestamp:
    case Kind::kMessage: {
      const Message& sub = rep ? r->GetRepeatedMessage(m, d, index) : r->GetMessage(m, d);
      if (f.kind == Kind::kTimestamp)
        append_timestamp(sub, *f.layout, w);
      else
        append_message(sub, *f.layout, w);
      break;
    }
  }
}

void append_message(const Message& m, const Layout& layout, Writer& w) {
  const Reflection* r = layout.reflection;
  // Which member of each oneof is set, asked once per oneof rather than once per member.
  constexpr size_t kMaxOneofs = 8;
  const FieldDescriptor* set[kMaxOneofs];
  if (layout.oneofs.size() > kMaxOneofs)
    throw std::logic_error("json: a message with too many oneofs");
  for (size_t i = 0; i < layout.oneofs.size(); i++)
    set[i] = r->GetOneofFieldDescriptor(m, layout.oneofs[i]);
  w.put('{');
  bool first = true;
  for (const Field& f : layout.fields) {
    // messages and oneof members only when set; other scalars always
    if (f.oneof >= 0) {
      if (set[f.oneof] != f.descriptor) continue;
    } else if (f.message && !f.repeated && !r->HasField(m, f.descriptor)) {
      continue;
    }
    if (!first) w.put(',');
    first = false;
    w.put(f.key);
    if (f.repeated) {
      w.put('[');
      int n = r->FieldSize(m, f.descriptor);
      for (int k = 0; k < n; k++) {
        if (k) w.put(',');
        append_value(m, r, f, k, w);
      }
      w.put(']');
    } else {
      append_value(m, r, f, -1, w);
    }
  }
  w.put('}');
}

}  // namespace

void append_json(const Message& message, std::string& out) {
  Writer w(out);
  append_message(message, layout_of(message), w);
}

}  // namespace corral
