// Helpers of the GPU tests: a CUDA backend (tests skip when no device is usable), device buffers on any backend,
// random inputs and tolerance checks against the CPU reference backend.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "../backend/backend_test_buffers.h"
#include "util/error.h"

namespace sft::gputest {

// The CUDA backend of device 0, or nullptr with the reason in *why when none is usable.
inline std::unique_ptr<backend::Backend> try_cuda(std::string* why) {
  try {
    return backend::make_cuda_backend(0);
  } catch (const Error& e) {
    if (why) *why = e.what();
    return nullptr;
  }
}

#define SFT_REQUIRE_CUDA(var)                                   \
  std::string var##_why;                                        \
  auto var = ::sft::gputest::try_cuda(&var##_why);              \
  if (!var) GTEST_SKIP() << "no CUDA device: " << var##_why

using backend::test_buffers::Buf;  // tests/backend/backend_test_buffers.h (shared with the kernel conformance suite)
using backend::test_buffers::randint;
using backend::test_buffers::randn;

// Every |got - want| <= atol + rtol * |want|; reports the worst element.
inline ::testing::AssertionResult close(const std::vector<float>& got, const std::vector<float>& want, float atol,
                                        float rtol) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  double worst = 0;
  size_t wi = 0;
  size_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(double(got[i]) - double(want[i]));
    const double lim = atol + rtol * std::fabs(double(want[i]));
    if (!(err <= lim)) {
      ++bad;
      if (!(err / lim <= worst)) worst = err / lim, wi = i;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements off; worst at " << wi << ": got "
                                       << got[wi] << ", want " << want[wi] << " (atol " << atol << ", rtol " << rtol
                                       << ")";
}

// Tolerance relative to the largest magnitude of the reference: |got - want| <= tol * max(1, max|want|).
inline ::testing::AssertionResult close_scaled(const std::vector<float>& got, const std::vector<float>& want,
                                               float tol) {
  float mx = 1.0f;
  for (float w : want) mx = std::max(mx, std::fabs(w));
  return close(got, want, tol * mx, 0.0f);
}

}  // namespace sft::gputest
