// KV-cache session for generation and cached-context scoring: per layer, the rotated K and V of every position so far
// ([max_len, n_kv_heads*head_dim], the same layout as a one-row batch), so appending n tokens costs n query rows.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/decoder.h"
#include "util/error.h"

namespace sft::model {
namespace {

class Session final : public Model::KVSession {
 public:
  Session(Decoder& m, int64_t max_len) : m_(m), max_len_(max_len) {
    SFT_CHECK(max_len > 0, "new_session: max_len must be positive, got ", max_len);
    const auto& D = m.dims();
    for (int64_t l = 0; l < D.L; ++l) {
      k_.emplace_back(m.backend(), max_len * D.KD);
      v_.emplace_back(m.backend(), max_len * D.KD);
    }
    doc_ = DeviceBuffer<int32_t>(m.backend(), max_len);  // all zeros: one document
  }

  int64_t length() const override { return len_; }
  void truncate(int64_t new_length) override {
    SFT_CHECK(new_length >= 0 && new_length <= len_, "KV session: cannot truncate to ", new_length, " (length ",
              len_, ")");
    len_ = new_length;
  }

  std::vector<std::vector<float>> append_branches(const std::vector<std::vector<int32_t>>& branches,
                                                  const std::vector<std::vector<int64_t>>& out_rows) override;

  std::vector<float> append(const std::vector<int32_t>& tokens, bool all_positions) override {
    const auto& D = m_.dims();
    const int64_t n = static_cast<int64_t>(tokens.size());
    if (n == 0) return {};
    SFT_CHECK(len_ + n <= max_len_, "KV session: appending ", n, " tokens to ", len_, " exceeds max_len ", max_len_);
    for (int32_t t : tokens)
      SFT_CHECK(t >= 0 && t < D.V, "KV session: token id ", t, " is outside the vocabulary [0, ", D.V, ")");
    backend::Backend& be = m_.backend();
    const int64_t out_rows = all_positions ? n : 1;
    Workspace ws = m_.make_workspace(n, false, std::min(out_rows, m_.head_chunk_rows()));
    std::vector<int32_t> pos(n);
    std::iota(pos.begin(), pos.end(), static_cast<int32_t>(len_));
    be.upload(ws.ids.get(), tokens.data(), n * sizeof(int32_t));
    be.upload(ws.pos.get(), pos.data(), n * sizeof(int32_t));
    backend::AttnShape s;
    s.B = 1, s.T = len_ + n, s.Tq = n, s.n_heads = D.Hq, s.n_kv_heads = D.Hkv, s.head_dim = D.d;
    s.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D.d)));
    float* x = ws.resid[0].get();
    m_.embed(ws, x);
    for (int64_t l = 0; l < D.L; ++l) {
      float* kc = k_[l].get();
      float* vc = v_[l].get();
      m_.layer_forward(l, x, x, ws.layers[0], ws, n, s, kc + len_ * D.KD, vc + len_ * D.KD, kc, vc, ws.pos.get(),
                       doc_.get());
    }
    m_.final_norm(ws, x, n);
    len_ += n;
    std::vector<float> out(static_cast<size_t>(out_rows * D.V));
    const int64_t chunk = ws.loss.size();
    for (int64_t r0 = 0; r0 < out_rows; r0 += chunk) {
      const int64_t c = std::min(chunk, out_rows - r0);
      const int64_t first_row = all_positions ? r0 : n - 1;
      m_.head_logits(ws, ws.xnf.get() + first_row * D.H, c);
      be.download(out.data() + r0 * D.V, ws.logits.get(), static_cast<size_t>(c * D.V) * sizeof(float));
    }
    return out;
  }

 private:
  Decoder& m_;
  int64_t max_len_, len_ = 0;
  std::vector<DeviceBuffer<float>> k_, v_;
  DeviceBuffer<int32_t> doc_;
  // branch scoring scratch, grown on demand and kept between calls
  std::unique_ptr<Workspace> bws_;
  DeviceBuffer<float> bk_, bv_;
  DeviceBuffer<int32_t> bdoc_;
};

// All branches go through the layers as one batch of nb rows padded to the longest branch (Tb tokens): row b's keys
// are [cached prefix | branch b | padding (doc -1)], so the attention kernel's row/doc masking gives exactly
// "prefix + own earlier tokens". The prefix K/V are copied into every row per layer and the branches' new K/V are
// scattered behind them (before_attention hook); the cache itself is never written.
std::vector<std::vector<float>> Session::append_branches(const std::vector<std::vector<int32_t>>& branches,
                                                         const std::vector<std::vector<int64_t>>& out_rows) {
  const auto& D = m_.dims();
  const int64_t nb = static_cast<int64_t>(branches.size());
  SFT_CHECK(out_rows.size() == branches.size(), "append_branches: ", out_rows.size(), " out_rows lists for ", nb,
            " branches");
  if (nb == 0) return {};
  int64_t Tb = 0, n_out = 0;
  for (size_t b = 0; b < branches.size(); ++b) {
    SFT_CHECK(!branches[b].empty(), "append_branches: branch ", b, " is empty");
    Tb = std::max<int64_t>(Tb, static_cast<int64_t>(branches[b].size()));
    for (int32_t t : branches[b])
      SFT_CHECK(t >= 0 && t < D.V, "KV session: token id ", t, " is outside the vocabulary [0, ", D.V, ")");
    for (int64_t r : out_rows[b])
      SFT_CHECK(r >= 0 && r < static_cast<int64_t>(branches[b].size()), "append_branches: output row ", r,
                " outside branch ", b, " of ", branches[b].size(), " tokens");
    n_out += static_cast<int64_t>(out_rows[b].size());
  }
  const int64_t P = len_, T = P + Tb, n = nb * Tb;
  SFT_CHECK(T <= max_len_, "KV session: a branch of ", Tb, " tokens after ", P, " cached exceeds max_len ", max_len_);
  backend::Backend& be = m_.backend();
  if (!bws_ || bws_->n < n) {
    bws_.reset();
    bws_ = std::make_unique<Workspace>(m_.make_workspace(n, false, m_.head_chunk_rows()));
  }
  Workspace& ws = *bws_;
  ws.n = n;  // the buffers may be larger; embed() reads ws.n rows
  if (bk_.size() < nb * T * D.KD) {
    bk_ = DeviceBuffer<float>(be, nb * T * D.KD);
    bv_ = DeviceBuffer<float>(be, nb * T * D.KD);
    bdoc_ = DeviceBuffer<int32_t>(be, nb * T);
  }
  std::vector<int32_t> ids(n, 0), pos(n), doc(nb * T, -1);
  for (int64_t b = 0; b < nb; ++b) {
    const auto& br = branches[b];
    for (int64_t j = 0; j < Tb; ++j) {
      ids[b * Tb + j] = j < static_cast<int64_t>(br.size()) ? br[j] : 0;
      pos[b * Tb + j] = static_cast<int32_t>(P + j);
    }
    for (int64_t j = 0; j < P + static_cast<int64_t>(br.size()); ++j) doc[b * T + j] = 0;
  }
  be.upload(ws.ids.get(), ids.data(), n * sizeof(int32_t));
  be.upload(ws.pos.get(), pos.data(), n * sizeof(int32_t));
  be.upload(bdoc_.get(), doc.data(), nb * T * sizeof(int32_t));
  backend::AttnShape s;
  s.B = nb, s.T = T, s.Tq = Tb, s.n_heads = D.Hq, s.n_kv_heads = D.Hkv, s.head_dim = D.d;
  s.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(D.d)));
  float* x = ws.resid[0].get();
  LayerActs& a = ws.layers[0];
  m_.embed(ws, x);
  const size_t row_bytes = static_cast<size_t>(D.KD) * sizeof(float);
  for (int64_t l = 0; l < D.L; ++l) {
    for (int64_t b = 0; b < nb && P > 0; ++b) {
      be.copy(bk_.get() + b * T * D.KD, k_[l].get(), P * row_bytes);
      be.copy(bv_.get() + b * T * D.KD, v_[l].get(), P * row_bytes);
    }
    auto scatter = [&] {
      for (int64_t b = 0; b < nb; ++b) {
        be.copy(bk_.get() + (b * T + P) * D.KD, a.k.get() + b * Tb * D.KD, Tb * row_bytes);
        be.copy(bv_.get() + (b * T + P) * D.KD, a.v.get() + b * Tb * D.KD, Tb * row_bytes);
      }
    };
    m_.layer_forward(l, x, x, a, ws, n, s, a.k.get(), a.v.get(), bk_.get(), bv_.get(), ws.pos.get(), bdoc_.get(),
                     scatter);
  }
  m_.final_norm(ws, x, n);
  // LM head only for the requested rows, gathered in chunks.
  std::vector<int32_t> rows;
  rows.reserve(static_cast<size_t>(n_out));
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t r : out_rows[b]) rows.push_back(static_cast<int32_t>(b * Tb + r));
  std::vector<float> all(static_cast<size_t>(n_out * D.V));
  const int64_t chunk = ws.rows.size();
  for (int64_t r0 = 0; r0 < n_out; r0 += chunk) {
    const int64_t c = std::min(chunk, n_out - r0);
    be.upload(ws.rows.get(), rows.data() + r0, c * sizeof(int32_t));
    be.embedding_forward(ws.xc.get(), ws.xnf.get(), ws.rows.get(), c, D.H);  // gather
    m_.head_logits(ws, ws.xc.get(), c);
    be.download(all.data() + r0 * D.V, ws.logits.get(), static_cast<size_t>(c * D.V) * sizeof(float));
  }
  std::vector<std::vector<float>> out(static_cast<size_t>(nb));
  size_t off = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const size_t cnt = out_rows[b].size() * static_cast<size_t>(D.V);
    out[b].assign(all.begin() + static_cast<std::ptrdiff_t>(off), all.begin() + static_cast<std::ptrdiff_t>(off + cnt));
    off += cnt;
  }
  return out;
}

}  // namespace

std::vector<std::vector<float>> Model::KVSession::append_branches(const std::vector<std::vector<int32_t>>& branches,
                                                                 const std::vector<std::vector<int64_t>>& out_rows) {
  SFT_CHECK(out_rows.size() == branches.size(), "append_branches: ", out_rows.size(), " out_rows lists for ",
            branches.size(), " branches");
  const int64_t keep = length();
  std::vector<std::vector<float>> out;
  for (size_t b = 0; b < branches.size(); ++b) {
    SFT_CHECK(!branches[b].empty(), "append_branches: branch ", b, " is empty");
    std::vector<float> logits = append(branches[b], true);
    const size_t V = logits.size() / branches[b].size();
    std::vector<float> picked;
    for (int64_t r : out_rows[b]) {
      SFT_CHECK(r >= 0 && r < static_cast<int64_t>(branches[b].size()), "append_branches: output row ", r,
                " outside branch ", b);
      picked.insert(picked.end(), logits.begin() + static_cast<std::ptrdiff_t>(r * V),
                    logits.begin() + static_cast<std::ptrdiff_t>((r + 1) * V));
    }
    out.push_back(std::move(picked));
    truncate(keep);
  }
  return out;
}

std::unique_ptr<Model::KVSession> Decoder::new_session(int64_t max_len) {
  return std::make_unique<Session>(*this, max_len);
}

}  // namespace sft::model
