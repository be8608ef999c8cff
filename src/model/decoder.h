// The one implementation of model::Model: the Llama-style decoder every family (model/family.h) describes, with
// explicit forward and backward passes written against backend::Backend (never a concrete device). Internal to
// model/; users see only model.h.
//
// A layer is two blocks, each a named forward/backward pair (decoder_layer.cpp, llm.c style: the backward walks the
// forward's steps in reverse, one function beside the other):
//   attention block   mid = x + [out norm] (attention(rope(norm(x) Wq, Wk), norm(x) Wv) Wo)
//   MLP block         out = mid + [out norm] (glu(norm(mid) Wg, norm(mid) Wu) Wd)
// What differs between families inside a layer is a field of LayerBlocks (the GLU activation, the norms' gain
// offset, q/k norms, the sandwich out norms, the attention scale, soft-cap and window), chosen once from the
// family's features; the blocks read it at one place each.
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "backend/device_buffer.h"
#include "model/family.h"
#include "model/frozen_weights.h"
#include "model/lora.h"
#include "model/model.h"
#include "model/neftune.h"

namespace sft::model {

using backend::DeviceBuffer;

// One linear layer y = x W^T (+ b) with W [out, in] as HF stores it; offsets (in floats) into the flat parameter
// buffer, b = -1 when the family has no bias there. Every projection (q, k, v, o, gate, up, down) and the LM head
// run through Decoder::linear_forward / linear_backward: the single place where a LoRA term is added (issue 12).
struct Linear {
  TensorRole role = TensorRole::QProj;
  int64_t layer = -1;
  int64_t w = -1, b = -1;
  int64_t in = 0, out = 0;
  int lora = -1;  // LoRA target index (model/lora.h), -1 = not adapted
};

// One layer's tensors: the linears plus the norm weights (offsets; -1 = absent for this family). post_norm is the MLP
// block's input norm; attn_out_norm / mlp_out_norm the blocks' output norms (Gemma 2's sandwich norms).
struct LayerWeights {
  int64_t in_norm = -1, post_norm = -1, q_norm = -1, k_norm = -1, attn_out_norm = -1, mlp_out_norm = -1;
  Linear q, k, v, o, gate, up, down;
};

// The block choices of the decoder, from the family's features (io::ModelConfig). Each field is read by one
// forward/backward pair (decoder_layer.cpp) or the embedding / head.
struct LayerBlocks {
  enum class Glu : uint8_t { SwiGLU, GeGLU };  // MLP activation: silu (Llama, Qwen) or tanh GELU (Gemma)
  Glu glu = Glu::SwiGLU;
  float norm_offset = 0;       // every RMSNorm's gain is w + norm_offset (Gemma: 1)
  bool qk_norm = false;        // per-head RMSNorm of q and k before RoPE (Qwen3)
  float attn_scale = 0;        // head_dim^-0.5, or query_pre_attn_scalar^-0.5 (Gemma 2)
  float attn_softcap = 0;      // attention scores soft-capped (Gemma 2); 0 = none
  std::vector<int64_t> window;  // per layer: sliding-window size, 0 = full attention
  float embed_scale = 0;       // embeddings multiplied by it (Gemma: fp32(sqrt(hidden))); 0 = not scaled
  float final_softcap = 0;     // logits soft-capped (Gemma 2); 0 = none
  static LayerBlocks from(const io::ModelConfig& cfg, int64_t head_dim);
};

// How one layer's attention gets its keys: the caller's part of layer_forward. A training batch attends within
// itself (k_new = k = the layer's own K); a KV session writes the new rows into its cache and attends over all of it;
// branch scoring lays the keys out per row first (before_attention) or runs its own attention calls (attend).
struct AttentionPlan {
  // B, T, Tq and shared_keys of the call; the decoder fills in the heads, head_dim and the layer's scale, soft-cap
  // and window (Decoder::layer_attention).
  backend::AttnShape shape;
  float* k_new = nullptr;  // where the n rotated K / V rows of this call go
  float* v_new = nullptr;
  const float* k = nullptr;  // the keys / values attention reads
  const float* v = nullptr;
  const int32_t* pos = nullptr;  // [n] position ids of the query rows
  const int32_t* doc = nullptr;  // [B*T] doc ids of the keys
  // Optional: runs after the new K/V rows are written and rotated, before attention reads k/v.
  std::function<void()> before_attention;
  // Optional: replaces the single attention call; must fill a.att / a.lse for all n rows from a.q. Gets the layer's
  // filled-in shape (its scale, soft-cap and window apply to every call it makes).
  std::function<void(const backend::AttnShape& layer)> attend;
};

// An fp32 activation and its gemm operand (the same values in the compute dtype: bf16, bf16-rounded fp32 or the
// fp32 itself), so several linears reading one input convert it once. LoRA reads the fp32 side (dropout, A/B).
struct Operand {
  const float* f32 = nullptr;
  const void* op = nullptr;
};

// Activations of one layer for n token rows. In training every layer keeps its own (saved for the backward), except
// with gradient checkpointing, where one set is shared and the backward re-runs each layer's forward into it from
// the saved residual; inference reuses a single one for all layers. The normalised inputs of the projections are not
// saved: the backward recomputes them from the saved residual (resid / mid) and 1/rms (Workspace::xn), which costs
// one elementwise pass and saves 2 x hidden floats per token per layer. q_raw/k_raw/rstd_q/rstd_k exist only with
// q/k norms (Qwen3): the projections before the per-head RMSNorm and its saved 1/rms. attn_proj/mlp_proj and their
// 1/rms exist only with sandwich norms (Gemma 2): the projections' outputs the out norms read in the backward.
struct LayerActs {
  DeviceBuffer<float> rstd1, q, k, v, att, lse, mid, rstd2, gate, up;
  DeviceBuffer<float> q_raw, k_raw, rstd_q, rstd_k;
  DeviceBuffer<float> attn_proj, rstd_ao, mlp_proj, rstd_mo;
};

// Everything one forward (+ backward) over n = B*T token rows needs on the device.
struct Workspace {
  int64_t n = 0;         // token rows of the current batch
  int64_t capacity = 0;  // token rows the buffers hold (>= n: reused by smaller batches)
  bool training = false;
  bool checkpointed = false;  // training with gradient checkpointing: `layers` holds one set, refilled per layer
  DeviceBuffer<int32_t> ids, pos, doc;
  std::vector<DeviceBuffer<float>> resid;  // training: L+1 residual streams; inference: 1, updated in place
  std::vector<LayerActs> layers;           // training: L (1 when checkpointed); inference: 1
  LayerActs& acts(int64_t layer) { return layers[layers.size() == 1 ? 0 : static_cast<size_t>(layer)]; }
  DeviceBuffer<float> rstdf, xnf;          // final norm
  DeviceBuffer<float> h;                   // swiglu output (recomputed in the backward instead of saved)
  DeviceBuffer<float> xn, rstd;            // a norm's output, the projections' input (recomputed in the backward)
  DeviceBuffer<float> normed;              // an out norm's output before the residual add (sandwich norms only)
  // backward scratch (training only)
  DeviceBuffer<float> dR, dxn, dq, dk, dv, datt;  // dgate/dup: in place over the layer's gate/up
  DeviceBuffer<float> dq_raw, dk_raw;  // q/k norm families only: gradients before the per-head norm
  // LM head chunk: gathered rows, their logits / dlogits, per-row loss and argmax flag, row indices and targets
  DeviceBuffer<float> xc, dxc, logits, loss;
  DeviceBuffer<uint8_t> greedy;
  DeviceBuffer<int32_t> rows, targets;
  // bf16 copies of gemm operands (BF16 mode only): slot 0 = an activation X, slot 1 = a gradient dY; in emulated
  // BF16 mode (backend without fast bf16 gemm) the bf16-rounded values are kept as fp32 in eslot0/eslot1 instead
  DeviceBuffer<uint16_t> slot0, slot1;
  DeviceBuffer<float> eslot0, eslot1;
};

// Rows per LM-head chunk for a vocabulary of V (Decoder::head_chunk_rows; bench/gemm_peak times these shapes).
int64_t head_chunk_rows_for_vocab(int64_t V);

class Decoder final : public Model {
 public:
  // lora: freeze the base and attach adapters with this config (init_lora_random / load_lora fill them).
  // frozen (with lora only): the frozen matrices -- every 2-D tensor outside modules_to_save -- are kept in their
  // stored form (FrozenTensor: bf16 or 4-bit) instead of fp32 masters, and read through frozen_gemm /
  // frozen_embedding. nullptr: fp32 masters (today's LoRA base).
  Decoder(const io::ModelConfig& cfg, backend::Backend& be, Precision p, const io::LoraAdapterConfig* lora = nullptr,
          const FrozenStorage* frozen = nullptr);
  ~Decoder() override = default;

  void init_random(uint64_t seed);
  void load_weights(const io::WeightStore& store);
  void init_lora_random(uint64_t seed);
  // Adapter values (and modules_to_save tensors) from a checked adapter_model.safetensors (lora.h check_adapter).
  void load_lora(const io::SafetensorsFile& f);

  const io::ModelConfig& config() const override { return cfg_; }
  Precision precision() const override { return precision_; }
  backend::Backend& backend() override { return be_; }

  LossSum forward_backward(const Batch& batch, float loss_scale) override;
  LossSum forward_loss(const Batch& batch) override;
  void zero_grad() override;
  std::vector<ParamRef> parameters() override;
  void on_weights_updated() override;
  void next_token_logprobs(const Batch& batch, std::vector<float>& logprob, std::vector<uint8_t>& is_greedy) override;
  std::vector<float> logits(const Batch& batch) override;
  std::unique_ptr<KVSession> new_session(int64_t max_len) override;
  void save(const std::filesystem::path& dir, const std::string& dtype) override;
  const io::LoraAdapterConfig* lora_config() const override { return lora_ ? &lora_->config() : nullptr; }
  void save_adapter(const std::filesystem::path& dir, const std::string& base_model) override;
  void set_dropout_seed(uint64_t seed) override { dropout_seed_ = seed; }
  void set_gradient_checkpointing(bool on) override { checkpoint_layers_ = on; }
  void set_embedding_noise(const EmbeddingNoise& noise) override;
  void reserve_training_tokens(int64_t n_tokens) override;
  int64_t num_all_parameters() const override;

  // ---- used by the KV session (kv_session.cpp) ----
  struct Dims {
    int64_t H, I, L, Hq, Hkv, d, V, QD, KD;  // QD = Hq*d, KD = Hkv*d
  };
  const Dims& dims() const { return dims_; }
  // head_chunk_rows: LM-head rows per chunk, capped at n (no chunk holds more rows than the workspace has tokens).
  // A training workspace follows set_gradient_checkpointing (one layer's activations instead of L).
  Workspace make_workspace(int64_t n, bool training, int64_t head_chunk_rows);
  // Embedding of ids already in ws.ids into x.
  void embed(Workspace& ws, float* x);
  // One decoder layer over the ws.n query rows: out = layer(x) (out may equal x), attention per `plan`.
  // out == nullptr is the backward's recompute under gradient checkpointing: it stops once everything the layer's
  // backward reads is in `a` (and ws.xn holds the MLP block's normalised input).
  void layer_forward(int64_t l, const float* x, float* out, LayerActs& a, Workspace& ws, const AttentionPlan& plan);
  // Its mirror: ws.dR holds d loss / d layer output on entry and d loss / d x on return; parameter gradients (+=).
  // x is the layer's input (the saved residual stream), plan as the forward's (re-run first when checkpointed).
  void layer_backward(int64_t l, const float* x, LayerActs& a, Workspace& ws, const AttentionPlan& plan);
  // The attention geometry of layer l for a call of this shape (heads, head_dim, scale, soft-cap, window).
  backend::AttnShape layer_attention(int64_t l, backend::AttnShape call) const;
  bool has_sliding_window() const;  // some layer attends through a window (Gemma 2)
  void final_norm(Workspace& ws, const float* x, int64_t n);
  // Logits [rows, V] of the rows at x (final-normalised), soft-capped when the family caps them, into ws.logits
  // (rows <= chunk capacity).
  void head_logits(Workspace& ws, const float* x, int64_t rows);
  int64_t head_chunk_rows() const;
  int64_t buffer_floats() const { return total_; }  // floats of the flat parameter (and gradient) buffer
  // Bytes of the frozen matrices kept in their stored form (0 without a FrozenStorage).
  int64_t frozen_bytes() const;
  // The same figure before loading (FrozenTensor::bytes_for of each frozen matrix), for the memory plan.
  int64_t planned_frozen_bytes() const;
  // Tests: writes the frozen tensors' values (dequantised as the kernels see them) into the fp32 masters of `other`,
  // a decoder of the same config without a stored-form base.
  void copy_frozen_dequantised_into(Decoder& other) const;

 private:
  struct TensorSlot {
    std::string name;
    std::vector<int64_t> shape;
    int64_t offset = 0, numel = 0;
    bool decay = true;
    int64_t grad_offset = -1;  // into grads_; -1 = frozen (LoRA base weight)
    // Stored form (FrozenStorage): index into frozen_, offset = kFrozenKey + frozen (a key, not in params_); else -1
    int frozen = -1;
    backend::WeightFormat format = backend::WeightFormat::F32;
  };
  // Offsets at and above this are keys of frozen tensors in their stored form (no room in params_): they keep
  // the offset-based bookkeeping (Linear::w, module names) unchanged.
  static constexpr int64_t kFrozenKey = int64_t{1} << 60;
  // The stored-form tensor at this offset, or nullptr when the offset is in params_.
  const FrozenTensor* frozen_at(int64_t off) const;
  backend::DType frozen_value_dtype() const;  // w_dt of the frozen kernels: the model dtype
  // Fills frozen_ from the store (streamed, model/frozen_weights.h load_frozen) or from host values (init_random).
  void load_frozen_tensors(const io::WeightStore& store);
  // LoRA: freezes every tensor but modules_to_save, creates the adapters and marks the adapted Linears.
  void setup_lora(const io::LoraAdapterConfig& lora);
  uint64_t lora_seed(const Linear& L) const;
  // bf16 copies of every weight (after a load; on_weights_updated refreshes only trainable tensors under LoRA).
  void refresh_all_bf16();
  int64_t add_tensor(const TensorSpec& t, bool stored_form);
  int64_t largest_tensor() const;  // elements of the largest weight tensor (host staging buffer size)
  void check_batch(const Batch& b) const;
  void upload_batch(Workspace& ws, const Batch& b);
  Workspace& workspace_for(int64_t n, bool training);
  // Runs embedding + all layers + final norm on the batch already uploaded to ws.
  void forward_all(Workspace& ws, const Batch& b);
  // Head + cross-entropy over the rows with target >= 0 (host targets [n]) in chunks; with backward, writes
  // d(loss*loss_scale)/d(xnf) into ws.dxn and accumulates the head weight gradient. Per-row loss / greedy
  // flags are returned through the optional host vectors (size n).
  LossSum head_loss(Workspace& ws, const std::vector<int32_t>& targets, bool backward, float loss_scale,
                    std::vector<float>* row_loss, std::vector<uint8_t>* row_greedy);
  void backward_all(Workspace& ws, const Batch& b);
  // The plan of a training / scoring batch of B rows of T (keys are the batch's own).
  AttentionPlan batch_plan(Workspace& ws, LayerActs& a, int64_t B, int64_t T) const;

  // ---- the layer's blocks, named forward/backward pairs (decoder_layer.cpp) ----
  // RMSNorm with the family's gain offset: y = (w + offset) * x / rms(x) over rows of `width`; backward dx (+=).
  void norm_forward(int64_t w, float* y, float* rstd, const float* x, int64_t rows, int64_t width);
  void norm_backward(int64_t w, float* dx, const float* dy, const float* x, const float* rstd, int64_t rows,
                     int64_t width);
  // The normalised input of a projection, recomputed in the backward from the saved residual x (into ws.xn).
  const float* recompute_norm(Workspace& ws, const float* x, int64_t norm_weight);
  // mid = x + [out norm](attention(...) Wo^T) into a.mid.
  void attention_block_forward(int64_t l, const float* x, LayerActs& a, Workspace& ws, const AttentionPlan& plan);
  // ws.dR: d/d mid on entry, d/d x on return.
  void attention_block_backward(int64_t l, const float* x, LayerActs& a, Workspace& ws, const backend::AttnShape& s);
  // out = mid + [out norm](glu(gate, up) Wd^T); out == nullptr: the checkpoint recompute (see layer_forward).
  void mlp_block_forward(int64_t l, LayerActs& a, Workspace& ws, float* out);
  // ws.dR: d/d out on entry, d/d mid on return.
  void mlp_block_backward(int64_t l, LayerActs& a, Workspace& ws);
  // A block's output: out = resid + y, y = the projection L(in), normalised first when out_norm >= 0 (then the
  // projection goes to proj and its 1/rms to rstd, for the backward). write_out = false stops before the sum.
  void residual_forward(const Linear& L, Operand in, const float* resid, float* out, int64_t out_norm, float* proj,
                        float* rstd, Workspace& ws, bool write_out);
  // Its backward: d loss / d projection output (ws.dR itself without an out norm, else computed into ws.dxn).
  const float* residual_backward(int64_t out_norm, const float* proj, const float* rstd, Workspace& ws);
  // The MLP's gated activation h = act(gate) * up and its backward (in place over gate/up), per LayerBlocks::glu.
  void glu_forward(float* h, const float* gate, const float* up, int64_t n);
  void glu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up, int64_t n);

  // gemm operand helpers: activation/gradient in the compute dtype (bf16 copy into a slot in BF16 mode)
  Operand operand(const float* x, int64_t n, Workspace& ws, int slot);
  const void* weight(int64_t off) const;
  // The linear seam. Forward: y = x W^T (+ b), y += when accumulate. Backward: dW += dy^T x, db += colsum(dy),
  // then dx = dy W (+= when accumulate_dx; skipped when dx is null). dW is computed first because dx may overwrite
  // the memory x.f32 points to (the MLP reuses its swiglu buffer for dh).
  void linear_forward(const Linear& L, Operand x, int64_t n, float* y, bool accumulate);
  void linear_backward(const Linear& L, Operand dy, Operand x, int64_t n, float* dx, bool accumulate_dx);
  float* value(int64_t off) const { return params_.get() + off; }
  // Gradient of the tensor at value offset off; nullptr when it is frozen.
  float* grad(int64_t off) const;
  // Gradient of a norm weight, or a scratch vector when frozen (the kernel always accumulates dw).
  float* norm_grad(int64_t off);
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda, const void* B,
            int64_t ldb, float beta, float* C, int64_t ldc);

  io::ModelConfig cfg_;
  backend::Backend& be_;
  Precision precision_;
  backend::DType dt_;
  Dims dims_{};
  LayerBlocks blocks_;
  std::vector<TensorSlot> tensors_;
  std::unique_ptr<FrozenStorage> storage_;  // frozen base in its stored form (nullptr: fp32 masters)
  std::vector<FrozenTensor> frozen_;        // ... its tensors, in table order
  int64_t total_ = 0;
  int64_t embed_ = -1, final_norm_ = -1;
  Linear head_;  // head_.w == embed_ when tied
  std::vector<LayerWeights> layer_;
  DeviceBuffer<float> params_, grads_, inv_freq_;
  DeviceBuffer<uint16_t> params_bf16_;
  bool emulate_bf16_ = false;          // BF16 mode on a backend without fast bf16 gemm (see Backend::fast_bf16_gemm)
  DeviceBuffer<float> params_rounded_;  // emulated BF16: the weights rounded to bf16 values, stored as fp32
  std::unique_ptr<Workspace> ws_;
  // LoRA: adapters, the base tensors modules_to_save keeps trainable, dropout of the current pass
  std::unique_ptr<LoraAdapters> lora_;
  std::unordered_map<int64_t, int64_t> grad_of_;  // value offset -> grad offset (trainable tensors only)
  int64_t grad_total_ = 0;
  DeviceBuffer<float> norm_dw_scratch_;
  uint64_t dropout_seed_ = 0;
  EmbeddingNoise noise_;            // NEFTune, training passes only (embed)
  std::vector<float> noise_host_;   // its values for the current batch, uploaded into ws.xn
  std::vector<float> pad_row_;      // the pad token's embedding gradient row across a backward (backward_all)
  bool checkpoint_layers_ = false;  // gradient checkpointing (set_gradient_checkpointing)
  int64_t reserved_tokens_ = 0;     // training workspace capacity asked for (reserve_training_tokens)
  bool lora_training_ = false;  // the current forward is a training pass (LoRA dropout active)
};

// Rotary inverse frequencies exactly as transformers computes them in fp32 (with Llama 3 scaling when configured).
std::vector<float> rope_inv_freq(const io::ModelConfig& cfg);

}  // namespace sft::model
