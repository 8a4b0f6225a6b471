#include "sink.h"

#include "ocsf.h"

namespace corral {

std::string render(const LogRecord& record, SinkFormat format) {
  return format == SinkFormat::kOcsf ? to_ocsf_json(record.record) : record.line;
}

}  // namespace corral
