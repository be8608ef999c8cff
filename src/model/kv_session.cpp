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
  std::vector<std::vector<std::vector<float>>> append_groups(const std::vector<Group>& groups) override;
  std::vector<std::vector<float>> start_branches(const std::vector<std::vector<int32_t>>& prompts,
                                                 int64_t capacity) override;
  std::vector<std::vector<float>> step_branches(const std::vector<int32_t>& tokens) override;

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
    AttentionPlan plan;  // the new rows go into the cache behind the cached ones; attention reads all of it
    plan.shape.B = 1, plan.shape.T = len_ + n, plan.shape.Tq = n;
    plan.pos = ws.pos.get(), plan.doc = doc_.get();
    float* x = ws.resid[0].get();
    m_.embed(ws, x);
    for (int64_t l = 0; l < D.L; ++l) {
      plan.k = k_[l].get(), plan.v = v_[l].get();
      plan.k_new = k_[l].get() + len_ * D.KD, plan.v_new = v_[l].get() + len_ * D.KD;
      m_.layer_forward(l, x, x, ws.layers[0], ws, plan);
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
  // Workspace for n rows (grown on demand, kept between calls).
  Workspace& branch_workspace(int64_t n);
  // LM head logits of the listed rows of ws.xnf (final norm already applied), in chunks.
  std::vector<float> row_logits(Workspace& ws, const std::vector<int32_t>& rows);
  // Grows a scratch buffer to at least n elements (contents are not kept).
  template <class T>
  void reserve(DeviceBuffer<T>& buf, int64_t n) {
    if (buf.size() < n) buf = DeviceBuffer<T>(m_.backend(), n);
  }

  // branch / group scoring scratch, grown on demand and kept between calls
  std::unique_ptr<Workspace> bws_;
  DeviceBuffer<float> bk_, bv_, gk_, gv_;
  DeviceBuffer<int32_t> bdoc_, gdoc_;

  // Persistent branches (start_branches / step_branches): per layer, nb rows of T = P + capacity + 1 keys laid out
  // [cache prefix P (row 0 only where the backend shares keys) | the branch's tokens | unused (doc -1) | one query
  // slot]. A step's token goes into the last slot (the attention kernel's queries are a row's last positions) and
  // into its place after the branch's tokens, which turns visible (doc 0) from the next step on.
  struct Branches {
    int64_t nb = 0, P = 0, cap = 0, T = 0;
    std::vector<DeviceBuffer<float>> k, v;  // per layer [nb * T * KD]
    std::vector<int64_t> len;               // tokens per branch
    std::vector<int32_t> doc;               // host copy of the key doc ids [nb * T]
    DeviceBuffer<int32_t> doc_dev;
  } br_;
  bool sliding_fallback_ = false;  // the branches live in the base class (a sliding-window model)
  std::vector<std::vector<float>> branch_logits(Workspace& ws, const std::vector<int32_t>& rows, size_t nb,
                                                const std::vector<int64_t>& branch_of_row);

  // append_groups' row geometry (see the comment above append_groups).
  struct GroupLayout {
    int64_t G = 0, Pmax = 0, Tb = 0, nbr = 0;  // groups, longest prefix, longest branch, branches in all
    int64_t C = 0, Tp = 0, Tbr = 0;  // cached length; keys per prefix row (C + Pmax) and per branch row (Tp + Tb)
    int64_t n_pre = 0, n = 0;        // prefix rows (G * Pmax); all query rows (n_pre + nbr * Tb)
  };
  // The host-side inputs of the pass: per query row its token id and position, the doc ids of the prefix and branch
  // key rows, each branch's group, and the query rows whose logits are returned (in group, branch, out_rows order).
  struct GroupRows {
    std::vector<int32_t> ids, pos, gdoc, bdoc, rows;
    std::vector<int64_t> group_of;
  };
  GroupLayout group_layout(const std::vector<Group>& groups) const;
  GroupRows pack_groups(const std::vector<Group>& groups, const GroupLayout& L) const;
  void attend_groups(const GroupLayout& L, int64_t layer, LayerActs& a, const std::vector<int64_t>& group_of,
                     const backend::AttnShape& shape);
};

Workspace& Session::branch_workspace(int64_t n) {
  if (!bws_ || bws_->n < n) {
    bws_.reset();
    bws_ = std::make_unique<Workspace>(m_.make_workspace(n, false, m_.head_chunk_rows()));
  }
  bws_->n = n;  // the buffers may be larger; embed() reads ws.n rows
  return *bws_;
}

std::vector<float> Session::row_logits(Workspace& ws, const std::vector<int32_t>& rows) {
  const auto& D = m_.dims();
  backend::Backend& be = m_.backend();
  const int64_t n_out = static_cast<int64_t>(rows.size());
  std::vector<float> all(static_cast<size_t>(n_out * D.V));
  const int64_t chunk = ws.rows.size();
  for (int64_t r0 = 0; r0 < n_out; r0 += chunk) {
    const int64_t c = std::min(chunk, n_out - r0);
    be.upload(ws.rows.get(), rows.data() + r0, c * sizeof(int32_t));
    be.embedding_forward(ws.xc.get(), ws.xnf.get(), ws.rows.get(), c, D.H);  // gather
    m_.head_logits(ws, ws.xc.get(), c);
    be.download(all.data() + r0 * D.V, ws.logits.get(), static_cast<size_t>(c * D.V) * sizeof(float));
  }
  return all;
}

// All branches go through the layers as one batch of nb rows padded to the longest branch (Tb tokens): row b's keys
// are [cached prefix | branch b | padding (doc -1)], so the attention kernel's row/doc masking gives exactly
// "prefix + own earlier tokens". The prefix K/V are copied into the rows per layer (into row 0 only where the backend
// reads shared keys from row 0: AttnShape::shared_keys) and the branches' new K/V are scattered behind them
// (before_attention hook); the cache itself is never written.
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
  Workspace& ws = branch_workspace(n);
  reserve(bk_, nb * T * D.KD);
  reserve(bv_, nb * T * D.KD);
  reserve(bdoc_, nb * T);
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
  const bool share = be.attention_shares_keys();
  float* x = ws.resid[0].get();
  LayerActs& a = ws.layers[0];
  const size_t row_bytes = static_cast<size_t>(D.KD) * sizeof(float);
  AttentionPlan plan;  // new K/V rows into the layer's own buffers, scattered behind each row's prefix copy
  plan.shape.B = nb, plan.shape.T = T, plan.shape.Tq = Tb;
  if (share) plan.shape.shared_keys = P;
  plan.k_new = a.k.get(), plan.v_new = a.v.get();
  plan.k = bk_.get(), plan.v = bv_.get();
  plan.pos = ws.pos.get(), plan.doc = bdoc_.get();
  plan.before_attention = [&] {
    for (int64_t b = 0; b < nb; ++b) {
      be.copy(bk_.get() + (b * T + P) * D.KD, a.k.get() + b * Tb * D.KD, Tb * row_bytes);
      be.copy(bv_.get() + (b * T + P) * D.KD, a.v.get() + b * Tb * D.KD, Tb * row_bytes);
    }
  };
  m_.embed(ws, x);
  for (int64_t l = 0; l < D.L; ++l) {
    for (int64_t b = 0; b < (share ? 1 : nb) && P > 0; ++b) {
      be.copy(bk_.get() + b * T * D.KD, k_[l].get(), P * row_bytes);
      be.copy(bv_.get() + b * T * D.KD, v_[l].get(), P * row_bytes);
    }
    m_.layer_forward(l, x, x, a, ws, plan);
  }
  m_.final_norm(ws, x, n);
  // LM head only for the requested rows, gathered in chunks.
  std::vector<int32_t> rows;
  rows.reserve(static_cast<size_t>(n_out));
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t r : out_rows[b]) rows.push_back(static_cast<int32_t>(b * Tb + r));
  const std::vector<float> all = row_logits(ws, rows);
  std::vector<std::vector<float>> out(static_cast<size_t>(nb));
  size_t off = 0;
  for (int64_t b = 0; b < nb; ++b) {
    const size_t cnt = out_rows[b].size() * static_cast<size_t>(D.V);
    out[b].assign(all.begin() + static_cast<std::ptrdiff_t>(off), all.begin() + static_cast<std::ptrdiff_t>(off + cnt));
    off += cnt;
  }
  return out;
}

// Groups: rows = [G prefixes, each padded on the LEFT to Pmax | every branch padded on the right to Tb], one pass
// through the gemms. Attention runs twice per layer over per-row key layouts (C = cached length):
//   prefix part: G rows of keys [cache C | pad | prefix_g]             queries = its Pmax rows
//   branch part: one row per branch [cache C | pad | prefix_g | branch] queries = its Tb rows
// The left padding keeps every group's prefix ending at C + Pmax, so each branch's queries sit after all of its keys
// in index order (the kernel's causal j <= i); padding has doc id -1 and is never attended.
std::vector<std::vector<std::vector<float>>> Session::append_groups(const std::vector<Group>& groups) {
  if (groups.empty()) return {};
  const GroupLayout L = group_layout(groups);
  // A sliding window counts key distance in row indices; the left padding between the cache and a prefix would
  // stretch it. Such models score group by group (append + the batched append_branches, whose rows keep positions
  // and indices aligned).
  if (m_.has_sliding_window()) return Model::KVSession::append_groups(groups);
  const auto& D = m_.dims();
  backend::Backend& be = m_.backend();
  Workspace& ws = branch_workspace(L.n);
  reserve(gk_, L.G * L.Tp * D.KD);
  reserve(gv_, L.G * L.Tp * D.KD);
  reserve(gdoc_, L.G * L.Tp);
  reserve(bk_, L.nbr * L.Tbr * D.KD);
  reserve(bv_, L.nbr * L.Tbr * D.KD);
  reserve(bdoc_, L.nbr * L.Tbr);
  const GroupRows r = pack_groups(groups, L);
  be.upload(ws.ids.get(), r.ids.data(), L.n * sizeof(int32_t));
  be.upload(ws.pos.get(), r.pos.data(), L.n * sizeof(int32_t));
  be.upload(gdoc_.get(), r.gdoc.data(), L.G * L.Tp * sizeof(int32_t));
  be.upload(bdoc_.get(), r.bdoc.data(), L.nbr * L.Tbr * sizeof(int32_t));
  float* x = ws.resid[0].get();
  LayerActs& a = ws.layers[0];
  m_.embed(ws, x);
  for (int64_t l = 0; l < D.L; ++l) {
    AttentionPlan plan;  // the new K/V rows stay in the layer's buffers; attend_groups lays them out per row
    plan.shape.B = L.nbr, plan.shape.T = L.Tbr, plan.shape.Tq = L.Tb;
    plan.k_new = a.k.get(), plan.v_new = a.v.get();
    plan.pos = ws.pos.get();
    plan.attend = [&, l](const backend::AttnShape& layer) { attend_groups(L, l, a, r.group_of, layer); };
    m_.layer_forward(l, x, x, a, ws, plan);
  }
  m_.final_norm(ws, x, L.n);
  // The logits come back in group, branch, out_rows order: cut them into each branch's rows.
  const std::vector<float> all = row_logits(ws, r.rows);
  std::vector<std::vector<std::vector<float>>> out(groups.size());
  size_t off = 0;
  for (size_t g = 0; g < groups.size(); ++g)
    for (const auto& rows : groups[g].out_rows) {
      const size_t cnt = rows.size() * static_cast<size_t>(D.V);
      out[g].emplace_back(all.begin() + static_cast<std::ptrdiff_t>(off),
                          all.begin() + static_cast<std::ptrdiff_t>(off + cnt));
      off += cnt;
    }
  return out;
}

// Checks every group (branches present and non-empty, token ids in the vocabulary, output rows inside their branch,
// cache + prefix + branch within max_len) and measures the rows.
Session::GroupLayout Session::group_layout(const std::vector<Group>& groups) const {
  const auto& D = m_.dims();
  GroupLayout L;
  L.G = static_cast<int64_t>(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) {
    const Group& gr = groups[g];
    SFT_CHECK(gr.out_rows.size() == gr.branches.size(), "append_groups: group ", g, " has ", gr.out_rows.size(),
              " out_rows lists for ", gr.branches.size(), " branches");
    SFT_CHECK(!gr.branches.empty(), "append_groups: group ", g, " has no branch");
    L.Pmax = std::max<int64_t>(L.Pmax, static_cast<int64_t>(gr.prefix.size()));
    for (int32_t t : gr.prefix)
      SFT_CHECK(t >= 0 && t < D.V, "KV session: token id ", t, " is outside the vocabulary [0, ", D.V, ")");
    for (size_t b = 0; b < gr.branches.size(); ++b) {
      SFT_CHECK(!gr.branches[b].empty(), "append_groups: group ", g, " branch ", b, " is empty");
      L.Tb = std::max<int64_t>(L.Tb, static_cast<int64_t>(gr.branches[b].size()));
      for (int32_t t : gr.branches[b])
        SFT_CHECK(t >= 0 && t < D.V, "KV session: token id ", t, " is outside the vocabulary [0, ", D.V, ")");
      for (int64_t r : gr.out_rows[b])
        SFT_CHECK(r >= 0 && r < static_cast<int64_t>(gr.branches[b].size()), "append_groups: output row ", r,
                  " outside branch ", b, " of group ", g);
      ++L.nbr;
    }
  }
  L.C = len_, L.Tp = L.C + L.Pmax, L.Tbr = L.C + L.Pmax + L.Tb;
  for (const Group& gr : groups)
    for (const auto& br : gr.branches)
      SFT_CHECK(L.C + static_cast<int64_t>(gr.prefix.size() + br.size()) <= max_len_, "KV session: a group of ",
                gr.prefix.size(), " + ", br.size(), " tokens after ", L.C, " cached exceeds max_len ", max_len_);
  L.n_pre = L.G * L.Pmax, L.n = L.n_pre + L.nbr * L.Tb;
  return L;
}

// Query rows: group g's prefix right-aligned in rows [g*Pmax, (g+1)*Pmax), then branch i in [n_pre + i*Tb, ...),
// positions continuing after the cache (and, for a branch, after its prefix). Key rows: the cache and the real
// prefix (and branch) tokens get doc 0; the left padding before a short prefix and the room after a short branch
// get doc -1 (never attended).
Session::GroupRows Session::pack_groups(const std::vector<Group>& groups, const GroupLayout& L) const {
  const int64_t C = L.C, Pmax = L.Pmax, Tp = L.Tp, Tb = L.Tb, Tbr = L.Tbr;
  GroupRows r;
  r.ids.assign(static_cast<size_t>(L.n), 0);
  r.pos.assign(static_cast<size_t>(L.n), static_cast<int32_t>(C));
  r.gdoc.assign(static_cast<size_t>(L.G * Tp), -1);
  r.bdoc.assign(static_cast<size_t>(L.nbr * Tbr), -1);
  r.group_of.resize(static_cast<size_t>(L.nbr));
  int64_t b = 0;
  for (int64_t g = 0; g < L.G; ++g) {
    const Group& gr = groups[g];
    const int64_t Pg = static_cast<int64_t>(gr.prefix.size()), pad = Pmax - Pg;
    for (int64_t j = 0; j < Pg; ++j) {
      r.ids[g * Pmax + pad + j] = gr.prefix[j];
      r.pos[g * Pmax + pad + j] = static_cast<int32_t>(C + j);
    }
    std::fill(r.gdoc.begin() + g * Tp, r.gdoc.begin() + g * Tp + C, 0);
    std::fill(r.gdoc.begin() + g * Tp + C + pad, r.gdoc.begin() + (g + 1) * Tp, 0);
    for (size_t k = 0; k < gr.branches.size(); ++k, ++b) {
      r.group_of[b] = g;
      const auto& br = gr.branches[k];
      const int64_t r0 = L.n_pre + b * Tb;
      for (int64_t j = 0; j < static_cast<int64_t>(br.size()); ++j) {
        r.ids[r0 + j] = br[j];
        r.pos[r0 + j] = static_cast<int32_t>(C + Pg + j);
      }
      int32_t* d = r.bdoc.data() + b * Tbr;
      std::fill(d, d + C, 0);
      std::fill(d + C + pad, d + Tp + static_cast<int64_t>(br.size()), 0);
      for (int64_t row : gr.out_rows[k]) r.rows.push_back(static_cast<int32_t>(r0 + row));
    }
  }
  return r;
}

// One layer's attention for append_groups, in place of the single call: lays out the keys of each group [cache |
// its left-padded prefix rows as computed] and of each branch [the same | its own rows], then attends twice (the
// prefix rows over their group's keys, the branch rows over their own). `shape` carries the layer's scale and
// soft-cap into both geometries.
void Session::attend_groups(const GroupLayout& L, int64_t layer, LayerActs& a, const std::vector<int64_t>& group_of,
                            const backend::AttnShape& shape) {
  const auto& D = m_.dims();
  backend::Backend& be = m_.backend();
  const int64_t C = L.C, Pmax = L.Pmax, Tp = L.Tp, Tb = L.Tb, Tbr = L.Tbr, n_pre = L.n_pre;
  const float* kc = k_[layer].get();
  const float* vc = v_[layer].get();
  const size_t row_bytes = static_cast<size_t>(D.KD) * sizeof(float);
  backend::AttnShape sp = shape, sb = shape;
  sp.B = L.G, sp.T = Tp, sp.Tq = Pmax;
  sb.B = L.nbr, sb.T = Tbr, sb.Tq = Tb;
  for (int64_t g = 0; g < L.G; ++g) {
    float* gk = gk_.get() + g * Tp * D.KD;
    float* gv = gv_.get() + g * Tp * D.KD;
    if (C > 0) be.copy(gk, kc, C * row_bytes), be.copy(gv, vc, C * row_bytes);
    if (Pmax > 0) {
      be.copy(gk + C * D.KD, a.k.get() + g * Pmax * D.KD, Pmax * row_bytes);
      be.copy(gv + C * D.KD, a.v.get() + g * Pmax * D.KD, Pmax * row_bytes);
    }
  }
  for (int64_t i = 0; i < L.nbr; ++i) {
    float* bk = bk_.get() + i * Tbr * D.KD;
    float* bv = bv_.get() + i * Tbr * D.KD;
    if (Tp > 0) {
      be.copy(bk, gk_.get() + group_of[i] * Tp * D.KD, Tp * row_bytes);
      be.copy(bv, gv_.get() + group_of[i] * Tp * D.KD, Tp * row_bytes);
    }
    be.copy(bk + Tp * D.KD, a.k.get() + (n_pre + i * Tb) * D.KD, Tb * row_bytes);
    be.copy(bv + Tp * D.KD, a.v.get() + (n_pre + i * Tb) * D.KD, Tb * row_bytes);
  }
  if (Pmax > 0) be.attention_forward(a.att.get(), a.lse.get(), a.q.get(), gk_.get(), gv_.get(), gdoc_.get(), sp);
  be.attention_forward(a.att.get() + n_pre * D.QD, a.lse.get() + n_pre * D.Hq, a.q.get() + n_pre * D.QD, bk_.get(),
                       bv_.get(), bdoc_.get(), sb);
}

std::vector<std::vector<float>> Session::branch_logits(Workspace& ws, const std::vector<int32_t>& rows, size_t nb,
                                                      const std::vector<int64_t>& branch_of_row) {
  const int64_t V = m_.dims().V;
  const std::vector<float> all = row_logits(ws, rows);
  std::vector<std::vector<float>> out(nb);
  for (size_t r = 0; r < rows.size(); ++r)
    out[static_cast<size_t>(branch_of_row[r])].assign(all.begin() + static_cast<std::ptrdiff_t>(r * V),
                                                      all.begin() + static_cast<std::ptrdiff_t>((r + 1) * V));
  return out;
}

// Every prompt as one row of Lmax tokens, LEFT-padded so that each ends at the last position: keys [cache C | pad |
// prompt_b] (the kernel's queries are a row's last Lmax positions; padding has doc -1). The prompts' K/V also go to
// the persistent rows behind the cache prefix, where step_branches reads them.
std::vector<std::vector<float>> Session::start_branches(const std::vector<std::vector<int32_t>>& prompts,
                                                        int64_t capacity) {
  // A sliding window counts key distance in row indices: the padding inside these rows would stretch it, so such
  // models decode branch by branch (the base class, one append per branch).
  if (m_.has_sliding_window()) {
    sliding_fallback_ = true;
    return Model::KVSession::start_branches(prompts, capacity);
  }
  sliding_fallback_ = false;
  const auto& D = m_.dims();
  const int64_t nb = static_cast<int64_t>(prompts.size());
  SFT_CHECK(nb > 0, "start_branches: no prompt");
  int64_t Lmax = 0;
  for (size_t b = 0; b < prompts.size(); ++b) {
    SFT_CHECK(!prompts[b].empty(), "start_branches: prompt ", b, " is empty");
    SFT_CHECK(static_cast<int64_t>(prompts[b].size()) <= capacity, "start_branches: prompt ", b, " of ",
              prompts[b].size(), " tokens exceeds the capacity ", capacity);
    for (int32_t t : prompts[b])
      SFT_CHECK(t >= 0 && t < D.V, "KV session: token id ", t, " is outside the vocabulary [0, ", D.V, ")");
    Lmax = std::max<int64_t>(Lmax, static_cast<int64_t>(prompts[b].size()));
  }
  const int64_t P = len_, T1 = P + Lmax, n = nb * Lmax;
  SFT_CHECK(P + capacity <= max_len_, "start_branches: ", capacity, " tokens after ", P, " cached exceed max_len ",
            max_len_);
  backend::Backend& be = m_.backend();
  const bool share = be.attention_shares_keys();
  Branches& B = br_;
  B.nb = nb, B.P = P, B.cap = capacity, B.T = P + capacity + 1;
  B.len.assign(static_cast<size_t>(nb), 0);
  if (static_cast<int64_t>(B.k.size()) != D.L) B.k.resize(static_cast<size_t>(D.L)), B.v.resize(static_cast<size_t>(D.L));
  for (int64_t l = 0; l < D.L; ++l) reserve(B.k[l], nb * B.T * D.KD), reserve(B.v[l], nb * B.T * D.KD);
  reserve(B.doc_dev, nb * B.T);
  B.doc.assign(static_cast<size_t>(nb * B.T), -1);

  Workspace& ws = branch_workspace(n);
  reserve(bk_, nb * T1 * D.KD);
  reserve(bv_, nb * T1 * D.KD);
  reserve(bdoc_, nb * T1);
  std::vector<int32_t> ids(n, 0), pos(n, static_cast<int32_t>(P)), doc(nb * T1, -1), rows;
  for (int64_t b = 0; b < nb; ++b) {
    const auto& p = prompts[b];
    const int64_t len = static_cast<int64_t>(p.size()), pad = Lmax - len;
    for (int64_t j = 0; j < len; ++j) {
      ids[b * Lmax + pad + j] = p[j];
      pos[b * Lmax + pad + j] = static_cast<int32_t>(P + j);
    }
    std::fill(doc.begin() + b * T1, doc.begin() + b * T1 + P, 0);
    std::fill(doc.begin() + b * T1 + P + pad, doc.begin() + (b + 1) * T1, 0);
    std::fill(B.doc.begin() + b * B.T, B.doc.begin() + b * B.T + P + len, 0);
    B.len[b] = len;
    rows.push_back(static_cast<int32_t>(b * Lmax + Lmax - 1));
  }
  be.upload(ws.ids.get(), ids.data(), n * sizeof(int32_t));
  be.upload(ws.pos.get(), pos.data(), n * sizeof(int32_t));
  be.upload(bdoc_.get(), doc.data(), nb * T1 * sizeof(int32_t));
  AttentionPlan plan;  // the prompts' K/V rows scattered behind each row's prefix copy and into the branch rows
  plan.shape.B = nb, plan.shape.T = T1, plan.shape.Tq = Lmax;
  if (share) plan.shape.shared_keys = P;
  float* x = ws.resid[0].get();
  LayerActs& a = ws.layers[0];
  m_.embed(ws, x);
  const size_t row_bytes = static_cast<size_t>(D.KD) * sizeof(float);
  for (int64_t l = 0; l < D.L; ++l) {
    for (int64_t b = 0; b < (share ? 1 : nb) && P > 0; ++b) {
      be.copy(bk_.get() + b * T1 * D.KD, k_[l].get(), P * row_bytes);
      be.copy(bv_.get() + b * T1 * D.KD, v_[l].get(), P * row_bytes);
      be.copy(B.k[l].get() + b * B.T * D.KD, k_[l].get(), P * row_bytes);
      be.copy(B.v[l].get() + b * B.T * D.KD, v_[l].get(), P * row_bytes);
    }
    auto scatter = [&] {
      for (int64_t b = 0; b < nb; ++b) {
        const int64_t len = B.len[b], pad = Lmax - len;
        be.copy(bk_.get() + (b * T1 + P) * D.KD, a.k.get() + b * Lmax * D.KD, Lmax * row_bytes);
        be.copy(bv_.get() + (b * T1 + P) * D.KD, a.v.get() + b * Lmax * D.KD, Lmax * row_bytes);
        be.copy(B.k[l].get() + (b * B.T + P) * D.KD, a.k.get() + (b * Lmax + pad) * D.KD, len * row_bytes);
        be.copy(B.v[l].get() + (b * B.T + P) * D.KD, a.v.get() + (b * Lmax + pad) * D.KD, len * row_bytes);
      }
    };
    plan.k_new = a.k.get(), plan.v_new = a.v.get();
    plan.k = bk_.get(), plan.v = bv_.get();
    plan.pos = ws.pos.get(), plan.doc = bdoc_.get();
    plan.before_attention = scatter;
    m_.layer_forward(l, x, x, a, ws, plan);
  }
  m_.final_norm(ws, x, n);
  std::vector<int64_t> branch_of_row(static_cast<size_t>(nb));
  std::iota(branch_of_row.begin(), branch_of_row.end(), 0);
  return branch_logits(ws, rows, static_cast<size_t>(nb), branch_of_row);
}

std::vector<std::vector<float>> Session::step_branches(const std::vector<int32_t>& tokens) {
  if (sliding_fallback_) return Model::KVSession::step_branches(tokens);
  const auto& D = m_.dims();
  Branches& B = br_;
  SFT_CHECK(B.nb > 0, "step_branches: no branches (call start_branches first)");
  SFT_CHECK(static_cast<int64_t>(tokens.size()) == B.nb, "step_branches: ", tokens.size(), " tokens for ", B.nb,
            " branches");
  const int64_t nb = B.nb, T = B.T, P = B.P;
  std::vector<int32_t> ids(nb, 0), pos(nb, static_cast<int32_t>(P)), rows;
  std::vector<int64_t> branch_of_row;
  for (int64_t b = 0; b < nb; ++b) {
    const int32_t t = tokens[b];
    B.doc[b * T + T - 1] = t >= 0 ? 0 : -1;  // the query slot: an idle branch's row is padding
    if (t < 0) continue;
    SFT_CHECK(t < D.V, "KV session: token id ", t, " is outside the vocabulary [0, ", D.V, ")");
    SFT_CHECK(B.len[b] < B.cap, "step_branches: branch ", b, " is full (capacity ", B.cap, ")");
    ids[b] = t;
    pos[b] = static_cast<int32_t>(P + B.len[b]);
    rows.push_back(static_cast<int32_t>(b));
    branch_of_row.push_back(b);
  }
  if (rows.empty()) return std::vector<std::vector<float>>(static_cast<size_t>(nb));
  backend::Backend& be = m_.backend();
  Workspace& ws = branch_workspace(nb);
  be.upload(ws.ids.get(), ids.data(), nb * sizeof(int32_t));
  be.upload(ws.pos.get(), pos.data(), nb * sizeof(int32_t));
  be.upload(B.doc_dev.get(), B.doc.data(), nb * T * sizeof(int32_t));
  AttentionPlan plan;  // one query per branch, in the row's last slot; its K/V also appended behind the branch
  plan.shape.B = nb, plan.shape.T = T, plan.shape.Tq = 1;
  if (be.attention_shares_keys()) plan.shape.shared_keys = P;
  float* x = ws.resid[0].get();
  LayerActs& a = ws.layers[0];
  m_.embed(ws, x);
  const size_t row_bytes = static_cast<size_t>(D.KD) * sizeof(float);
  for (int64_t l = 0; l < D.L; ++l) {
    float* kl = B.k[l].get();
    float* vl = B.v[l].get();
    auto scatter = [&] {
      for (int64_t b = 0; b < nb; ++b) {
        if (tokens[b] < 0) continue;
        be.copy(kl + (b * T + T - 1) * D.KD, a.k.get() + b * D.KD, row_bytes);
        be.copy(vl + (b * T + T - 1) * D.KD, a.v.get() + b * D.KD, row_bytes);
        be.copy(kl + (b * T + P + B.len[b]) * D.KD, a.k.get() + b * D.KD, row_bytes);
        be.copy(vl + (b * T + P + B.len[b]) * D.KD, a.v.get() + b * D.KD, row_bytes);
      }
    };
    plan.k_new = a.k.get(), plan.v_new = a.v.get();
    plan.k = kl, plan.v = vl;
    plan.pos = ws.pos.get(), plan.doc = B.doc_dev.get();
    plan.before_attention = scatter;
    m_.layer_forward(l, x, x, a, ws, plan);
  }
  m_.final_norm(ws, x, nb);
  for (int64_t b = 0; b < nb; ++b)
    if (tokens[b] >= 0) B.doc[b * T + P + B.len[b]++] = 0;  // visible from the next step on
  return branch_logits(ws, rows, static_cast<size_t>(nb), branch_of_row);
}

}  // namespace

std::vector<std::vector<float>> Model::KVSession::start_branches(const std::vector<std::vector<int32_t>>& prompts,
                                                                 int64_t capacity) {
  ref_branches_.clear();
  ref_capacity_ = capacity;
  const int64_t keep = length();
  std::vector<std::vector<float>> out;
  for (size_t b = 0; b < prompts.size(); ++b) {
    SFT_CHECK(!prompts[b].empty(), "start_branches: prompt ", b, " is empty");
    SFT_CHECK(static_cast<int64_t>(prompts[b].size()) <= capacity, "start_branches: prompt ", b, " exceeds capacity");
    out.push_back(append(prompts[b], false));
    truncate(keep);
    ref_branches_.push_back(prompts[b]);
  }
  return out;
}

std::vector<std::vector<float>> Model::KVSession::step_branches(const std::vector<int32_t>& tokens) {
  SFT_CHECK(tokens.size() == ref_branches_.size(), "step_branches: ", tokens.size(), " tokens for ",
            ref_branches_.size(), " branches");
  const int64_t keep = length();
  std::vector<std::vector<float>> out(tokens.size());
  for (size_t b = 0; b < tokens.size(); ++b) {
    if (tokens[b] < 0) continue;
    SFT_CHECK(static_cast<int64_t>(ref_branches_[b].size()) < ref_capacity_, "step_branches: branch ", b, " is full");
    ref_branches_[b].push_back(tokens[b]);
    out[b] = append(ref_branches_[b], false);
    truncate(keep);
  }
  return out;
}

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

std::vector<std::vector<std::vector<float>>> Model::KVSession::append_groups(const std::vector<Group>& groups) {
  const int64_t keep = length();
  std::vector<std::vector<std::vector<float>>> out;
  for (const Group& g : groups) {
    if (!g.prefix.empty()) append(g.prefix, false);
    out.push_back(append_branches(g.branches, g.out_rows));
    truncate(keep);
  }
  return out;
}

std::unique_ptr<Model::KVSession> Decoder::new_session(int64_t max_len) {
  return std::make_unique<Session>(*this, max_len);
}

}  // namespace sft::model
