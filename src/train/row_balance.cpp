#include "train/row_balance.h"

#include <algorithm>
#include <functional>
#include <numeric>
#include <tuple>

#include "util/error.h"

namespace sft::train {

RowCost row_cost_from_config(const io::ModelConfig& c) {
  const int64_t h = c.hidden_size;
  const int64_t hd = c.head_dim > 0 ? c.head_dim : h / std::max<int64_t>(1, c.num_attention_heads);
  const int64_t q = c.num_attention_heads * hd, kv = c.num_key_value_heads * hd;
  const int64_t layer_weights = h * q * 2 + h * kv * 2 + 3 * h * c.intermediate_size;
  RowCost cost;
  cost.per_token = std::max<int64_t>(1, 6 * c.num_hidden_layers * layer_weights);
  cost.per_token_sq = 6 * c.num_hidden_layers * q;  // 12 x q x layers per causal pair, T^2 / 2 pairs a row
  cost.per_target = 6 * h * c.vocab_size;
  return cost;
}

int64_t micro_batch_cost(const std::vector<StepRow>& rows, const RowCost& cost) {
  int64_t t = 0, targets = 0, tokens = 0, squares = 0;
  for (const StepRow& r : rows) {
    t = std::max(t, r.length);
    targets += r.targets;
    tokens += r.length;
    squares += r.length * r.length;
  }
  if (cost.padding_free) return tokens * cost.per_token + squares * cost.per_token_sq + targets * cost.per_target;
  const auto b = static_cast<int64_t>(rows.size());
  return b * t * cost.per_token + b * t * t * cost.per_token_sq + targets * cost.per_target;
}

int64_t max_micro_batch_positions(std::vector<int64_t> row_lengths, int64_t per_device, bool padding_free) {
  SFT_CHECK(per_device >= 1, "max_micro_batch_positions: per-device batch ", per_device);
  const auto k = static_cast<std::ptrdiff_t>(std::min<size_t>(row_lengths.size(), static_cast<size_t>(per_device)));
  std::partial_sort(row_lengths.begin(), row_lengths.begin() + k, row_lengths.end(), std::greater<>());
  if (k == 0) return 0;
  if (!padding_free) return k * row_lengths[0];
  return std::accumulate(row_lengths.begin(), row_lengths.begin() + k, int64_t{0});
}

std::vector<StepRow> step_rows(const std::vector<data::Batch>& globals) {
  std::vector<StepRow> rows;
  for (size_t m = 0; m < globals.size(); ++m) {
    const data::Batch& g = globals[m];
    for (int64_t r = 0; r < g.B; ++r) {
      StepRow s;
      s.micro = static_cast<int32_t>(m);
      s.row = static_cast<int32_t>(r);
      for (int64_t t = 0; t < g.T; ++t) {
        const auto at = static_cast<size_t>(r * g.T + t);
        if (g.doc_ids[at] >= 0) s.length = t + 1;
        s.targets += g.labels[at] != -100;
      }
      rows.push_back(s);
    }
  }
  return rows;
}

namespace {

bool longer_first(const StepRow& a, const StepRow& b) {  // a total order: identical on every rank
  return std::tie(b.length, b.targets, a.micro, a.row) < std::tie(a.length, a.targets, b.micro, b.row);
}

int64_t unpadded_cost(const StepRow& r, const RowCost& c) {
  return r.length * c.per_token + r.length * r.length * c.per_token_sq + r.targets * c.per_target;
}

// A rank's rows sorted longest first and cut into micro-batches of per_device rows; returns their summed cost.
int64_t group_rows(std::vector<StepRow> rows, int64_t per_device, const RowCost& cost, RankPlan* out) {
  std::sort(rows.begin(), rows.end(), longer_first);
  int64_t total = 0;
  for (size_t i = 0; i < rows.size(); i += static_cast<size_t>(per_device)) {
    std::vector<StepRow> mb(rows.begin() + static_cast<std::ptrdiff_t>(i),
                            rows.begin() + static_cast<std::ptrdiff_t>(std::min(rows.size(), i + static_cast<size_t>(per_device))));
    total += micro_batch_cost(mb, cost);
    if (out) out->push_back(std::move(mb));
  }
  return total;
}

int64_t makespan(const std::vector<RankPlan>& plan, const RowCost& cost) {
  int64_t m = 0;
  for (const RankPlan& rp : plan) {
    int64_t l = 0;
    for (const auto& mb : rp) l += micro_batch_cost(mb, cost);
    m = std::max(m, l);
  }
  return m;
}

// Swaps one item between the most and the least loaded rank (or moves one into the least loaded rank while it has
// fewer than cap) while that lowers the larger of the two loads. Each change brings two loads strictly closer, so
// this ends; when no change helps, max - min <= the largest item (a change of a smaller difference would help)
// where loads add up (micro-batches). `load_of(items)` gives a rank's load; items are small (rows or micro-batches).
template <class Item, class LoadOf>
void improve_by_swaps(std::vector<std::vector<Item>>& owned, size_t cap, LoadOf load_of, size_t max_iters) {
  std::vector<int64_t> load(owned.size());
  for (size_t r = 0; r < owned.size(); ++r) load[r] = load_of(owned[r]);
  for (size_t iter = 0; iter < max_iters; ++iter) {
    const auto hi = static_cast<size_t>(std::max_element(load.begin(), load.end()) - load.begin());
    const auto lo = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    if (load[hi] == load[lo]) return;
    int64_t best_peak = load[hi], best_h = 0, best_l = 0;
    size_t best_i = SIZE_MAX, best_j = SIZE_MAX;  // best_j == owned[lo].size(): a move, not a swap
    for (size_t i = 0; i < owned[hi].size(); ++i)
      for (size_t j = 0; j <= owned[lo].size(); ++j) {
        if (j == owned[lo].size() && owned[lo].size() >= cap) break;
        std::vector<Item> h = owned[hi], l = owned[lo];
        if (j < l.size()) {
          std::swap(h[i], l[j]);
        } else {
          l.push_back(h[i]);
          h.erase(h.begin() + static_cast<std::ptrdiff_t>(i));
        }
        const int64_t lh = load_of(h), ll = load_of(l);
        if (std::max(lh, ll) < best_peak) {
          best_peak = std::max(lh, ll);
          best_i = i, best_j = j, best_h = lh, best_l = ll;
        }
      }
    if (best_i == SIZE_MAX) return;
    if (best_j < owned[lo].size()) {
      std::swap(owned[hi][best_i], owned[lo][best_j]);
    } else {
      owned[lo].push_back(owned[hi][best_i]);
      owned[hi].erase(owned[hi].begin() + static_cast<std::ptrdiff_t>(best_i));
    }
    load[hi] = best_h;
    load[lo] = best_l;
  }
}

// (a) Sorted micro-batches dealt out: the step's rows longest first, cut into micro-batches (least padding), which
// go largest first to the least loaded rank, then swaps. Best when every rank gets several micro-batches.
std::vector<RankPlan> deal_micro_batches(std::vector<StepRow> rows, size_t world, int64_t per_device,
                                         const RowCost& cost) {
  RankPlan groups;
  group_rows(std::move(rows), per_device, cost, &groups);
  std::vector<int64_t> gcost(groups.size());
  for (size_t g = 0; g < groups.size(); ++g) gcost[g] = micro_batch_cost(groups[g], cost);
  const size_t cap = (groups.size() + world - 1) / world;  // even forward-pass counts
  std::vector<size_t> order(groups.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return gcost[a] > gcost[b]; });
  std::vector<std::vector<size_t>> owned(world);
  std::vector<int64_t> load(world, 0);
  for (size_t g : order) {
    size_t best = world;
    for (size_t r = 0; r < world; ++r)
      if (owned[r].size() < cap && (best == world || load[r] < load[best])) best = r;
    owned[best].push_back(g);
    load[best] += gcost[g];
  }
  const auto load_of = [&](const std::vector<size_t>& gs) {
    int64_t l = 0;
    for (size_t g : gs) l += gcost[g];
    return l;
  };
  improve_by_swaps(owned, cap, load_of, 64 * (groups.size() + world));
  std::vector<RankPlan> plan(world);
  for (size_t r = 0; r < world; ++r) {
    std::sort(owned[r].begin(), owned[r].end());  // longest micro-batch first
    for (size_t g : owned[r]) plan[r].push_back(groups[g]);
  }
  return plan;
}

// (b) Rows dealt out, then grouped per rank: rows largest first to the least loaded rank (even row counts), each
// rank's rows sorted into micro-batches, then row swaps on the padded costs. Best when a rank gets one or two
// micro-batches (there, (a) gives one rank all the longest rows).
std::vector<RankPlan> deal_rows(std::vector<StepRow> rows, size_t world, int64_t per_device, const RowCost& cost) {
  std::sort(rows.begin(), rows.end(), [&](const StepRow& a, const StepRow& b) {
    const int64_t ca = unpadded_cost(a, cost), cb = unpadded_cost(b, cost);
    return ca != cb ? ca > cb : longer_first(a, b);
  });
  const size_t cap = (rows.size() + world - 1) / world;
  std::vector<std::vector<StepRow>> owned(world);
  std::vector<int64_t> load(world, 0);
  for (const StepRow& r : rows) {
    size_t best = world;
    for (size_t k = 0; k < world; ++k)
      if (owned[k].size() < cap && (best == world || load[k] < load[best])) best = k;
    owned[best].push_back(r);
    load[best] += unpadded_cost(r, cost);
  }
  // Each trial swap regroups two ranks' rows: bounded work (cap^3 per round) for the few rows a rank has here.
  if (cap <= 32) {
    const auto load_of = [&](const std::vector<StepRow>& rs) { return group_rows(rs, per_device, cost, nullptr); };
    improve_by_swaps(owned, cap, load_of, 4 * world);
  }
  std::vector<RankPlan> plan(world);
  for (size_t k = 0; k < world; ++k) group_rows(owned[k], per_device, cost, &plan[k]);
  return plan;
}

// (c) The loader's own split: rank r takes rows [r * per_device, (r + 1) * per_device) of every global micro-batch.
std::vector<RankPlan> contiguous_rows(const std::vector<StepRow>& rows, size_t world, int64_t per_device) {
  std::vector<RankPlan> plan(world);
  int32_t micros = 0;
  for (const StepRow& r : rows) micros = std::max(micros, r.micro + 1);
  for (int32_t m = 0; m < micros; ++m)
    for (size_t k = 0; k < world; ++k) {
      std::vector<StepRow> mb;
      for (const StepRow& r : rows)
        if (r.micro == m && static_cast<size_t>(r.row / per_device) == k) mb.push_back(r);
      if (!mb.empty()) plan[k].push_back(std::move(mb));
    }
  return plan;
}

}  // namespace

std::vector<RankPlan> balance_step_rows(std::vector<StepRow> rows, int world, int64_t per_device, const RowCost& cost) {
  SFT_CHECK(world >= 1 && per_device >= 1, "balance_step_rows: world ", world, " and per-device batch ", per_device,
            " must be >= 1");
  std::sort(rows.begin(), rows.end(), [](const StepRow& a, const StepRow& b) {  // the input order does not matter
    return std::tie(a.micro, a.row) < std::tie(b.micro, b.row);
  });
  const auto n = static_cast<size_t>(world);
  // The plan whose slowest rank is fastest (ties: the earlier candidate); never slower than the loader's split.
  std::vector<RankPlan> best = deal_micro_batches(rows, n, per_device, cost);
  for (auto&& other : {deal_rows(rows, n, per_device, cost), contiguous_rows(rows, n, per_device)})
    if (makespan(other, cost) < makespan(best, cost)) best = other;
  return best;
}

data::Batch gather_rows(const std::vector<data::Batch>& globals, const std::vector<StepRow>& rows, int32_t pad_id) {
  data::Batch b;
  b.B = static_cast<int64_t>(rows.size());
  for (const StepRow& r : rows) b.T = std::max(b.T, r.length);
  const auto n = static_cast<size_t>(b.B * b.T);
  b.input_ids.assign(n, pad_id);
  b.position_ids.assign(n, 0);
  b.doc_ids.assign(n, -1);
  b.labels.assign(n, -100);
  bool origins = true;
  for (const StepRow& r : rows) origins = origins && !globals[static_cast<size_t>(r.micro)].origins.empty();
  if (origins) b.origins.assign(n, -1);
  for (int64_t i = 0; i < b.B; ++i) {
    const StepRow& r = rows[static_cast<size_t>(i)];
    SFT_CHECK(r.micro >= 0 && static_cast<size_t>(r.micro) < globals.size(), "gather_rows: micro-batch ", r.micro,
              " is not in the step (", globals.size(), ")");
    const data::Batch& g = globals[static_cast<size_t>(r.micro)];
    SFT_CHECK(r.row >= 0 && r.row < g.B && r.length <= g.T, "gather_rows: row ", r.row, " (length ", r.length,
              ") of micro-batch ", r.micro, " is outside its ", g.B, " x ", g.T, " batch");
    // [0, length) holds the row's real tokens (right padding); the rest stays padding.
    const auto src = static_cast<std::ptrdiff_t>(r.row * g.T), dst = static_cast<std::ptrdiff_t>(i * b.T);
    std::copy_n(g.input_ids.begin() + src, r.length, b.input_ids.begin() + dst);
    std::copy_n(g.position_ids.begin() + src, r.length, b.position_ids.begin() + dst);
    std::copy_n(g.doc_ids.begin() + src, r.length, b.doc_ids.begin() + dst);
    std::copy_n(g.labels.begin() + src, r.length, b.labels.begin() + dst);
    if (!origins) continue;
    std::copy_n(g.origins.begin() + src, r.length, b.origins.begin() + dst);
    for (int64_t t = 0; t < r.length; ++t)  // each document's sample, in row order
      if (t == 0 || g.doc_ids[src + t] != g.doc_ids[src + t - 1])
        b.sample_indices.push_back(static_cast<int32_t>(g.origins[src + t] >> 32));
  }
  return b;
}

}  // namespace sft::train
