#include "model/memory_plan.h"

#include <cstdint>

#include "model/decoder.h"
#include "model/lora.h"
#include "util/error.h"

namespace sft::model {
namespace {

// A Backend whose alloc() hands out distinct, never dereferenced addresses and counts the bytes; upload() and zero()
// are no-ops (the decoder's constructor uploads the RoPE table). A ForwardingBackend without an inner backend: any
// other call (a kernel) is an internal error.
class SizingBackend final : public backend::ForwardingBackend {
 public:
  explicit SizingBackend(bool fast_bf16)
      : ForwardingBackend("the sizing backend of the memory plan only counts allocations"), fast_bf16_(fast_bf16) {}
  int64_t bytes = 0;

  std::string name() const override { return "sizing"; }
  void* alloc(size_t n) override {
    bytes += static_cast<int64_t>(n);
    next_ += (n + 63) / 64 * 64 + 64;
    return reinterpret_cast<void*>(next_);
  }
  void free(void*) override {}
  void upload(void*, const void*, size_t) override {}
  void zero(void*, size_t) override {}
  void synchronize() override {}
  void f32_to_bf16(uint16_t*, const float*, int64_t) override {}  // on_weights_updated() is not called; harmless
  void round_to_bf16(float*, const float*, int64_t) override {}
  bool fast_bf16_gemm() const override { return fast_bf16_; }

 private:
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

std::unique_ptr<FrozenStorage> frozen_storage_for(Precision p, const LoraOptions& o) {
  if (!((p == Precision::BF16 && !o.keep_fp32_base) || o.load_in_4bit)) return nullptr;
  auto s = std::make_unique<FrozenStorage>();
  s->dtype = o.store_dtype_bf16 ? backend::DType::BF16 : backend::DType::F32;
  s->load_in_4bit = o.load_in_4bit;
  s->quant_type = parse_quant_type(o.bnb_4bit_quant_type);
  s->double_quant = o.bnb_4bit_use_double_quant;
  return s;
}

LoraMemoryPlan plan_lora_memory(const io::ModelConfig& cfg, const io::LoraAdapterConfig& lora, int64_t n_tokens,
                                Precision p, bool fast_bf16_gemm, bool gradient_checkpointing,
                                const FrozenStorage* storage) {
  SFT_CHECK(n_tokens > 0, "memory plan: tokens per micro-batch must be positive, got ", n_tokens);
  SizingBackend be(fast_bf16_gemm);
  Decoder dec(cfg, be, p, &lora, storage);
  LoraMemoryPlan out;
  MemoryPlan& m = out.plan;
  out.frozen = dec.planned_frozen_bytes();
  m.weights = be.bytes + out.frozen;
  for (const ParamRef& r : dec.parameters()) {
    m.parameters += r.numel;
    m.optimizer += 8 * r.numel;
  }
  dec.set_gradient_checkpointing(gradient_checkpointing);
  const int64_t before = be.bytes;
  { Workspace ws = dec.make_workspace(n_tokens, true, dec.head_chunk_rows()); }
  m.activations = be.bytes - before + plan_lora(cfg, lora, n_tokens).activation_bytes;
  return out;
}

}  // namespace sft::model
