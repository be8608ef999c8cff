#include "model/memory_plan.h"

#include <stdexcept>

#include "model/decoder.h"
#include "util/error.h"

namespace sft::model {
namespace {

// A Backend whose alloc() hands out distinct, never dereferenced addresses and counts the bytes; upload() is a
// no-op (the decoder's constructor uploads the RoPE table) and every kernel is an internal error.
class SizingBackend final : public backend::Backend {
 public:
  explicit SizingBackend(bool fast_bf16) : fast_bf16_(fast_bf16) {}
  int64_t bytes = 0;

  std::string name() const override { return "sizing"; }
  void* alloc(size_t n) override {
    bytes += static_cast<int64_t>(n);
    next_ += (n + 63) / 64 * 64 + 64;
    return reinterpret_cast<void*>(next_);
  }
  void free(void*) override {}
  void upload(void*, const void*, size_t) override {}
  void download(void*, const void*, size_t) override { fail(); }
  void zero(void*, size_t) override {}
  void synchronize() override {}
  void copy(void*, const void*, size_t) override { fail(); }
  void adamw_step(float*, const float*, float*, float*, int64_t, const backend::AdamWArgs&) override { fail(); }
  double sum_squares(const float*, int64_t) override { fail(); }
  void scale(float*, float, int64_t) override { fail(); }
  void add(float*, const float*, int64_t) override { fail(); }
  void f32_to_bf16(uint16_t*, const float*, int64_t) override {}  // on_weights_updated() is not called; harmless
  void bf16_to_f32(float*, const uint16_t*, int64_t) override { fail(); }
  void round_to_bf16(float*, const float*, int64_t) override {}
  bool fast_bf16_gemm() const override { return fast_bf16_; }
  void gemm(bool, bool, int64_t, int64_t, int64_t, float, const void*, int64_t, const void*, int64_t, float, float*,
            int64_t, backend::DType) override { fail(); }
  void add_bias(float*, const float*, int64_t, int64_t) override { fail(); }
  void bias_grad(float*, const float*, int64_t, int64_t) override { fail(); }
  void embedding_forward(float*, const float*, const int32_t*, int64_t, int64_t) override { fail(); }
  void embedding_backward(float*, const float*, const int32_t*, int64_t, int64_t) override { fail(); }
  void rmsnorm_forward(float*, float*, const float*, const float*, int64_t, int64_t, float) override { fail(); }
  void rmsnorm_backward(float*, float*, const float*, const float*, const float*, const float*, int64_t,
                        int64_t) override { fail(); }
  void rope(float*, const int32_t*, const float*, int64_t, int64_t, int64_t, bool) override { fail(); }
  void attention_forward(float*, float*, const float*, const float*, const float*, const int32_t*,
                         const backend::AttnShape&) override { fail(); }
  void attention_backward(float*, float*, float*, const float*, const float*, const float*, const float*,
                          const float*, const float*, const int32_t*, const backend::AttnShape&) override { fail(); }
  void swiglu_forward(float*, const float*, const float*, int64_t) override { fail(); }
  void swiglu_backward(float*, float*, const float*, const float*, const float*, int64_t) override { fail(); }
  void softmax_cross_entropy(float*, float*, uint8_t*, const int32_t*, int64_t, int64_t, float) override { fail(); }

 private:
  [[noreturn]] static void fail() { throw Error("internal: the sizing backend only counts allocations"); }
  bool fast_bf16_;
  uintptr_t next_ = 4096;
};

}  // namespace

MemoryPlan plan_training_memory(const io::ModelConfig& cfg, int64_t n_tokens, Precision p, bool fast_bf16_gemm,
                                bool gradient_checkpointing) {
  SFT_CHECK(n_tokens > 0, "memory plan: tokens per micro-batch must be positive, got ", n_tokens);
  SizingBackend be(fast_bf16_gemm);
  Decoder dec(cfg, be, p);
  MemoryPlan m;
  const int64_t floats = dec.buffer_floats();
  m.gradients = floats * 4;
  m.compute_copies = p == Precision::BF16 ? floats * (fast_bf16_gemm ? 2 : 4) : 0;
  m.weights = be.bytes - m.gradients - m.compute_copies;  // masters + RoPE table
  for (const ParamRef& r : dec.parameters()) {
    m.parameters += r.numel;
    m.optimizer += 8 * r.numel;  // train/adamw.cpp: m and v per parameter tensor
  }
  dec.set_gradient_checkpointing(gradient_checkpointing);
  const int64_t before = be.bytes;
  { Workspace ws = dec.make_workspace(n_tokens, true, dec.head_chunk_rows()); }
  m.activations = be.bytes - before;
  return m;
}

}  // namespace sft::model
