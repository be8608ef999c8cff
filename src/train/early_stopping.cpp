#include "train/early_stopping.h"

#include <cmath>
#include <limits>

namespace sft::train {

bool update_best_metric(std::optional<double>& best, double value, bool greater_is_better) {
  if (!best) best = greater_is_better ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  if (!(greater_is_better ? value > *best : value < *best)) return false;  // NaN is never better (np.less / np.greater)
  best = value;
  return true;
}

bool EarlyStopping::on_evaluate(double value, std::optional<double> best_before) {
  const bool better = best_before && (greater_ ? value > *best_before : value < *best_before);
  if (!best_before || (better && std::fabs(value - *best_before) > threshold_)) counter_ = 0;
  else ++counter_;
  return counter_ >= patience_;
}

}  // namespace sft::train
