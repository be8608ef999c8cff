// The family specs against the decoder and the memory plan, for every fixture config (tests/fixtures/io/configs,
// cut to 1 layer and a 256-token vocabulary so that the largest fits in a test):
//  - the decoder's parameters() are exactly tensor_table(): names, shapes, weight decay, in order;
//  - model::plan_training_memory (what `sft info` prints) equals the bytes a counting backend wrapped around the CPU
//    backend sees allocated by a real model + AdamW + one training step, in fp32 and bf16 mode.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <random>

#include "source_dir.h"
#include "backend/backend.h"
#include "model/family.h"
#include "model/memory_plan.h"
#include "model/model.h"
#include "train/adamw.h"
#include "util/file_util.h"

namespace sft::model {
namespace {

// A Backend decorator that counts the bytes alive through alloc()/free() (and their peak); every kernel forwards.
class CountingBackend final : public backend::Backend {
 public:
  explicit CountingBackend(std::unique_ptr<backend::Backend> inner) : in_(std::move(inner)) {}
  int64_t live = 0, peak = 0;

  std::string name() const override { return "counting(" + in_->name() + ")"; }
  void* alloc(size_t n) override {
    void* p = in_->alloc(n);
    sizes_[p] = n;
    live += static_cast<int64_t>(n);
    peak = std::max(peak, live);
    return p;
  }
  void free(void* p) override {
    live -= static_cast<int64_t>(sizes_.at(p));
    sizes_.erase(p);
    in_->free(p);
  }
  void upload(void* d, const void* s, size_t n) override { in_->upload(d, s, n); }
  void download(void* d, const void* s, size_t n) override { in_->download(d, s, n); }
  void zero(void* p, size_t n) override { in_->zero(p, n); }
  void synchronize() override { in_->synchronize(); }
  void copy(void* d, const void* s, size_t n) override { in_->copy(d, s, n); }
  void adamw_step(float* p, const float* g, float* m, float* v, int64_t n, const backend::AdamWArgs& a) override {
    in_->adamw_step(p, g, m, v, n, a);
  }
  double sum_squares(const float* x, int64_t n) override { return in_->sum_squares(x, n); }
  void scale(float* x, float s, int64_t n) override { in_->scale(x, s, n); }
  void add(float* y, const float* x, int64_t n) override { in_->add(y, x, n); }
  void f32_to_bf16(uint16_t* d, const float* s, int64_t n) override { in_->f32_to_bf16(d, s, n); }
  void bf16_to_f32(float* d, const uint16_t* s, int64_t n) override { in_->bf16_to_f32(d, s, n); }
  void round_to_bf16(float* d, const float* s, int64_t n) override { in_->round_to_bf16(d, s, n); }
  bool fast_bf16_gemm() const override { return in_->fast_bf16_gemm(); }
  bool attention_skips_other_documents() const override { return in_->attention_skips_other_documents(); }
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A, int64_t lda, const void* B,
            int64_t ldb, float beta, float* C, int64_t ldc, backend::DType ab) override {
    in_->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, ab);
  }
  void add_bias(float* y, const float* b, int64_t r, int64_t c) override { in_->add_bias(y, b, r, c); }
  void bias_grad(float* db, const float* dy, int64_t r, int64_t c) override { in_->bias_grad(db, dy, r, c); }
  void embedding_forward(float* o, const float* t, const int32_t* ids, int64_t n, int64_t H) override {
    in_->embedding_forward(o, t, ids, n, H);
  }
  void embedding_backward(float* dt, const float* d, const int32_t* ids, int64_t n, int64_t H) override {
    in_->embedding_backward(dt, d, ids, n, H);
  }
  void rmsnorm_forward(float* y, float* r, const float* x, const float* w, int64_t n, int64_t H, float e) override {
    in_->rmsnorm_forward(y, r, x, w, n, H, e);
  }
  void rmsnorm_backward(float* dx, float* dw, const float* dy, const float* x, const float* w, const float* r,
                        int64_t n, int64_t H) override {
    in_->rmsnorm_backward(dx, dw, dy, x, w, r, n, H);
  }
  void rope(float* x, const int32_t* p, const float* f, int64_t n, int64_t h, int64_t d, bool inv) override {
    in_->rope(x, p, f, n, h, d, inv);
  }
  void attention_forward(float* o, float* l, const float* q, const float* k, const float* v, const int32_t* doc,
                         const backend::AttnShape& s) override {
    in_->attention_forward(o, l, q, k, v, doc, s);
  }
  void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                          const float* v, const float* out, const float* lse, const int32_t* doc,
                          const backend::AttnShape& s) override {
    in_->attention_backward(dq, dk, dv, dout, q, k, v, out, lse, doc, s);
  }
  void swiglu_forward(float* h, const float* g, const float* u, int64_t n) override { in_->swiglu_forward(h, g, u, n); }
  void swiglu_backward(float* dg, float* du, const float* dh, const float* g, const float* u, int64_t n) override {
    in_->swiglu_backward(dg, du, dh, g, u, n);
  }
  void softmax_cross_entropy(float* lg, float* loss, uint8_t* gr, const int32_t* t, int64_t rows, int64_t V,
                             float s) override {
    in_->softmax_cross_entropy(lg, loss, gr, t, rows, V, s);
  }

 private:
  std::unique_ptr<backend::Backend> in_;
  std::map<void*, size_t> sizes_;
};

std::vector<std::filesystem::path> fixture_configs() {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(std::string(sft::test::source_dir()) + "/tests/fixtures/io/configs"))
    if (e.path().extension() == ".json") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

io::ModelConfig cut(io::ModelConfig c) {
  c.num_hidden_layers = 1;
  c.vocab_size = 256;
  return c;
}

TEST(Family, EveryFixtureHasAFamilyAndTheDecoderAllocatesItsTable) {
  const auto configs = fixture_configs();
  ASSERT_GE(configs.size(), 6u);
  for (const auto& path : configs) {
    SCOPED_TRACE(path.filename().string());
    const io::ModelConfig c = cut(load_config(path));
    auto be = backend::make_cpu_backend();
    auto m = Model::random(c, 1, *be, Precision::F32);
    const auto params = m->parameters();
    const auto table = tensor_table(c);
    ASSERT_EQ(params.size(), table.size());
    int64_t n = 0;
    for (size_t i = 0; i < table.size(); ++i) {
      EXPECT_EQ(params[i].name, table[i].name);
      EXPECT_EQ(params[i].shape, table[i].shape);
      EXPECT_EQ(params[i].decay, table[i].decay);
      EXPECT_EQ(params[i].numel, table[i].numel());
      n += params[i].numel;
    }
    EXPECT_EQ(n, num_parameters(c));
  }
}

TEST(Family, MemoryPlanEqualsCountedAllocations) {
  for (const auto& path : fixture_configs()) {
    for (bool ckpt : {false, true}) {
      for (Precision p : {Precision::F32, Precision::BF16}) {
        if (ckpt && p == Precision::BF16) continue;  // the workspace difference is the same; keeps the test short
        SCOPED_TRACE(path.filename().string() + (p == Precision::BF16 ? " bf16" : " f32") + (ckpt ? " checkpointed" : ""));
        io::ModelConfig c = cut(load_config(path));
        if (ckpt) c.num_hidden_layers = 2;  // checkpointing keeps one layer's activations instead of two
        CountingBackend be(backend::make_cpu_backend());
        const Batch b = Batch::from_sequences({{1, 2, 3, 4, 5, 6}, {7, 8, 9}}, {}, 0);  // n = 2 * 6 tokens
        const MemoryPlan plan = plan_training_memory(c, b.B * b.T, p, be.fast_bf16_gemm(), ckpt);
        if (ckpt) {
          EXPECT_LT(plan.activations, plan_training_memory(c, b.B * b.T, p, be.fast_bf16_gemm()).activations);
        }
        {
          auto m = Model::random(c, 3, be, p);
          m->set_gradient_checkpointing(ckpt);
          const int64_t after_model = be.live;
          EXPECT_EQ(after_model, plan.weights + plan.gradients + plan.compute_copies);
          train::AdamW opt(be, m->parameters(), {});
          EXPECT_EQ(be.live - after_model, plan.optimizer);
          m->forward_backward(b, 1.0f / static_cast<float>(b.count_targets()));
          opt.step(1e-3);
          m->on_weights_updated();
          EXPECT_EQ(be.peak, plan.total());
          EXPECT_EQ(plan.parameters, num_parameters(c));
        }
        EXPECT_EQ(be.live, 0);  // everything freed
      }
    }
  }
}

// A run reserves its largest micro-batch (Model::reserve_training_tokens): smaller batches of any shape then reuse that
// workspace (no allocation after the reservation), and the peak is the plan of the reserved token count.
TEST(Family, ReservedWorkspaceIsReusedBySmallerBatches) {
  const io::ModelConfig c = cut(load_config(fixture_configs().front()));
  CountingBackend be(backend::make_cpu_backend());
  const Batch padded = Batch::from_sequences({{1, 2, 3, 4, 5, 6}, {7, 8, 9}}, {{1, 2, 3, 4, 5, 6}, {7, 8, 9}}, 0);
  const Batch one_row = Batch::from_sequences({{1, 2, 3, 4, 5, 6, 7, 8, 9}}, {{1, 2, 3, 4, 5, 6, 7, 8, 9}}, 0);
  const MemoryPlan plan = plan_training_memory(c, 16, Precision::F32, be.fast_bf16_gemm());
  {
    auto m = Model::random(c, 3, be, Precision::F32);
    train::AdamW opt(be, m->parameters(), {});
    m->reserve_training_tokens(16);
    const int64_t reserved = be.live;
    for (const Batch* b : {&padded, &one_row, &padded}) {
      m->forward_backward(*b, 0.1f);
      EXPECT_EQ(be.live, reserved) << "a batch of " << b->B * b->T << " tokens reallocated the workspace";
    }
    opt.step(1e-3);
    EXPECT_EQ(be.peak, plan.total());
  }
  EXPECT_EQ(be.live, 0);
}

}  // namespace
}  // namespace sft::model
