// The `corral` command line. Kept apart from main() so tests can drive it.
#pragma once

namespace corral {

// Returns the process exit code: the agent's for `run`, 125 when corral
// itself failed, 126/127 when the command could not run or was not found.
int cli_main(int argc, char** argv);

}  // namespace corral
