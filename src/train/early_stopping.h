// The best metric and early stopping, as transformers 5 decides them at each evaluation:
//   1. EarlyStoppingCallback.on_evaluate compares the new value with the best metric SO FAR (state.best_metric before
//      this evaluation): the patience counter resets when there is no best yet, or when the value is better AND differs
//      from the best by more than the threshold; otherwise it counts up. Training stops once counter >= patience.
//   2. Trainer._determine_best_metric then updates the best: an unset best starts at -inf (greater is better) or +inf,
//      and a strictly better value replaces it (best_global_step = this step when checkpoints are saved).
// tests/train/test_early_stopping.py drives transformers' own classes with the same sequences and compares.
//
// Typical use (train/trainer.cpp, after each evaluation):
//   const bool stop = early.on_evaluate(eval_loss, state.best_metric);   // before the update, as HF
//   if (update_best_metric(state.best_metric, eval_loss, greater)) state.best_global_step = step;
#pragma once
#include <cstdint>
#include <optional>

namespace sft::train {

// _determine_best_metric: true when `value` is a new best (then best = value).
bool update_best_metric(std::optional<double>& best, double value, bool greater_is_better);

class EarlyStopping {
 public:
  EarlyStopping(int64_t patience, double threshold, bool greater_is_better)
      : patience_(patience), threshold_(threshold), greater_(greater_is_better) {}
  // One evaluation; best_before = the best metric before this evaluation. True: stop training now.
  bool on_evaluate(double value, std::optional<double> best_before);
  int64_t counter() const { return counter_; }  // evaluations in a row without improvement (saved in checkpoints)
  void set_counter(int64_t c) { counter_ = c; }
  int64_t patience() const { return patience_; }
  double threshold() const { return threshold_; }

 private:
  int64_t patience_;
  double threshold_;
  bool greater_;
  int64_t counter_ = 0;
};

}  // namespace sft::train
