// Test helpers shared by the kernel conformance suite (tests/backend/kernel_conformance.*) and the GPU tests
// (tests/gpu/): a buffer on any backend (device memory on CUDA, host memory on the CPU backends) and seeded random
// inputs. Header-only, so every test binary that includes it needs nothing else linked.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "backend/backend.h"

namespace sft::backend::test_buffers {

// A buffer of n elements of T on a backend, freed with it.
template <class T>
class Buf {
 public:
  Buf(Backend& be, size_t n) : be_(&be), n_(n), p_(static_cast<T*>(be.alloc(std::max<size_t>(n, 1) * sizeof(T)))) {}
  Buf(Backend& be, const std::vector<T>& host) : Buf(be, host.size()) { set(host); }
  ~Buf() { be_->free(p_); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  T* get() const { return p_; }
  operator T*() const { return p_; }
  size_t size() const { return n_; }
  void set(const std::vector<T>& host) { be_->upload(p_, host.data(), host.size() * sizeof(T)); }
  std::vector<T> host() const {
    std::vector<T> out(n_);
    be_->download(out.data(), p_, n_ * sizeof(T));
    return out;
  }

 private:
  Backend* be_;
  size_t n_;
  T* p_;
};

// n normal values (mean 0, stddev) from a seeded generator: the same inputs on every run and backend.
inline std::vector<float> randn(size_t n, uint64_t seed, float stddev = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, stddev);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// n integers uniform in [lo, hi).
inline std::vector<int32_t> randint(size_t n, int32_t lo, int32_t hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int32_t> d(lo, hi - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace sft::backend::test_buffers
