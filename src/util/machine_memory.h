// How much memory this process may still use: the smaller of /proc/meminfo's MemAvailable and the cgroup's room
// (v2 memory.max - memory.current, or v1 limit_in_bytes - usage_in_bytes). sft train compares its memory plan with
// it before allocating. Linux only; elsewhere (or if nothing is readable) "unknown".
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace sft {

struct MachineMemory {
  std::optional<int64_t> bytes;  // nullopt: unknown
  std::string source;            // "MemAvailable", "cgroup limit", ...
};
MachineMemory available_memory();

// This process's resident memory now (VmRSS of /proc/self/status); nullopt where it is not readable. sft train adds it
// to its memory plan: the plan counts the model's allocations, and the process already holds the runtime libraries,
// the tokenizer and the tokenized dataset (0.4 GiB at the Qwen2.5-7B shape) before the model is loaded.
std::optional<int64_t> resident_bytes();

}  // namespace sft
