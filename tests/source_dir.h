#pragma once
// The source tree the tests read their fixtures from. Defined in a one-line translation unit that CMake writes into
// the build folder (tests/CMakeLists.txt) instead of a -DSFT_SOURCE_DIR on every test: the path differs per clone, and
// a define on the command line made every test object a ccache miss in each fresh clone (CI builds two trees).
namespace sft::test {
const char* source_dir();
}
