// One decoder layer, forward and backward side by side (llm.c style): every block is a named pair whose backward
// walks the forward's steps in reverse, and the family's differences are fields of LayerBlocks read in one place.
//
// Forward of layer l over n token rows (x = its input, the saved residual stream in training):
//   attention block   xn1 = norm(x);  q, k, v = xn1 W^T (+ b);  [q, k = per-head norm];  rope(q, k)
//                     att = attention(q, k, v; doc ids, window, soft-cap)
//                     mid = x + [out norm](att Wo^T)
//   MLP block         xn2 = norm(mid);  gate, up = xn2 W^T
//                     out = mid + [out norm](glu(gate, up) Wd^T)
// Backward: ws.dR = d loss / d out  ->  MLP block  ->  d loss / d mid  ->  attention block  ->  d loss / d x.
// Not saved, recomputed in the backward by the same kernels on the same inputs (so the same bits): xn1, xn2 (from x
// and mid) and the GLU output h (from gate and up).
#include <cmath>

#include "model/decoder.h"
#include "util/error.h"

namespace sft::model {

using backend::AttnShape;

LayerBlocks LayerBlocks::from(const io::ModelConfig& cfg, int64_t head_dim) {
  LayerBlocks b;
  b.glu = cfg.hidden_act == "gelu_pytorch_tanh" ? Glu::GeGLU : Glu::SwiGLU;
  b.norm_offset = cfg.norm_unit_offset ? 1.0f : 0.0f;
  b.qk_norm = cfg.qk_norm;
  // transformers: head_dim ** -0.5, or query_pre_attn_scalar ** -0.5 (Gemma 2); a float32 factor of the scores
  b.attn_scale = cfg.query_pre_attn_scalar > 0 ? static_cast<float>(std::pow(cfg.query_pre_attn_scalar, -0.5))
                                               : static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  b.attn_softcap = static_cast<float>(cfg.attn_logit_softcapping);
  b.final_softcap = static_cast<float>(cfg.final_logit_softcapping);
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) b.window.push_back(cfg.window_of(l));
  // Gemma: hidden_size ** 0.5 as a float32 tensor cast to the hidden states' dtype (fp32 activations here)
  b.embed_scale = cfg.scale_embeddings ? static_cast<float>(std::sqrt(static_cast<double>(cfg.hidden_size))) : 0.0f;
  return b;
}

AttnShape Decoder::layer_attention(int64_t l, AttnShape s) const {
  s.n_heads = dims_.Hq, s.n_kv_heads = dims_.Hkv, s.head_dim = dims_.d;
  s.scale = blocks_.attn_scale;
  s.softcap = blocks_.attn_softcap;
  s.window = blocks_.window.at(static_cast<size_t>(l));
  return s;
}

bool Decoder::has_sliding_window() const {
  for (int64_t w : blocks_.window)
    if (w > 0) return true;
  return false;
}

// ---- norms ----

void Decoder::norm_forward(int64_t w, float* y, float* rstd, const float* x, int64_t rows, int64_t width) {
  be_.rmsnorm_forward(y, rstd, x, value(w), rows, width, static_cast<float>(cfg_.rms_norm_eps), blocks_.norm_offset);
}

void Decoder::norm_backward(int64_t w, float* dx, const float* dy, const float* x, const float* rstd, int64_t rows,
                            int64_t width) {
  be_.rmsnorm_backward(dx, norm_grad(w), dy, x, value(w), rstd, rows, width, blocks_.norm_offset);
}

const float* Decoder::recompute_norm(Workspace& ws, const float* x, int64_t norm_weight) {
  // Same kernel and input as the forward, so the same bits; 1/rms goes to scratch (the saved one stays untouched).
  norm_forward(norm_weight, ws.xn.get(), ws.rstd.get(), x, ws.n, dims_.H);
  return ws.xn.get();
}

// ---- a block's output onto the residual stream ----

void Decoder::residual_forward(const Linear& L, Operand in, const float* resid, float* out, int64_t out_norm,
                               float* proj, float* rstd, Workspace& ws, bool write_out) {
  const int64_t n = ws.n, H = dims_.H;
  if (out_norm < 0) {  // out = resid + in W^T, accumulated by the gemm itself
    if (out != resid) be_.copy(out, resid, static_cast<size_t>(n * H) * sizeof(float));
    linear_forward(L, in, n, out, true);
    return;
  }
  linear_forward(L, in, n, proj, false);  // sandwich norm: out = resid + norm(in W^T), the sum in fp32 as torch's
  norm_forward(out_norm, ws.normed.get(), rstd, proj, n, H);
  if (!write_out) return;
  if (out != resid) be_.copy(out, resid, static_cast<size_t>(n * H) * sizeof(float));
  be_.add(out, ws.normed.get(), n * H);
}

const float* Decoder::residual_backward(int64_t out_norm, const float* proj, const float* rstd, Workspace& ws) {
  if (out_norm < 0) return ws.dR.get();  // the residual passes dR through unchanged; the projection gets it too
  be_.zero(ws.dxn.get(), static_cast<size_t>(ws.n * dims_.H) * sizeof(float));  // the batch's rows, not the capacity
  norm_backward(out_norm, ws.dxn.get(), ws.dR.get(), proj, rstd, ws.n, dims_.H);
  return ws.dxn.get();
}

// ---- the MLP's gated activation ----

void Decoder::glu_forward(float* h, const float* gate, const float* up, int64_t n) {
  if (blocks_.glu == LayerBlocks::Glu::GeGLU) be_.geglu_forward(h, gate, up, n);
  else be_.swiglu_forward(h, gate, up, n);
}

void Decoder::glu_backward(float* dgate, float* dup, const float* dh, const float* gate, const float* up, int64_t n) {
  if (blocks_.glu == LayerBlocks::Glu::GeGLU) be_.geglu_backward(dgate, dup, dh, gate, up, n);
  else be_.swiglu_backward(dgate, dup, dh, gate, up, n);
}

// ---- attention block ----

void Decoder::attention_block_forward(int64_t l, const float* x, LayerActs& a, Workspace& ws,
                                      const AttentionPlan& plan) {
  const Dims& D = dims_;
  const LayerWeights& w = layer_[l];
  const int64_t n = ws.n;
  norm_forward(w.in_norm, ws.xn.get(), a.rstd1.get(), x, n, D.H);
  const Operand xn1 = operand(ws.xn.get(), n * D.H, ws, 0);
  // With q/k norms the projections land in q_raw/k_raw and the per-head RMSNorm (over head_dim, rows = n*heads)
  // writes the normalised heads where RoPE and attention expect them.
  float* q_proj = blocks_.qk_norm ? a.q_raw.get() : a.q.get();
  float* k_proj = blocks_.qk_norm ? a.k_raw.get() : plan.k_new;
  linear_forward(w.q, xn1, n, q_proj, false);
  linear_forward(w.k, xn1, n, k_proj, false);
  linear_forward(w.v, xn1, n, plan.v_new, false);
  if (blocks_.qk_norm) {
    norm_forward(w.q_norm, a.q.get(), a.rstd_q.get(), q_proj, n * D.Hq, D.d);
    norm_forward(w.k_norm, plan.k_new, a.rstd_k.get(), k_proj, n * D.Hkv, D.d);
  }
  be_.rope(a.q.get(), plan.pos, inv_freq_.get(), n, D.Hq, D.d, false);
  be_.rope(plan.k_new, plan.pos, inv_freq_.get(), n, D.Hkv, D.d, false);
  if (plan.before_attention) plan.before_attention();
  const AttnShape s = layer_attention(l, plan.shape);
  if (plan.attend) plan.attend(s);
  else be_.attention_forward(a.att.get(), a.lse.get(), a.q.get(), plan.k, plan.v, plan.doc, s);
  residual_forward(w.o, operand(a.att.get(), n * D.QD, ws, 0), x, a.mid.get(), w.attn_out_norm, a.attn_proj.get(),
                   a.rstd_ao.get(), ws, true);
}

void Decoder::attention_block_backward(int64_t l, const float* x, LayerActs& a, Workspace& ws, const AttnShape& s) {
  const Dims& D = dims_;
  const LayerWeights& w = layer_[l];
  const int64_t n = ws.n;
  const float* dy = residual_backward(w.attn_out_norm, a.attn_proj.get(), a.rstd_ao.get(), ws);
  linear_backward(w.o, operand(dy, n * D.H, ws, 1), operand(a.att.get(), n * D.QD, ws, 0), n, ws.datt.get(), false);
  be_.attention_backward(ws.dq.get(), ws.dk.get(), ws.dv.get(), ws.datt.get(), a.q.get(), a.k.get(), a.v.get(),
                         a.att.get(), a.lse.get(), ws.doc.get(), s);
  be_.rope(ws.dq.get(), ws.pos.get(), inv_freq_.get(), n, D.Hq, D.d, true);
  be_.rope(ws.dk.get(), ws.pos.get(), inv_freq_.get(), n, D.Hkv, D.d, true);
  float* dq = ws.dq.get();
  float* dk = ws.dk.get();
  if (blocks_.qk_norm) {  // through the per-head norms: gradients of the projections before them
    be_.zero(ws.dq_raw.get(), static_cast<size_t>(n * D.QD) * sizeof(float));
    be_.zero(ws.dk_raw.get(), static_cast<size_t>(n * D.KD) * sizeof(float));
    norm_backward(w.q_norm, ws.dq_raw.get(), dq, a.q_raw.get(), a.rstd_q.get(), n * D.Hq, D.d);
    norm_backward(w.k_norm, ws.dk_raw.get(), dk, a.k_raw.get(), a.rstd_k.get(), n * D.Hkv, D.d);
    dq = ws.dq_raw.get();
    dk = ws.dk_raw.get();
  }
  const Operand xn1 = operand(recompute_norm(ws, x, w.in_norm), n * D.H, ws, 0);
  linear_backward(w.q, operand(dq, n * D.QD, ws, 1), xn1, n, ws.dxn.get(), false);
  linear_backward(w.k, operand(dk, n * D.KD, ws, 1), xn1, n, ws.dxn.get(), true);
  linear_backward(w.v, operand(ws.dv.get(), n * D.KD, ws, 1), xn1, n, ws.dxn.get(), true);
  norm_backward(w.in_norm, ws.dR.get(), ws.dxn.get(), x, a.rstd1.get(), n, D.H);  // dR is now d loss / d x
}

// ---- MLP block ----

void Decoder::mlp_block_forward(int64_t l, LayerActs& a, Workspace& ws, float* out) {
  const Dims& D = dims_;
  const LayerWeights& w = layer_[l];
  const int64_t n = ws.n;
  norm_forward(w.post_norm, ws.xn.get(), a.rstd2.get(), a.mid.get(), n, D.H);
  const Operand xn2 = operand(ws.xn.get(), n * D.H, ws, 0);
  linear_forward(w.gate, xn2, n, a.gate.get(), false);
  linear_forward(w.up, xn2, n, a.up.get(), false);
  // Checkpoint recompute: without an out norm the backward reads nothing past gate/up (it recomputes h itself).
  if (!out && w.mlp_out_norm < 0) return;
  glu_forward(ws.h.get(), a.gate.get(), a.up.get(), n * D.I);
  residual_forward(w.down, operand(ws.h.get(), n * D.I, ws, 0), a.mid.get(), out, w.mlp_out_norm, a.mlp_proj.get(),
                   a.rstd_mo.get(), ws, out != nullptr);
}

void Decoder::mlp_block_backward(int64_t l, LayerActs& a, Workspace& ws) {
  const Dims& D = dims_;
  const LayerWeights& w = layer_[l];
  const int64_t n = ws.n;
  const float* dy = residual_backward(w.mlp_out_norm, a.mlp_proj.get(), a.rstd_mo.get(), ws);
  glu_forward(ws.h.get(), a.gate.get(), a.up.get(), n * D.I);  // recomputed, not saved
  // dh overwrites h (free after dWd): the seam computes dW before dx
  linear_backward(w.down, operand(dy, n * D.H, ws, 1), operand(ws.h.get(), n * D.I, ws, 0), n, ws.h.get(), false);
  // In place: dgate over gate, dup over up (this layer's gate/up are not read again).
  float* dgate = a.gate.get();
  float* dup = a.up.get();
  glu_backward(dgate, dup, ws.h.get(), a.gate.get(), a.up.get(), n * D.I);
  // Checkpointed: the forward re-run left this layer's xn2 in ws.xn (nothing since wrote it), so it is not
  // normalised a second time.
  const float* xn2_f32 = ws.checkpointed ? ws.xn.get() : recompute_norm(ws, a.mid.get(), w.post_norm);
  const Operand xn2 = operand(xn2_f32, n * D.H, ws, 0);
  linear_backward(w.gate, operand(dgate, n * D.I, ws, 1), xn2, n, ws.dxn.get(), false);
  linear_backward(w.up, operand(dup, n * D.I, ws, 1), xn2, n, ws.dxn.get(), true);
  norm_backward(w.post_norm, ws.dR.get(), ws.dxn.get(), a.mid.get(), a.rstd2.get(), n, D.H);  // dR: d loss / d mid
}

// ---- the layer ----

void Decoder::layer_forward(int64_t l, const float* x, float* out, LayerActs& a, Workspace& ws,
                            const AttentionPlan& plan) {
  lora_training_ = ws.training;  // LoRA dropout only in training passes
  if (lora_) lora_->reserve(ws.n);
  attention_block_forward(l, x, a, ws, plan);
  mlp_block_forward(l, a, ws, out);
}

void Decoder::layer_backward(int64_t l, const float* x, LayerActs& a, Workspace& ws, const AttentionPlan& plan) {
  if (ws.checkpointed) layer_forward(l, x, nullptr, a, ws, plan);  // refill the shared activations (same bits)
  mlp_block_backward(l, a, ws);
  attention_block_backward(l, x, a, ws, layer_attention(l, plan.shape));
}

}  // namespace sft::model
