#include "util/machine_memory.h"

#include <fstream>
#include <sstream>

namespace sft {
namespace {

std::optional<int64_t> read_number(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  if (!(f >> s) || s == "max") return std::nullopt;
  try {
    size_t used = 0;
    const long long v = std::stoll(s, &used);
    if (used != s.size() || v < 0) return std::nullopt;
    return static_cast<int64_t>(v);
  } catch (...) {
    return std::nullopt;
  }
}

// The "Key:   N kB" line of a /proc file, in bytes.
std::optional<int64_t> proc_kib_line(const char* path, const std::string& key) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key, 0) != 0) continue;
    std::istringstream in(line.substr(key.size()));
    long long kib = -1;
    if (in >> kib && kib >= 0) return static_cast<int64_t>(kib) * 1024;
  }
  return std::nullopt;
}

std::optional<int64_t> cgroup_room() {
  if (auto max = read_number("/sys/fs/cgroup/memory.max")) {  // cgroup v2 (the process's cgroup is mounted there)
    const int64_t cur = read_number("/sys/fs/cgroup/memory.current").value_or(0);
    return *max > cur ? *max - cur : 0;
  }
  auto limit = read_number("/sys/fs/cgroup/memory/memory.limit_in_bytes");  // v1; "no limit" is a huge number
  if (limit && *limit < (int64_t{1} << 60)) {
    const int64_t cur = read_number("/sys/fs/cgroup/memory/memory.usage_in_bytes").value_or(0);
    return *limit > cur ? *limit - cur : 0;
  }
  return std::nullopt;
}

}  // namespace

MachineMemory available_memory() {
  MachineMemory m;
  if (auto a = proc_kib_line("/proc/meminfo", "MemAvailable:")) m.bytes = *a, m.source = "MemAvailable";
  if (auto c = cgroup_room(); c && (!m.bytes || *c < *m.bytes)) m.bytes = *c, m.source = "cgroup limit";
  return m;
}

std::optional<int64_t> resident_bytes() { return proc_kib_line("/proc/self/status", "VmRSS:"); }

}  // namespace sft
