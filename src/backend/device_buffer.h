// A typed owning handle on backend memory (freed through the backend that allocated it).
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>

#include "backend/backend.h"

namespace sft::backend {

template <class T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend& be, int64_t n) : be_(&be), n_(n) {
    p_ = static_cast<T*>(be.alloc(static_cast<size_t>(n > 0 ? n : 1) * sizeof(T)));
  }
  DeviceBuffer(DeviceBuffer&& o) noexcept : be_(o.be_), p_(std::exchange(o.p_, nullptr)), n_(o.n_) {}
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      be_ = o.be_, p_ = std::exchange(o.p_, nullptr), n_ = o.n_;
    }
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { reset(); }

  void reset() {
    if (p_) be_->free(p_);
    p_ = nullptr, n_ = 0;
  }
  T* get() const { return p_; }
  int64_t size() const { return n_; }
  size_t bytes() const { return static_cast<size_t>(n_) * sizeof(T); }

 private:
  Backend* be_ = nullptr;
  T* p_ = nullptr;
  int64_t n_ = 0;
};

}  // namespace sft::backend
