// Shared helpers of the fuzz targets (tests/fuzz/fuzz_*.cpp). Every target has the libFuzzer entry point
// LLVMFuzzerTestOneInput; built with clang -fsanitize=fuzzer it is a fuzzer (scripts/fuzz.sh), built with any compiler
// and replay_main.cpp it replays a corpus (the `fuzz` ctest label, run under ASan+UBSan by scripts/test.sh).
// A target may throw only sft::Error (the one-line error every bad input must end in); anything else — another
// exception type, a crash, a sanitizer report, a hang — is a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>

#include "util/error.h"

namespace sft::fuzz {

// A private scratch folder for targets whose readers take paths (removed at exit).
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    const char* base = std::getenv("TMPDIR");
    std::filesystem::path d = std::filesystem::path(base && *base ? base : "/tmp") /
                              ("sft-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(scratch_dir(), ec);
    });
    return d;
  }();
  return dir;
}

inline void write_bytes(const std::filesystem::path& p, std::string_view bytes) {
  FILE* f = std::fopen(p.c_str(), "wb");
  if (!f) std::abort();
  if (!bytes.empty() && std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) std::abort();
  std::fclose(f);
}

// Runs fn; sft::Error is the expected outcome of bad input, any other exception escapes (a finding).
template <class F>
void expect_clean(F&& fn) {
  try {
    fn();
  } catch (const sft::Error&) {
  }
}

// Splits the input at the first occurrence of a separator line "\n----\n" (two-part targets).
inline std::pair<std::string_view, std::string_view> split2(std::string_view in) {
  constexpr std::string_view sep = "\n----\n";
  const size_t k = in.find(sep);
  if (k == std::string_view::npos) return {in, {}};
  return {in.substr(0, k), in.substr(k + sep.size())};
}

}  // namespace sft::fuzz
