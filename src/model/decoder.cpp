// The decoder around its layers (see docs/arch/model.md for the activation memory plan): construction from the
// family's tensor table, parameters, bf16 copies, the linear seam, workspaces, the embedding, the pass over all
// layers (forward_all / backward_all) and the LM head + cross-entropy in chunks of target rows (never [n x V] at
// once). One layer's blocks, forward and backward side by side: decoder_layer.cpp.
#include "model/decoder.h"

#include <algorithm>
#include <cmath>

#include "util/error.h"

namespace sft::model {

using backend::AttnShape;
using backend::DType;

Decoder::Decoder(const io::ModelConfig& cfg, backend::Backend& be, Precision p, const io::LoraAdapterConfig* lora,
                 const FrozenStorage* frozen)
    : cfg_(cfg), be_(be), precision_(p), dt_(p == Precision::BF16 ? DType::BF16 : DType::F32) {
  const int64_t d = cfg.head_dim > 0 ? cfg.head_dim : cfg.hidden_size / std::max<int64_t>(1, cfg.num_attention_heads);
  dims_ = {cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.num_attention_heads,
           cfg.num_key_value_heads, d, cfg.vocab_size, cfg.num_attention_heads * d, cfg.num_key_value_heads * d};
  const Dims& D = dims_;
  SFT_CHECK(D.H > 0 && D.I > 0 && D.L > 0 && D.Hq > 0 && D.Hkv > 0 && D.V > 0 && d > 0 && d % 2 == 0,
            "model config: sizes must be positive and head_dim even (hidden ", D.H, ", heads ", D.Hq, ", kv heads ",
            D.Hkv, ", head_dim ", d, ")");
  SFT_CHECK(D.Hq % D.Hkv == 0, "model config: num_attention_heads ", D.Hq, " is not a multiple of num_key_value_heads ",
            D.Hkv);
  blocks_ = LayerBlocks::from(cfg, d);
  // The family's tensor table is the one list of weights: allocate each, then map roles to buffers.
  layer_.resize(static_cast<size_t>(D.L));
  auto linear = [&](const TensorSpec& t, int64_t off) {
    return Linear{t.role, t.layer, off, -1, t.shape.at(1), t.shape.at(0)};
  };
  // With a stored-form base, the frozen matrices (2-D, not in modules_to_save) get keys instead of params_ room.
  std::vector<std::string> trained;
  if (lora && frozen) {
    storage_ = std::make_unique<FrozenStorage>(*frozen);
    std::vector<std::string> names;
    for (const TensorSpec& t : tensor_table(cfg)) names.push_back(t.name);
    trained = resolve_modules_to_save(*lora, names, "--lora_modules_to_save");
  }
  for (const TensorSpec& t : tensor_table(cfg)) {
    const bool stored_form = storage_ && t.shape.size() == 2 &&
                             std::find(trained.begin(), trained.end(), t.name) == trained.end();
    const int64_t off = add_tensor(t, stored_form);
    if (stored_form) tensors_.back().format = frozen_format_for(t.role, *storage_);
    LayerWeights* lw = t.layer >= 0 ? &layer_.at(static_cast<size_t>(t.layer)) : nullptr;
    switch (t.role) {
      case TensorRole::Embedding: embed_ = off; break;
      case TensorRole::FinalNorm: final_norm_ = off; break;
      case TensorRole::LmHead: head_ = linear(t, off); break;
      case TensorRole::InputNorm: lw->in_norm = off; break;
      case TensorRole::PostNorm: lw->post_norm = off; break;
      case TensorRole::AttnOutNorm: lw->attn_out_norm = off; break;
      case TensorRole::MlpOutNorm: lw->mlp_out_norm = off; break;
      case TensorRole::QNorm: lw->q_norm = off; break;
      case TensorRole::KNorm: lw->k_norm = off; break;
      case TensorRole::QProj: lw->q = linear(t, off); break;
      case TensorRole::KProj: lw->k = linear(t, off); break;
      case TensorRole::VProj: lw->v = linear(t, off); break;
      case TensorRole::OProj: lw->o = linear(t, off); break;
      case TensorRole::GateProj: lw->gate = linear(t, off); break;
      case TensorRole::UpProj: lw->up = linear(t, off); break;
      case TensorRole::DownProj: lw->down = linear(t, off); break;
      case TensorRole::QBias: lw->q.b = off; break;  // biases follow their weight in the table
      case TensorRole::KBias: lw->k.b = off; break;
      case TensorRole::VBias: lw->v.b = off; break;
      case TensorRole::OBias: lw->o.b = off; break;
    }
  }
  if (cfg.tie_word_embeddings) head_ = Linear{TensorRole::LmHead, -1, embed_, -1, D.H, D.V};
  SFT_CHECK(embed_ >= 0 && final_norm_ >= 0 && head_.w >= 0, "internal: incomplete tensor table for ",
            cfg.model_type);

  // Trainable tensors get a gradient: all of them, or with LoRA only those of modules_to_save (the rest is frozen).
  if (lora) {
    setup_lora(*lora);
  } else {
    for (TensorSlot& t : tensors_) t.grad_offset = t.offset;
    grad_total_ = total_;
  }
  bool any_trainable_matrix = false;
  for (const TensorSlot& t : tensors_)
    if (t.grad_offset >= 0) {
      grad_of_[t.offset] = t.grad_offset;
      any_trainable_matrix |= t.shape.size() == 2;
    }

  params_ = DeviceBuffer<float>(be_, total_);
  grads_ = DeviceBuffer<float>(be_, grad_total_);
  if (precision_ == Precision::BF16) {
    emulate_bf16_ = !be_.fast_bf16_gemm();
    if (emulate_bf16_) {
      // LoRA: frozen matrices are rounded to bf16 in place (they need no fp32 master), so the rounded copy is only
      // needed for trainable matrices (modules_to_save)
      if (!lora_ || any_trainable_matrix) params_rounded_ = DeviceBuffer<float>(be_, total_);
      dt_ = DType::F32;  // the rounded operands go through the fp32 gemm
    } else {
      params_bf16_ = DeviceBuffer<uint16_t>(be_, total_);
    }
  }
  const std::vector<float> inv = rope_inv_freq(cfg);
  inv_freq_ = DeviceBuffer<float>(be_, static_cast<int64_t>(inv.size()));
  be_.upload(inv_freq_.get(), inv.data(), inv.size() * sizeof(float));
}

int64_t Decoder::add_tensor(const TensorSpec& spec, bool stored_form) {
  const int64_t numel = spec.numel();
  if (stored_form) {
    const int index = static_cast<int>(frozen_.size() + std::count_if(tensors_.begin(), tensors_.end(),
                                                                       [](const TensorSlot& t) { return t.frozen >= 0; }));
    tensors_.push_back(TensorSlot{spec.name, spec.shape, kFrozenKey + index, numel, spec.decay});
    tensors_.back().frozen = index;
    return tensors_.back().offset;
  }
  tensors_.push_back(TensorSlot{spec.name, spec.shape, total_, numel, spec.decay});
  total_ += (numel + 15) / 16 * 16;  // 64-byte aligned starts
  return tensors_.back().offset;
}

void Decoder::setup_lora(const io::LoraAdapterConfig& lora) {
  std::vector<std::string> names;
  for (const TensorSlot& t : tensors_) names.push_back(t.name);
  const std::vector<std::string> saved = resolve_modules_to_save(lora, names, "--lora_modules_to_save");
  for (TensorSlot& t : tensors_)
    if (std::find(saved.begin(), saved.end(), t.name) != saved.end()) {
      t.grad_offset = grad_total_;
      grad_total_ += (t.numel + 15) / 16 * 16;
    }
  const std::vector<LinearInfo> linears = linear_layers(cfg_);
  std::vector<LinearInfo> targets;
  for (size_t i : resolve_lora_targets(lora, linears, "--lora_target_modules")) targets.push_back(linears[i]);
  std::unordered_map<std::string, int> index;  // module name -> target
  for (size_t t = 0; t < targets.size(); ++t) index[targets[t].module] = static_cast<int>(t);
  std::unordered_map<int64_t, std::string> module_at;  // weight offset -> module name
  for (const TensorSlot& t : tensors_) module_at[t.offset] = t.name.substr(0, t.name.rfind('.'));
  for (LayerWeights& lw : layer_)
    for (Linear* L : {&lw.q, &lw.k, &lw.v, &lw.o, &lw.gate, &lw.up, &lw.down}) {
      auto it = index.find(module_at.at(L->w));
      if (it != index.end()) L->lora = it->second;
    }
  lora_ = std::make_unique<LoraAdapters>(be_, lora, std::move(targets));
  norm_dw_scratch_ = DeviceBuffer<float>(be_, std::max(dims_.H, dims_.d));
}

std::vector<ParamRef> Decoder::parameters() {
  std::vector<ParamRef> out;
  if (lora_) out = lora_->parameters();
  for (const TensorSlot& t : tensors_) {
    if (t.grad_offset < 0) continue;
    // with LoRA a trained base tensor (modules_to_save) carries peft's adapter-file name
    out.push_back({lora_ ? io::kPeftPrefix + t.name : t.name, t.shape, value(t.offset), grad(t.offset), t.numel, t.decay});
  }
  return out;
}

float* Decoder::grad(int64_t off) const {
  if (!lora_) return grads_.get() + off;
  auto it = grad_of_.find(off);
  return it == grad_of_.end() ? nullptr : grads_.get() + it->second;
}

float* Decoder::norm_grad(int64_t off) {
  if (float* g = grad(off)) return g;
  return norm_dw_scratch_.get();  // frozen norm: the kernel's dw lands in scratch and is never read
}

void Decoder::zero_grad() {
  be_.zero(grads_.get(), grads_.bytes());
  if (lora_) lora_->zero_grad();
}

void Decoder::on_weights_updated() {
  if (precision_ != Precision::BF16) return;
  if (!lora_) {
    if (emulate_bf16_) be_.round_to_bf16(params_rounded_.get(), params_.get(), total_);
    else be_.f32_to_bf16(params_bf16_.get(), params_.get(), total_);
    return;
  }
  for (const TensorSlot& t : tensors_) {  // LoRA: only trained base tensors change (adapters run in fp32)
    if (t.grad_offset < 0) continue;
    if (!emulate_bf16_) be_.f32_to_bf16(params_bf16_.get() + t.offset, value(t.offset), t.numel);
    else if (t.shape.size() == 2) be_.round_to_bf16(params_rounded_.get() + t.offset, value(t.offset), t.numel);
  }
}

void Decoder::refresh_all_bf16() {
  if (precision_ != Precision::BF16) return;
  if (!lora_) return on_weights_updated();
  if (!emulate_bf16_) {
    be_.f32_to_bf16(params_bf16_.get(), params_.get(), total_);
    return;
  }
  for (const TensorSlot& t : tensors_) {
    if (t.shape.size() != 2 || t.frozen >= 0) continue;  // norms and biases stay fp32 (they are not gemm operands)
    if (t.grad_offset < 0) be_.round_to_bf16(value(t.offset), value(t.offset), t.numel);  // frozen: bf16 in place
    else be_.round_to_bf16(params_rounded_.get() + t.offset, value(t.offset), t.numel);
  }
}

const FrozenTensor* Decoder::frozen_at(int64_t off) const {
  if (off < kFrozenKey) return nullptr;
  const size_t i = static_cast<size_t>(off - kFrozenKey);
  SFT_CHECK(i < frozen_.size(), "internal: frozen tensor ", i, " used before the base was loaded");
  return &frozen_[i];
}

DType Decoder::frozen_value_dtype() const {
  return storage_ && storage_->dtype == DType::BF16 ? DType::BF16 : DType::F32;
}

int64_t Decoder::frozen_bytes() const {
  int64_t b = 0;
  for (const FrozenTensor& t : frozen_) b += t.device_bytes();
  return b;
}

int64_t Decoder::planned_frozen_bytes() const {
  int64_t b = 0;
  for (const TensorSlot& t : tensors_)
    if (t.frozen >= 0) b += FrozenTensor::bytes_for(t.format, t.shape.at(0), t.shape.at(1), storage_->double_quant);
  return b;
}

const void* Decoder::weight(int64_t off) const {
  if (precision_ == Precision::F32) return params_.get() + off;
  if (emulate_bf16_) return lora_ && !grad(off) ? params_.get() + off : params_rounded_.get() + off;
  return params_bf16_.get() + off;
}

int64_t Decoder::num_all_parameters() const {
  int64_t n = num_parameters(cfg_);
  if (!lora_) return n;
  n += lora_->num_parameters();
  for (const TensorSlot& t : tensors_)
    if (t.grad_offset >= 0) n += t.numel;  // peft keeps the original module beside the trained copy
  return n;
}

uint64_t Decoder::lora_seed(const Linear& L) const {
  return dropout_seed_ ^ (static_cast<uint64_t>(L.layer * 32 + static_cast<int>(L.role) + 1) * 0xD1B54A32D192ED03ull);
}

Operand Decoder::operand(const float* x, int64_t n, Workspace& ws, int slot) {
  if (precision_ == Precision::F32) return {x, x};
  if (emulate_bf16_) {
    DeviceBuffer<float>& buf = slot == 0 ? ws.eslot0 : ws.eslot1;
    SFT_CHECK(n <= buf.size(), "internal: bf16 operand slot too small (", n, " > ", buf.size(), ")");
    be_.round_to_bf16(buf.get(), x, n);
    return {x, buf.get()};
  }
  DeviceBuffer<uint16_t>& buf = slot == 0 ? ws.slot0 : ws.slot1;
  SFT_CHECK(n <= buf.size(), "internal: bf16 operand slot too small (", n, " > ", buf.size(), ")");
  be_.f32_to_bf16(buf.get(), x, n);
  return {x, buf.get()};
}

void Decoder::linear_forward(const Linear& L, Operand x, int64_t n, float* y, bool accumulate) {
  if (const FrozenTensor* f = frozen_at(L.w))  // the base in its stored form: tiles converted inside the gemm
    be_.frozen_gemm(true, n, x.op, L.in, dt_, f->view(), frozen_value_dtype(), accumulate ? 1.0f : 0.0f, y, L.out);
  else
    gemm(false, true, n, L.out, L.in, x.op, L.in, weight(L.w), L.in, accumulate ? 1.0f : 0.0f, y, L.out);
  if (L.b >= 0) be_.add_bias(y, value(L.b), n, L.out);
  if (L.lora >= 0) {  // + scaling * dropout(x) A^T B^T (peft: after the base layer's bias)
    const float p = lora_training_ ? static_cast<float>(lora_->config().lora_dropout) : 0.0f;
    lora_->forward(static_cast<size_t>(L.lora), x.f32, n, y, p, lora_seed(L));
  }
}

void Decoder::linear_backward(const Linear& L, Operand dy, Operand x, int64_t n, float* dx, bool accumulate_dx) {
  if (float* gw = grad(L.w)) gemm(true, false, L.out, L.in, n, dy.op, L.out, x.op, L.in, 1.0f, gw, L.in);
  if (L.b >= 0)
    if (float* gb = grad(L.b)) be_.bias_grad(gb, dy.f32, n, L.out);
  const float p = L.lora >= 0 ? static_cast<float>(lora_->config().lora_dropout) : 0.0f;  // backward = training
  if (L.lora >= 0) lora_->backward_weights(static_cast<size_t>(L.lora), x.f32, dy.f32, n, p, lora_seed(L));
  // x is dead from here on (dx may overwrite it)
  if (dx) {
    if (const FrozenTensor* f = frozen_at(L.w))
      be_.frozen_gemm(false, n, dy.op, L.out, dt_, f->view(), frozen_value_dtype(), accumulate_dx ? 1.0f : 0.0f, dx,
                      L.in);
    else
      gemm(false, false, n, L.in, L.out, dy.op, L.out, weight(L.w), L.in, accumulate_dx ? 1.0f : 0.0f, dx, L.in);
  }
  if (dx && L.lora >= 0) lora_->backward_input(static_cast<size_t>(L.lora), n, dx, p, lora_seed(L));
}

void Decoder::gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void* A, int64_t lda, const void* B,
                   int64_t ldb, float beta, float* C, int64_t ldc) {
  be_.gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc, dt_);
}

int64_t head_chunk_rows_for_vocab(int64_t V) {
  // The chunk's three gemms have the chunk's rows as M (logits, dX) and as K (dW += dlogits^T X): below a few hundred
  // rows they run well under the gemm's plateau (bench/gemm_peak --head_chunk_mib, Qwen2.5 shapes on AVX2: 110 rows
  // ~118 GFLOP/s, 441 rows ~137), and every chunk streams the whole [V, H] weight and gradient once more. So at least
  // 384 rows (or 64 MiB of fp32 logits when that is more rows), never more than 256 MiB of logits nor 4096 rows.
  const int64_t rows = std::clamp<int64_t>((int64_t{16} << 20) / V, 384, 4096);
  return std::max<int64_t>(16, std::min(rows, (int64_t{64} << 20) / V));
}

int64_t Decoder::head_chunk_rows() const { return head_chunk_rows_for_vocab(dims_.V); }

Workspace Decoder::make_workspace(int64_t n, bool training, int64_t chunk) {
  const Dims& D = dims_;
  Workspace ws;
  ws.n = ws.capacity = n;
  ws.training = training;
  ws.ids = DeviceBuffer<int32_t>(be_, n);
  ws.pos = DeviceBuffer<int32_t>(be_, n);
  ws.doc = DeviceBuffer<int32_t>(be_, n);
  ws.checkpointed = training && checkpoint_layers_;
  const int64_t n_resid = training ? D.L + 1 : 1, n_layers = training && !ws.checkpointed ? D.L : 1;
  for (int64_t i = 0; i < n_resid; ++i) ws.resid.emplace_back(be_, n * D.H);
  for (int64_t i = 0; i < n_layers; ++i) {
    LayerActs a;
    a.rstd1 = DeviceBuffer<float>(be_, n);
    a.q = DeviceBuffer<float>(be_, n * D.QD);
    a.k = DeviceBuffer<float>(be_, n * D.KD);
    a.v = DeviceBuffer<float>(be_, n * D.KD);
    a.att = DeviceBuffer<float>(be_, n * D.QD);
    a.lse = DeviceBuffer<float>(be_, n * D.Hq);
    a.mid = DeviceBuffer<float>(be_, n * D.H);
    a.rstd2 = DeviceBuffer<float>(be_, n);
    a.gate = DeviceBuffer<float>(be_, n * D.I);
    a.up = DeviceBuffer<float>(be_, n * D.I);
    if (cfg_.qk_norm) {
      a.q_raw = DeviceBuffer<float>(be_, n * D.QD);
      a.k_raw = DeviceBuffer<float>(be_, n * D.KD);
      a.rstd_q = DeviceBuffer<float>(be_, n * D.Hq);
      a.rstd_k = DeviceBuffer<float>(be_, n * D.Hkv);
    }
    if (cfg_.sandwich_norms) {
      a.attn_proj = DeviceBuffer<float>(be_, n * D.H);
      a.rstd_ao = DeviceBuffer<float>(be_, n);
      a.mlp_proj = DeviceBuffer<float>(be_, n * D.H);
      a.rstd_mo = DeviceBuffer<float>(be_, n);
    }
    ws.layers.push_back(std::move(a));
  }
  if (cfg_.sandwich_norms) ws.normed = DeviceBuffer<float>(be_, n * D.H);
  ws.rstdf = DeviceBuffer<float>(be_, n);
  ws.xnf = DeviceBuffer<float>(be_, n * D.H);
  ws.h = DeviceBuffer<float>(be_, n * D.I);
  ws.xn = DeviceBuffer<float>(be_, n * D.H);
  if (training) ws.rstd = DeviceBuffer<float>(be_, n);
  if (training) {
    ws.dR = DeviceBuffer<float>(be_, n * D.H);
    ws.dxn = DeviceBuffer<float>(be_, n * D.H);
    ws.dq = DeviceBuffer<float>(be_, n * D.QD);
    ws.dk = DeviceBuffer<float>(be_, n * D.KD);
    ws.dv = DeviceBuffer<float>(be_, n * D.KD);
    ws.datt = DeviceBuffer<float>(be_, n * D.QD);
    if (cfg_.qk_norm) {
      ws.dq_raw = DeviceBuffer<float>(be_, n * D.QD);
      ws.dk_raw = DeviceBuffer<float>(be_, n * D.KD);
    }
  }
  chunk = std::max<int64_t>(1, std::min(chunk, n));  // a chunk never holds more rows than the workspace has tokens
  ws.xc = DeviceBuffer<float>(be_, chunk * D.H);
  ws.dxc = DeviceBuffer<float>(be_, chunk * D.H);
  ws.logits = DeviceBuffer<float>(be_, chunk * D.V);
  ws.loss = DeviceBuffer<float>(be_, chunk);
  ws.greedy = DeviceBuffer<uint8_t>(be_, chunk);
  ws.rows = DeviceBuffer<int32_t>(be_, chunk);
  ws.targets = DeviceBuffer<int32_t>(be_, chunk);
  if (precision_ == Precision::BF16) {
    const int64_t widest = std::max({D.H, D.I, D.QD});
    const int64_t s0 = std::max(n * widest, chunk * D.H), s1 = std::max(n * widest, chunk * D.V);
    if (emulate_bf16_) {
      ws.eslot0 = DeviceBuffer<float>(be_, s0);
      ws.eslot1 = DeviceBuffer<float>(be_, s1);
    } else {
      ws.slot0 = DeviceBuffer<uint16_t>(be_, s0);
      ws.slot1 = DeviceBuffer<uint16_t>(be_, s1);
    }
  }
  return ws;
}

Workspace& Decoder::workspace_for(int64_t n, bool training) {
  // Reused by every batch it holds (a training run reserves its largest micro-batch up front); a mode change or a
  // larger batch reallocates.
  if (!ws_ || ws_->capacity < n || ws_->training != training || ws_->checkpointed != (training && checkpoint_layers_)) {
    ws_.reset();
    const int64_t capacity = training ? std::max(n, reserved_tokens_) : n;
    ws_ = std::make_unique<Workspace>(make_workspace(capacity, training, head_chunk_rows()));
  }
  ws_->n = n;
  return *ws_;
}

void Decoder::reserve_training_tokens(int64_t n_tokens) {
  SFT_CHECK(n_tokens > 0, "reserve_training_tokens: ", n_tokens, " tokens");
  reserved_tokens_ = n_tokens;
  workspace_for(n_tokens, true);
  if (lora_) lora_->reserve(n_tokens);
}

void Decoder::check_batch(const Batch& b) const {
  const size_t n = static_cast<size_t>(b.B * b.T);
  SFT_CHECK(b.B > 0 && b.T > 0, "batch: empty (B=", b.B, ", T=", b.T, ")");
  SFT_CHECK(b.input_ids.size() == n && b.position_ids.size() == n && b.doc_ids.size() == n,
            "batch: input_ids/position_ids/doc_ids must have B*T = ", n, " entries (got ", b.input_ids.size(), "/",
            b.position_ids.size(), "/", b.doc_ids.size(), ")");
  SFT_CHECK(b.labels.empty() || b.labels.size() == n, "batch: labels must be empty or have B*T = ", n, " entries");
  for (size_t i = 0; i < n; ++i) {
    SFT_CHECK(b.input_ids[i] >= 0 && b.input_ids[i] < dims_.V, "batch: token id ", b.input_ids[i], " at index ", i,
              " is outside the vocabulary [0, ", dims_.V, ")");
    SFT_CHECK(b.position_ids[i] >= 0, "batch: negative position id at index ", i);
  }
  for (int32_t l : b.labels)
    SFT_CHECK(l == -100 || (l >= 0 && l < dims_.V), "batch: label ", l, " is neither -100 nor a token id < ", dims_.V);
}

void Decoder::upload_batch(Workspace& ws, const Batch& b) {
  const size_t bytes = static_cast<size_t>(ws.n) * sizeof(int32_t);
  be_.upload(ws.ids.get(), b.input_ids.data(), bytes);
  be_.upload(ws.pos.get(), b.position_ids.data(), bytes);
  be_.upload(ws.doc.get(), b.doc_ids.data(), bytes);
}

void Decoder::embed(Workspace& ws, float* x) {
  if (const FrozenTensor* f = frozen_at(embed_)) be_.frozen_embedding(x, f->view(), ws.ids.get(), ws.n, frozen_value_dtype());
  else be_.embedding_forward(x, value(embed_), ws.ids.get(), ws.n, dims_.H);
  if (blocks_.embed_scale != 0) be_.scale(x, blocks_.embed_scale, ws.n * dims_.H);  // Gemma: embeddings * sqrt(H)
  if (ws.training && noise_.alpha > 0) {  // NEFTune: on the embedding module's output (ws.xn is free until layer 0)
    const int64_t count = ws.n * dims_.H;
    noise_host_.resize(static_cast<size_t>(count));
    neftune_noise(noise_host_.data(), count, neftune_magnitude(noise_.alpha, noise_.seq_len, dims_.H), noise_.seed);
    be_.upload(ws.xn.get(), noise_host_.data(), static_cast<size_t>(count) * sizeof(float));
    be_.add(x, ws.xn.get(), count);
  }
}

void Decoder::set_embedding_noise(const EmbeddingNoise& noise) {
  SFT_CHECK(noise.alpha >= 0 && std::isfinite(noise.alpha) && (noise.alpha == 0 || noise.seq_len > 0),
            "NEFTune: alpha ", noise.alpha, " with sequence length ", noise.seq_len,
            " (expected alpha >= 0 and a positive length)");
  noise_ = noise;
}

void Decoder::final_norm(Workspace& ws, const float* x, int64_t n) {
  norm_forward(final_norm_, ws.xnf.get(), ws.rstdf.get(), x, n, dims_.H);
}

void Decoder::head_logits(Workspace& ws, const float* x, int64_t rows) {
  linear_forward(head_, operand(x, rows * dims_.H, ws, 0), rows, ws.logits.get(), false);
  if (blocks_.final_softcap != 0) be_.logit_softcap(ws.logits.get(), rows * dims_.V, blocks_.final_softcap);
}

AttentionPlan Decoder::batch_plan(Workspace& ws, LayerActs& a, int64_t B, int64_t T) const {
  AttentionPlan p;
  p.shape.B = B, p.shape.T = T;
  p.k_new = a.k.get(), p.v_new = a.v.get();
  p.k = a.k.get(), p.v = a.v.get();
  p.pos = ws.pos.get(), p.doc = ws.doc.get();
  return p;
}

void Decoder::forward_all(Workspace& ws, const Batch& b) {
  embed(ws, ws.resid[0].get());
  for (int64_t l = 0; l < dims_.L; ++l) {
    LayerActs& a = ws.acts(l);
    const float* x = ws.resid[ws.training ? l : 0].get();
    float* out = ws.resid[ws.training ? l + 1 : 0].get();
    layer_forward(l, x, out, a, ws, batch_plan(ws, a, b.B, b.T));
  }
  final_norm(ws, ws.resid.back().get(), ws.n);
}

LossSum Decoder::head_loss(Workspace& ws, const std::vector<int32_t>& targets, bool backward, float loss_scale,
                           std::vector<float>* row_loss, std::vector<uint8_t>* row_greedy) {
  const Dims& D = dims_;
  std::vector<int32_t> rows;  // only rows that have a target go through the head (prompt tokens cost nothing)
  for (size_t i = 0; i < targets.size(); ++i)
    if (targets[i] >= 0) rows.push_back(static_cast<int32_t>(i));
  LossSum total;
  if (backward) be_.zero(ws.dxn.get(), static_cast<size_t>(ws.n * D.H) * sizeof(float));
  const int64_t chunk = ws.loss.size();
  std::vector<int32_t> tg(chunk);
  std::vector<float> loss(chunk);
  std::vector<uint8_t> greedy(chunk);
  for (size_t r0 = 0; r0 < rows.size(); r0 += chunk) {
    const int64_t c = std::min<int64_t>(chunk, static_cast<int64_t>(rows.size() - r0));
    for (int64_t i = 0; i < c; ++i) tg[i] = targets[rows[r0 + i]];
    be_.upload(ws.rows.get(), rows.data() + r0, c * sizeof(int32_t));
    be_.upload(ws.targets.get(), tg.data(), c * sizeof(int32_t));
    be_.embedding_forward(ws.xc.get(), ws.xnf.get(), ws.rows.get(), c, D.H);  // gather the rows
    linear_forward(head_, operand(ws.xc.get(), c * D.H, ws, 0), c, ws.logits.get(), false);  // raw: CE caps them
    be_.softmax_cross_entropy(ws.logits.get(), ws.loss.get(), row_greedy ? ws.greedy.get() : nullptr,
                              ws.targets.get(), c, D.V, backward ? loss_scale : 0.0f, blocks_.final_softcap);
    if (backward) {  // ws.logits now holds loss_scale * dloss/dlogits
      const Operand dl = operand(ws.logits.get(), c * D.V, ws, 1);
      linear_backward(head_, dl, operand(ws.xc.get(), c * D.H, ws, 0), c, ws.dxc.get(), false);
      be_.embedding_backward(ws.dxn.get(), ws.dxc.get(), ws.rows.get(), c, D.H);  // scatter back to token rows
    }
    be_.download(loss.data(), ws.loss.get(), c * sizeof(float));
    if (row_greedy) be_.download(greedy.data(), ws.greedy.get(), c);
    for (int64_t i = 0; i < c; ++i) {
      total.sum += loss[i];
      if (row_loss) (*row_loss)[rows[r0 + i]] = loss[i];
      if (row_greedy) (*row_greedy)[rows[r0 + i]] = greedy[i];
    }
    total.n_targets += c;
  }
  return total;
}

void Decoder::backward_all(Workspace& ws, const Batch& b) {
  const Dims& D = dims_;
  const int64_t n = ws.n;
  float* dR = ws.dR.get();  // gradient of the residual stream, walked from the top down
  be_.zero(dR, static_cast<size_t>(n * D.H) * sizeof(float));  // the batch's rows (capacity may hold more)
  norm_backward(final_norm_, dR, ws.dxn.get(), ws.resid[D.L].get(), ws.rstdf.get(), n, D.H);
  for (int64_t l = D.L - 1; l >= 0; --l) {
    LayerActs& a = ws.acts(l);
    layer_backward(l, ws.resid[l].get(), a, ws, batch_plan(ws, a, b.B, b.T));
  }
  if (float* ge = grad(embed_)) {
    if (blocks_.embed_scale != 0) be_.scale(dR, blocks_.embed_scale, n * D.H);  // through the embedding scaling
    // transformers builds the embedding as nn.Embedding(V, H, padding_idx=pad_token_id): the lookup gives the pad
    // token's row no gradient (a tied LM head still does, and its part is already in ge). When the batch holds that
    // id as a real token (SmolLM2's pad is <|im_end|>), its row is kept as it was before the scatter.
    const std::optional<int64_t>& pad = cfg_.pad_token_id;
    const bool keep_pad_row = pad && *pad >= 0 && *pad < D.V &&
                              std::find(b.input_ids.begin(), b.input_ids.end(), static_cast<int32_t>(*pad)) !=
                                  b.input_ids.end();
    if (keep_pad_row) pad_row_.resize(static_cast<size_t>(D.H));
    const size_t row_bytes = static_cast<size_t>(D.H) * sizeof(float);
    if (keep_pad_row) be_.download(pad_row_.data(), ge + *pad * D.H, row_bytes);
    be_.embedding_backward(ge, dR, ws.ids.get(), n, D.H);
    if (keep_pad_row) be_.upload(ge + *pad * D.H, pad_row_.data(), row_bytes);
  }
}

// Targets after the label shift: row position t predicts labels[t+1] of the same row.
static std::vector<int32_t> shifted_targets(const Batch& b) {
  std::vector<int32_t> t(static_cast<size_t>(b.B * b.T), -1);
  if (b.labels.empty()) return t;
  for (int64_t r = 0; r < b.B; ++r)
    for (int64_t i = 0; i + 1 < b.T; ++i) {
      const int32_t l = b.labels[r * b.T + i + 1];
      t[r * b.T + i] = l == -100 ? -1 : l;
    }
  return t;
}

LossSum Decoder::forward_backward(const Batch& batch, float loss_scale) {
  check_batch(batch);
  SFT_CHECK(batch.dropout_keys.empty() || batch.dropout_keys.size() == batch.input_ids.size(),
            "batch: dropout_keys must be empty or have B*T entries");
  if (lora_) lora_->set_row_keys(batch.dropout_keys);
  Workspace& ws = workspace_for(batch.B * batch.T, true);
  upload_batch(ws, batch);
  forward_all(ws, batch);
  LossSum ls = head_loss(ws, shifted_targets(batch), true, loss_scale, nullptr, nullptr);
  if (ls.n_targets > 0 && loss_scale != 0.0f) backward_all(ws, batch);
  return ls;
}

LossSum Decoder::forward_loss(const Batch& batch) {
  check_batch(batch);
  Workspace& ws = workspace_for(batch.B * batch.T, false);
  upload_batch(ws, batch);
  forward_all(ws, batch);
  return head_loss(ws, shifted_targets(batch), false, 0.0f, nullptr, nullptr);
}

void Decoder::next_token_logprobs(const Batch& batch, std::vector<float>& logprob, std::vector<uint8_t>& is_greedy) {
  check_batch(batch);
  const int64_t n = batch.B * batch.T;
  std::vector<int32_t> targets(n, -1);  // next token of the same document; none at row ends, doc ends and padding
  for (int64_t r = 0; r < batch.B; ++r)
    for (int64_t i = 0; i + 1 < batch.T; ++i) {
      const int64_t t = r * batch.T + i;
      if (batch.doc_ids[t] >= 0 && batch.doc_ids[t + 1] == batch.doc_ids[t]) targets[t] = batch.input_ids[t + 1];
    }
  Workspace& ws = workspace_for(n, false);
  upload_batch(ws, batch);
  forward_all(ws, batch);
  std::vector<float> loss(n, 0.0f);
  is_greedy.assign(n, 0);
  head_loss(ws, targets, false, 0.0f, &loss, &is_greedy);
  logprob.resize(n);
  for (int64_t i = 0; i < n; ++i) logprob[i] = -loss[i];
}

std::vector<float> Decoder::logits(const Batch& batch) {
  check_batch(batch);
  const int64_t n = batch.B * batch.T, V = dims_.V;
  Workspace& ws = workspace_for(n, false);
  upload_batch(ws, batch);
  forward_all(ws, batch);
  std::vector<float> out(static_cast<size_t>(n * V));
  const int64_t chunk = ws.loss.size();
  for (int64_t r0 = 0; r0 < n; r0 += chunk) {
    const int64_t c = std::min(chunk, n - r0);
    head_logits(ws, ws.xnf.get() + r0 * dims_.H, c);
    be_.download(out.data() + r0 * V, ws.logits.get(), static_cast<size_t>(c * V) * sizeof(float));
  }
  return out;
}

}  // namespace sft::model
