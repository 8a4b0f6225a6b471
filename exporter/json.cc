#include "json.h"

#include <fmt/format.h>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/timestamp.pb.h>
#include <time.h>

namespace corral {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Length of the valid UTF-8 sequence at s[i], or 0 when invalid.
size_t utf8_len(const std::string& s, size_t i) {
  unsigned char c = s[i];
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; k++)
    if ((static_cast<unsigned char>(s[i + k]) & 0xc0) != 0x80) return 0;
  return n;
}

void append_string(const std::string& s, std::string& out) {
  out.push_back('"');
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    switch (c) {
      case '"': out += "\\\""; i++; continue;
      case '\\': out += "\\\\"; i++; continue;
      case '\n': out += "\\n"; i++; continue;
      case '\r': out += "\\r"; i++; continue;
      case '\t': out += "\\t"; i++; continue;
      default: break;
    }
    if (c < 0x20 || c == 0x7f) {
      fmt::format_to(std::back_inserter(out), "\\u{:04x}", c);
      i++;
      continue;
    }
    size_t n = utf8_len(s, i);
    if (n == 0) {
      out += "\\ufffd";
      i++;
      continue;
    }
    out.append(s, i, n);
    i += n;
  }
  out.push_back('"');
}

void append_timestamp(const Message& m, std::string& out) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  int64_t seconds = r->GetInt64(m, d->FindFieldByName("seconds"));
  int32_t nanos = r->GetInt32(m, d->FindFieldByName("nanos"));
  time_t t = static_cast<time_t>(seconds);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  out.push_back('"');
  out += buf;
  // as protobuf prints it: 0, 3, 6 or 9 fractional digits
  if (nanos % 1000000 == 0) {
    if (nanos) fmt::format_to(std::back_inserter(out), ".{:03d}", nanos / 1000000);
  } else if (nanos % 1000 == 0) {
    fmt::format_to(std::back_inserter(out), ".{:06d}", nanos / 1000);
  } else {
    fmt::format_to(std::back_inserter(out), ".{:09d}", nanos);
  }
  out += "Z\"";
}

void append_message(const Message& m, std::string& out);

void append_value(const Message& m, const Reflection* r, const FieldDescriptor* f, int index,
                  std::string& out) {
  bool rep = f->is_repeated();
  auto back = std::back_inserter(out);
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      fmt::format_to(back, "{}", rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT32:
      fmt::format_to(back, "{}", rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f));
      break;
    case FieldDescriptor::CPPTYPE_INT64:  // quoted: JSON numbers lose 64-bit precision
      fmt::format_to(back, "\"{}\"", rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f));
      break;
    case FieldDescriptor::CPPTYPE_UINT64:
      fmt::format_to(back, "\"{}\"", rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f));
      break;
    case FieldDescriptor::CPPTYPE_DOUBLE:
      fmt::format_to(back, "{}", rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f));
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
      fmt::format_to(back, "{}", rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f));
      break;
    case FieldDescriptor::CPPTYPE_BOOL:
      out += (rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false";
      break;
    case FieldDescriptor::CPPTYPE_ENUM:
      append_string((rep ? r->GetRepeatedEnum(m, f, index) : r->GetEnum(m, f))->name(), out);
      break;
    case FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      append_string(s, out);
      break;
    }
    case FieldDescriptor::CPPTYPE_MESSAGE: {
      const Message& sub = rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f);
      if (sub.GetDescriptor()->full_name() == "google.protobuf.Timestamp")
        append_timestamp(sub, out);
      else
        append_message(sub, out);
      break;
    }
  }
}

void append_message(const Message& m, std::string& out) {
  const auto* d = m.GetDescriptor();
  const auto* r = m.GetReflection();
  out.push_back('{');
  bool first = true;
  for (int i = 0; i < d->field_count(); i++) {
    const FieldDescriptor* f = d->field(i);
    // messages and oneof members only when set; other scalars always
    if (!f->is_repeated() && (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE ||
                              f->real_containing_oneof()) &&
        !r->HasField(m, f))
      continue;
    if (!first) out.push_back(',');
    first = false;
    out.push_back('"');
    out += f->name();
    out += "\":";
    if (f->is_repeated()) {
      out.push_back('[');
      int n = r->FieldSize(m, f);
      for (int k = 0; k < n; k++) {
        if (k) out.push_back(',');
        append_value(m, r, f, k, out);
      }
      out.push_back(']');
    } else {
      append_value(m, r, f, -1, out);
    }
  }
  out.push_back('}');
}

}  // namespace

void append_json(const Message& message, std::string& out) { append_message(message, out); }

}  // namespace corral
