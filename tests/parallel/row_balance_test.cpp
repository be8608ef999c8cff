// Which rank trains which rows of an optimizer step (train/row_balance.h): the rows are read correctly out of the
// global micro-batches, every row is dealt out exactly once in micro-batches of at most per_device rows, and the
// slowest rank's estimated compute is bounded (never above the contiguous split's; at most one micro-batch above an
// even share of the least-padded grouping).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "train/row_balance.h"

namespace {

using sft::train::RowCost;
using sft::train::StepRow;

// A right-padded global micro-batch whose row r has lens[r] real tokens (token values encode micro, row and position)
// and targets on every real position but the first.
sft::data::Batch global_batch(int micro, const std::vector<int64_t>& lens, int32_t pad_id) {
  sft::data::Batch g;
  g.B = static_cast<int64_t>(lens.size());
  g.T = *std::max_element(lens.begin(), lens.end());
  for (int64_t r = 0; r < g.B; ++r)
    for (int64_t t = 0; t < g.T; ++t) {
      const bool real = t < lens[static_cast<size_t>(r)];
      const auto tok = static_cast<int32_t>(1000 * micro + 100 * r + t);
      g.input_ids.push_back(real ? tok : pad_id);
      g.position_ids.push_back(real ? static_cast<int32_t>(t) : 0);
      g.doc_ids.push_back(real ? 0 : -1);
      g.labels.push_back(real && t > 0 ? tok : -100);
    }
  return g;
}

TEST(RowBalance, StepRowsAndGatherAcrossMicroBatches) {
  const int32_t pad = 7;
  const std::vector<sft::data::Batch> globals = {global_batch(0, {5, 2}, pad), global_batch(1, {3, 8, 1}, pad)};
  const auto rows = sft::train::step_rows(globals);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[1].micro, 0);
  EXPECT_EQ(rows[1].row, 1);
  EXPECT_EQ(rows[1].length, 2);
  EXPECT_EQ(rows[1].targets, 1);
  EXPECT_EQ(rows[3].length, 8);
  EXPECT_EQ(rows[3].targets, 7);
  // Row 1 of micro-batch 0 (global T 5) next to row 1 of micro-batch 1 (global T 8): padded to 8 with pad_id.
  const auto b = sft::train::gather_rows(globals, {rows[1], rows[3]}, pad);
  ASSERT_EQ(b.B, 2);
  ASSERT_EQ(b.T, 8);
  EXPECT_EQ(std::vector<int32_t>(b.input_ids.begin(), b.input_ids.begin() + 8),
            (std::vector<int32_t>{100, 101, pad, pad, pad, pad, pad, pad}));
  EXPECT_EQ(std::vector<int32_t>(b.labels.begin(), b.labels.begin() + 8),
            (std::vector<int32_t>{-100, 101, -100, -100, -100, -100, -100, -100}));
  EXPECT_EQ(std::vector<int32_t>(b.doc_ids.begin(), b.doc_ids.begin() + 3), (std::vector<int32_t>{0, 0, -1}));
  EXPECT_EQ(std::vector<int32_t>(b.input_ids.begin() + 8, b.input_ids.end()),
            (std::vector<int32_t>{1100, 1101, 1102, 1103, 1104, 1105, 1106, 1107}));
  EXPECT_EQ(std::vector<int32_t>(b.position_ids.begin() + 8, b.position_ids.end()),
            (std::vector<int32_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(b.count_targets(), 1 + 7);
  // A row outside its micro-batch is an error, not a read past the end.
  StepRow bad = rows[0];
  bad.row = 2;
  EXPECT_THROW(sft::train::gather_rows(globals, {bad}, pad), std::exception);
}

TEST(RowBalance, CostFromConfigCountsLayersAttentionAndHead) {
  sft::io::ModelConfig c;
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.vocab_size = 100;
  const RowCost k = sft::train::row_cost_from_config(c);
  EXPECT_EQ(k.per_token, 6 * 2 * (8 * 8 * 2 + 8 * 4 * 2 + 3 * 8 * 16));
  EXPECT_EQ(k.per_token_sq, 12 * 2 * 8 / 2);
  EXPECT_EQ(k.per_target, 6 * 8 * 100);
  // B * T * per_token + B * T^2 * per_token_sq + targets * per_target, T the longest row.
  const std::vector<StepRow> mb = {{0, 0, 3, 2}, {0, 1, 5, 1}};
  EXPECT_EQ(sft::train::micro_batch_cost(mb, k), 2 * 5 * k.per_token + 2 * 25 * k.per_token_sq + 3 * k.per_target);
}

// Per-rank cost of the old split: rank r takes rows [r * pd, (r + 1) * pd) of every global micro-batch.
std::vector<int64_t> contiguous_loads(const std::vector<StepRow>& rows, int world, int64_t pd, const RowCost& cost) {
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  int32_t micros = 0;
  for (const StepRow& r : rows) micros = std::max(micros, r.micro + 1);
  for (int32_t m = 0; m < micros; ++m)
    for (int r = 0; r < world; ++r) {
      std::vector<StepRow> slice;
      for (const StepRow& s : rows)
        if (s.micro == m && s.row / pd == r) slice.push_back(s);
      load[static_cast<size_t>(r)] += sft::train::micro_batch_cost(slice, cost);
    }
  return load;
}

TEST(RowBalance, RandomStepsEveryRowOnceAndImbalanceBounded) {
  std::mt19937_64 rng(20261203);
  const RowCost cost{85000, 14, 443000};  // relative weights of the 4-layer SmolLM2 shape with the Llama-3 vocabulary
  double spread_balanced = 0, spread_contiguous = 0, makespan_balanced = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const int world = 2 + static_cast<int>(rng() % 3);        // 2..4 ranks
    const int64_t pd = 1 + static_cast<int64_t>(rng() % 4);   // per-device batch 1..4
    const int micros = 1 + static_cast<int>(rng() % 8);       // accumulation 1..8
    std::vector<StepRow> rows;
    for (int m = 0; m < micros; ++m) {
      // the epoch's last global batch may be short (fewer rows than world x pd, even fewer than pd)
      const int64_t n = m + 1 == micros && rng() % 3 == 0 ? 1 + static_cast<int64_t>(rng() % (world * pd))
                                                          : world * pd;
      for (int64_t r = 0; r < n; ++r) {
        StepRow s;
        s.micro = m;
        s.row = static_cast<int32_t>(r);
        s.length = 1 + static_cast<int64_t>(rng() % 512);
        s.targets = static_cast<int64_t>(rng() % static_cast<uint64_t>(s.length));
        rows.push_back(s);
      }
    }
    const auto plan = sft::train::balance_step_rows(rows, world, pd, cost);
    ASSERT_EQ(plan.size(), static_cast<size_t>(world));
    std::set<std::pair<int32_t, int32_t>> seen;
    std::vector<int64_t> load;
    for (const auto& rp : plan) {
      EXPECT_LE(rp.size(), static_cast<size_t>(micros)) << "more forward passes than the loader's split";
      int64_t l = 0;
      for (const auto& mb : rp) {
        ASSERT_FALSE(mb.empty());
        EXPECT_LE(static_cast<int64_t>(mb.size()), pd);
        for (const StepRow& s : mb) {
          EXPECT_TRUE(seen.insert({s.micro, s.row}).second) << "row dealt twice: " << s.micro << "," << s.row;
          const auto it = std::find_if(rows.begin(), rows.end(),
                                       [&](const StepRow& x) { return x.micro == s.micro && x.row == s.row; });
          ASSERT_NE(it, rows.end());
          EXPECT_EQ(it->length, s.length);
          EXPECT_EQ(it->targets, s.targets);
        }
        l += sft::train::micro_batch_cost(mb, cost);
      }
      load.push_back(l);
    }
    EXPECT_EQ(seen.size(), rows.size()) << "every row exactly once";
    const auto [lo, hi] = std::minmax_element(load.begin(), load.end());
    // Bounded: the slowest rank is never slower than with the loader's contiguous split, and it exceeds an even
    // share of the step's rows sorted into micro-batches (the least padding) by at most one such micro-batch.
    const auto old = contiguous_loads(rows, world, pd, cost);
    const auto [olo, ohi] = std::minmax_element(old.begin(), old.end());
    EXPECT_LE(*hi, *ohi) << "trial " << trial;
    std::vector<StepRow> sorted = rows;
    std::sort(sorted.begin(), sorted.end(), [](const StepRow& a, const StepRow& b) {
      return std::tie(b.length, b.targets, a.micro, a.row) < std::tie(a.length, a.targets, b.micro, b.row);
    });
    int64_t sorted_total = 0, sorted_largest = 0;
    for (size_t i = 0; i < sorted.size(); i += static_cast<size_t>(pd)) {
      const std::vector<StepRow> mb(sorted.begin() + static_cast<std::ptrdiff_t>(i),
                                    sorted.begin() + static_cast<std::ptrdiff_t>(std::min(sorted.size(), i + static_cast<size_t>(pd))));
      sorted_total += sft::train::micro_batch_cost(mb, cost);
      sorted_largest = std::max(sorted_largest, sft::train::micro_batch_cost(mb, cost));
    }
    EXPECT_LE(*hi, sorted_total / world + sorted_largest) << "trial " << trial;
    // A pure function of the rows (every rank must compute the same plan), whatever order they come in.
    std::vector<StepRow> shuffled = rows;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    const auto again = sft::train::balance_step_rows(shuffled, world, pd, cost);
    for (size_t r = 0; r < plan.size(); ++r) {
      ASSERT_EQ(again[r].size(), plan[r].size());
      for (size_t i = 0; i < plan[r].size(); ++i)
        for (size_t j = 0; j < plan[r][i].size(); ++j) {
          EXPECT_EQ(again[r][i][j].micro, plan[r][i][j].micro);
          EXPECT_EQ(again[r][i][j].row, plan[r][i][j].row);
        }
    }
    makespan_balanced += static_cast<double>(*hi) / static_cast<double>(*ohi);
    spread_balanced += static_cast<double>(*hi - *lo) / static_cast<double>(*hi);
    spread_contiguous += static_cast<double>(*ohi - *olo) / static_cast<double>(*ohi);
  }
  std::printf("mean (max - min) / max rank load: balanced %.3f, contiguous split %.3f; slowest rank balanced / "
              "contiguous: %.3f\n", spread_balanced / 300, spread_contiguous / 300, makespan_balanced / 300);
  EXPECT_LT(spread_balanced, 0.5 * spread_contiguous);
  EXPECT_LT(makespan_balanced / 300, 0.95);
}

TEST(RowBalance, FewerRowsThanRanksAndBadArguments) {
  const std::vector<StepRow> rows = {{0, 0, 10, 3}};
  const auto plan = sft::train::balance_step_rows(rows, 3, 2, RowCost{});
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].size() + plan[1].size() + plan[2].size(), 1u);  // two ranks train on nothing this step
  EXPECT_THROW(sft::train::balance_step_rows(rows, 0, 2, RowCost{}), std::exception);
  EXPECT_THROW(sft::train::balance_step_rows(rows, 2, 0, RowCost{}), std::exception);
}

// Padding-free micro-batches (--padding_free): a micro-batch costs the sum over its rows (tokens, squares of each
// sample's length), so the ranks are balanced by real tokens; every row is still dealt exactly once, in micro-batches
// of at most per_device rows, and the slowest rank is never slower than with the contiguous split.
TEST(RowBalance, PaddingFreeCostsBalanceRealTokens) {
  RowCost pf{85000, 14, 443000, true};
  const std::vector<StepRow> mb = {{0, 0, 5, 2}, {0, 1, 3, 1}};
  EXPECT_EQ(sft::train::micro_batch_cost(mb, pf), 8 * pf.per_token + 34 * pf.per_token_sq + 3 * pf.per_target);
  std::mt19937_64 rng(11);
  double spread = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const int world = 2 + static_cast<int>(rng() % 3);
    const int64_t pd = 1 + static_cast<int64_t>(rng() % 4), gas = 1 + static_cast<int64_t>(rng() % 8);
    std::vector<StepRow> rows;
    for (int32_t m = 0; m < gas; ++m)
      for (int32_t r = 0; r < world * pd; ++r) {
        const int64_t len = 20 + static_cast<int64_t>(rng() % 600);
        rows.push_back({m, r, len, len / 2});
      }
    const auto plan = sft::train::balance_step_rows(rows, world, pd, pf);
    std::set<std::pair<int32_t, int32_t>> seen;
    std::vector<int64_t> load;
    for (const auto& rank : plan) {
      int64_t l = 0;
      for (const auto& m : rank) {
        EXPECT_LE(static_cast<int64_t>(m.size()), pd);
        for (const StepRow& r : m) EXPECT_TRUE(seen.insert({r.micro, r.row}).second);
        l += sft::train::micro_batch_cost(m, pf);
      }
      load.push_back(l);
    }
    EXPECT_EQ(seen.size(), rows.size());
    const auto contiguous = contiguous_loads(rows, world, pd, pf);
    const int64_t hi = *std::max_element(load.begin(), load.end()), lo = *std::min_element(load.begin(), load.end());
    EXPECT_LE(hi, *std::max_element(contiguous.begin(), contiguous.end()));
    spread += static_cast<double>(hi - lo) / static_cast<double>(hi);
  }
  std::printf("padding-free: mean (max - min) / max rank load %.3f\n", spread / 200);
}

// The workspace bound: the per_device longest rows (padding-free: their tokens; padded: per_device x the longest).
TEST(RowBalance, LargestMicroBatchPositions) {
  using sft::train::max_micro_batch_positions;
  EXPECT_EQ(max_micro_batch_positions({5, 9, 2, 7}, 2, true), 16);
  EXPECT_EQ(max_micro_batch_positions({5, 9, 2, 7}, 2, false), 18);
  EXPECT_EQ(max_micro_batch_positions({5, 9}, 4, true), 14);  // fewer rows than per_device
  EXPECT_EQ(max_micro_batch_positions({5, 9}, 4, false), 18);
  EXPECT_EQ(max_micro_batch_positions({}, 4, false), 0);
}

// gather_rows carries each token's origin (sample, offset) and the rows' samples along (LoRA dropout keys).
TEST(RowBalance, GatherCarriesOrigins) {
  std::vector<sft::data::Batch> globals = {global_batch(0, {3, 2}, 0), global_batch(1, {4}, 0)};
  for (auto& g : globals)
    for (size_t i = 0; i < g.doc_ids.size(); ++i)
      g.origins.push_back(g.doc_ids[i] < 0 ? -1 : (int64_t{g.input_ids[i] / 100} << 32) | (g.input_ids[i] % 100));
  const sft::data::Batch b = sft::train::gather_rows(globals, {{1, 0, 4, 3}, {0, 1, 2, 1}}, 0);
  ASSERT_EQ(b.origins.size(), 8u);
  EXPECT_EQ(b.origins[0], (int64_t{10} << 32) | 0);
  EXPECT_EQ(b.origins[3], (int64_t{10} << 32) | 3);
  EXPECT_EQ(b.origins[4], (int64_t{1} << 32) | 0);
  EXPECT_EQ(b.origins[6], -1);
  EXPECT_EQ(b.sample_indices, (std::vector<int32_t>{10, 1}));
}

}  // namespace
