#include "cli.h"

int main(int argc, char** argv) { return corral::cli_main(argc, argv); }
