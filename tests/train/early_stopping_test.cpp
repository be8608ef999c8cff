// The best-metric rule and HF's EarlyStoppingCallback (train/early_stopping.h) on hand-checked sequences, and NEFTune's
// L per micro-batch (trainer.h neftune_sequence_length). transformers' own classes on random sequences:
// test_early_stopping.py (through early_stopping_tool).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <vector>

#include "data/batching.h"
#include "train/early_stopping.h"
#include "train/trainer.h"

namespace sft::train {
namespace {

// Runs a sequence as the trainer does: on_evaluate against the best so far, then the best update. Returns the
// 1-based evaluation at which it stops (0 = never) and the final best.
std::pair<int, std::optional<double>> run(const std::vector<double>& values, int64_t patience, double threshold,
                                          bool greater) {
  EarlyStopping es(patience, threshold, greater);
  std::optional<double> best;
  for (size_t i = 0; i < values.size(); ++i) {
    const bool stop = es.on_evaluate(values[i], best);
    update_best_metric(best, values[i], greater);
    if (stop) return {static_cast<int>(i + 1), best};
  }
  return {0, best};
}

TEST(EarlyStopping, PatienceCountsEvaluationsWithoutImprovement) {
  // Loss (lower is better): 3 is the first best; 2.5 improves; 2.6, 2.5 (a tie is no improvement) count 1, 2.
  EXPECT_EQ(run({3, 2.5, 2.6, 2.5, 1.0}, 2, 0.0, false).first, 4);
  EXPECT_EQ(run({3, 2.5, 2.6, 2.4, 2.7}, 2, 0.0, false).first, 0);  // the improvement at 4 resets the counter
  EXPECT_EQ(run({3, 3, 3}, 1, 0.0, false).first, 2);
  // Threshold: the improvement must EXCEED it (0.5 exactly does not).
  EXPECT_EQ(run({3, 2.5, 2.0}, 1, 0.5, false).first, 2);
  EXPECT_EQ(run({3, 2.25, 1.5}, 1, 0.5, false).first, 0);
  // A value that is not an improvement by more than the threshold still becomes the best (HF updates it anyway).
  const auto [stop, best] = run({3, 2.9, 5.0}, 5, 0.5, false);
  EXPECT_EQ(stop, 0);
  EXPECT_EQ(best, std::optional<double>(2.9));
  // Greater is better.
  EXPECT_EQ(run({0.5, 0.6, 0.55, 0.6}, 2, 0.0, true).first, 4);
  // The first evaluation never counts (no best yet), whatever the threshold.
  EXPECT_EQ(run({1.0}, 1, 100.0, false).first, 0);
  EXPECT_EQ(run({1.0, 0.5}, 1, 100.0, false).first, 2);
}

TEST(EarlyStopping, BestMetricStartsAtInfinityAndNaNNeverWins) {
  std::optional<double> best;
  EXPECT_FALSE(update_best_metric(best, std::nan(""), false));
  EXPECT_EQ(best, std::optional<double>(std::numeric_limits<double>::infinity()));  // what HF's state then holds
  EXPECT_TRUE(update_best_metric(best, 2.0, false));
  EXPECT_FALSE(update_best_metric(best, 2.0, false));  // strictly better only
  EXPECT_TRUE(update_best_metric(best, 1.5, false));
  std::optional<double> up;
  EXPECT_TRUE(update_best_metric(up, -7.0, true));
  EXPECT_FALSE(update_best_metric(up, -8.0, true));
  EXPECT_EQ(up, std::optional<double>(-7.0));
}

data::Batch batch_of(int64_t B, int64_t T, std::vector<int32_t> doc_ids) {
  data::Batch b;
  b.B = B, b.T = T, b.doc_ids = std::move(doc_ids);
  return b;
}

TEST(Neftune, SequenceLengthIsTheBatchTOrTheLongestSample) {
  // Padded: T, whatever the rows hold (transformers' hook: output.size(1)).
  EXPECT_EQ(neftune_sequence_length(batch_of(2, 5, {0, 0, 0, -1, -1, 0, 0, 0, 0, 0}), false), 5);
  EXPECT_EQ(neftune_sequence_length(batch_of(1, 6, {0, 0, 1, 1, 1, 2}), false), 6);  // a packed row: its length
  // Padding-free: one row of several samples end to end = the longest sample (the T these samples have padded).
  EXPECT_EQ(neftune_sequence_length(batch_of(1, 9, {0, 0, 0, 1, 1, 1, 1, 2, 2}), true), 4);
  EXPECT_EQ(neftune_sequence_length(batch_of(1, 3, {0, 0, 0}), true), 3);
  EXPECT_EQ(neftune_sequence_length(batch_of(2, 4, {0, 0, 1, -1, 0, 0, 0, 0}), true), 4);
}

}  // namespace
}  // namespace sft::train
