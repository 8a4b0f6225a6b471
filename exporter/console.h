// The live view: one readable line per record, for a terminal.
#pragma once

#include <string>

#include "audit.pb.h"

namespace corral {

std::string format_record(const audit::Record& record);

}  // namespace corral
