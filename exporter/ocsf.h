// Audit records as OCSF 1.1 events, for sinks that feed an OCSF pipeline.
//
// Each record kind and its OCSF 1.1.0 class (activity):
//   exec           Process Activity 1007 (Launch)
//   exit           Process Activity 1007 (Terminate)
//   open           File System Activity 1001 (Create with O_CREAT, Update when it
//                  may write, else Read)
//   unlink         File System Activity 1001 (Delete)
//   rename         File System Activity 1001 (Rename; the new path is file_result)
//   link           File System Activity 1001 (Create of the new name; a
//                  symbolic link's file type Symbolic Link)
//   truncate       File System Activity 1001 (Update)
//   connect        Network Activity 4001 (Open, Refuse, or Fail)
//   session_start  Process Activity 1007 (Launch of the agent's main process)
//   session_end    Process Activity 1007 (Terminate of it)
//   policy_load    Entity Management 3004 (Update of the policy)
//   agent          Application Lifecycle 6002 (Start, Stop, or Other)
//   lost, checkpoint, budget
//                  Base Event 0 (Other): OCSF 1.1.0 has no class for them
// A record with a decision is instead a Detection Finding 2004 (Create), with
// the Security Control profile's action and disposition; the event's objects
// are its evidence. Failed syscalls have status Failure and the errno name as
// status_detail. What OCSF has no attribute for (seq, session, boot_id, prev,
// the record kind's other fields, the decision) is kept under `unmapped`.
#pragma once

#include <string>

#include "audit.pb.h"

namespace corral {

// One OCSF event as a JSON object (no trailing newline).
std::string to_ocsf_json(const audit::Record& record);

}  // namespace corral
