// Host-memory part shared by the two CPU backends (reference and fast): allocation, copies, synchronisation.
#pragma once
#include <cstdlib>
#include <cstring>

#include "backend/backend.h"
#include "util/error.h"

namespace sft::backend::cpu {

class CpuMemoryBackend : public Backend {
 public:
  void* alloc(size_t bytes) override {
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0) rounded = 64;
    void* p = std::aligned_alloc(64, rounded);
    SFT_CHECK(p != nullptr, "cpu backend: out of memory allocating ", bytes, " bytes");
    std::memset(p, 0, rounded);
    return p;
  }
  void free(void* p) override { std::free(p); }
  void upload(void* dst, const void* src, size_t bytes) override { if (bytes) std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { if (bytes) std::memcpy(dst, src, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { if (bytes) std::memmove(dst, src, bytes); }
  void zero(void* p, size_t bytes) override { if (bytes) std::memset(p, 0, bytes); }
  void synchronize() override {}
  const void* host_view(const void* p) const override { return p; }  // host memory is the device memory
  // LoRA dropout is rare and cheap next to the gemms: the generic host loop (its memory is the host's anyway).
  void dropout(float* y, const float* x, int64_t n, float p, uint64_t seed) override {
    Backend::dropout(y, x, n, p, seed);
  }
};

}  // namespace sft::backend::cpu
