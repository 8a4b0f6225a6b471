// corral_json_gen OUT: writes the JSON encoder of corral.audit.Record and every message in it
// to OUT, for json.cc to include: one function per type that reads its fields through the
// generated accessors. Reading them through reflection, field by field, was most of the cost
// of a record; generated from the descriptors, the encoder still follows audit.proto as it is.
//
// The mapping (as protobuf's JSON printer with proto field names and primitive fields always
// printed): fields in declaration order; messages and oneof members only when set, other
// scalars always; 64-bit integers quoted; Timestamps in RFC 3339.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/timestamp.pb.h>

#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "audit.pb.h"

namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

bool is_timestamp(const Descriptor* d) { return d == google::protobuf::Timestamp::descriptor(); }

// "corral.audit.Exec" -> "corral::audit::Exec"
std::string cpp_name(const Descriptor* d) {
  std::string out = "::";
  for (char c : d->full_name()) out += c == '.' ? std::string("::") : std::string(1, c);
  return out;
}

// The statement that writes `value`, one value of field f.
std::string write_value(const FieldDescriptor* f, const std::string& value) {
  switch (f->type()) {
    case FieldDescriptor::TYPE_INT32:
    case FieldDescriptor::TYPE_UINT32: return "append_int(" + value + ", w);";
    case FieldDescriptor::TYPE_INT64:
    case FieldDescriptor::TYPE_UINT64:
      return "w.put('\"'); append_int(" + value + ", w); w.put('\"');";
    case FieldDescriptor::TYPE_DOUBLE: return "append_double(" + value + ", w);";
    case FieldDescriptor::TYPE_BOOL: return "append_bool(" + value + ", w);";
    case FieldDescriptor::TYPE_STRING:
    case FieldDescriptor::TYPE_BYTES: return "append_string(" + value + ", w);";
    case FieldDescriptor::TYPE_MESSAGE:
      if (is_timestamp(f->message_type()))
        return "append_timestamp(" + value + ".seconds(), " + value + ".nanos(), w);";
      return "append(" + value + ", w);";
    default:
      // sint, fixed, float, enums: none in audit.proto yet; add their mapping with the first.
      throw std::runtime_error("field " + f->full_name() + ": its type has no JSON mapping here");
  }
}

// The types to write: Record and every message type in it, Timestamp aside.
void collect(const Descriptor* d, std::vector<const Descriptor*>& order,
             std::set<const Descriptor*>& seen) {
  if (is_timestamp(d) || !seen.insert(d).second) return;
  for (int i = 0; i < d->field_count(); i++)
    if (const Descriptor* sub = d->field(i)->message_type()) collect(sub, order, seen);
  order.push_back(d);
}

// The C++ string literal of `text`.
std::string literal(const std::string& text) {
  std::string out = "\"";
  for (char c : text) out += c == '"' || c == '\\' ? std::string("\\") + c : std::string(1, c);
  return out + "\"";
}

void write_function(const Descriptor* d, std::ostream& out) {
  out << "void append(const " << cpp_name(d) << "& m, Writer& w) {\n"
      << "  w.put('{');\n";
  // Until a field that is always written, whether a key needs a comma is known at run time only.
  bool comma_known = false;
  bool first_declared = false;
  for (int i = 0; i < d->field_count(); i++) {
    const FieldDescriptor* f = d->field(i);
    if (f->is_map()) throw std::runtime_error("map field " + f->full_name() + ": not mapped here");
    const std::string& name = f->name();
    const bool always = !(!f->is_repeated() && (f->message_type() || f->real_containing_oneof()));
    const std::string key = "\"" + name + "\":";
    std::string put_key;
    if (comma_known) {
      put_key = "w.put(" + literal("," + key) + ");";
    } else if (i == 0 && always) {
      put_key = "w.put(" + literal(key) + ");";
    } else {
      if (!first_declared) out << "  bool first = true;\n";
      first_declared = true;
      put_key = "if (!first) w.put(','); first = false; w.put(" + literal(key) + ");";
    }
    if (f->is_repeated()) {
      out << "  " << put_key << "\n"
          << "  w.put('[');\n"
          << "  for (int i = 0; i < m." << name << "_size(); i++) {\n"
          << "    if (i) w.put(',');\n"
          << "    " << write_value(f, "m." + name + "(i)") << "\n"
          << "  }\n"
          << "  w.put(']');\n";
    } else if (!always) {
      out << "  if (m.has_" << name << "()) {\n"
          << "    " << put_key << "\n"
          << "    " << write_value(f, "m." + name + "()") << "\n"
          << "  }\n";
    } else {
      out << "  " << put_key << "\n"
          << "  " << write_value(f, "m." + name + "()") << "\n";
    }
    comma_known = comma_known || always;
  }
  out << "  w.put('}');\n"
      << "}\n\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: corral_json_gen OUT\n";
    return 2;
  }
  try {
    std::vector<const Descriptor*> order;
    std::set<const Descriptor*> seen;
    collect(corral::audit::Record::descriptor(), order, seen);
    std::ostringstream code;
    code << "// Generated by corral_json_gen from audit.proto's descriptors: do not edit.\n\n";
    for (const Descriptor* d : order) code << "void append(const " << cpp_name(d) << "& m, Writer& w);\n";
    code << "\n";
    for (const Descriptor* d : order) write_function(d, code);
    std::ofstream file(argv[1], std::ios::trunc);
    file << code.str();
    file.close();
    if (!file) throw std::runtime_error(std::string("failed to write ") + argv[1]);
  } catch (const std::exception& e) {
    std::cerr << "corral_json_gen: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
