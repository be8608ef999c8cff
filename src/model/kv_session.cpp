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
};

}  // namespace

std::unique_ptr<Model::KVSession> Decoder::new_session(int64_t max_len) {
  return std::make_unique<Session>(*this, max_len);
}

}  // namespace sft::model
