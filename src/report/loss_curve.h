// The loss curve of a training run: trainer_log.jsonl (as `sft train` writes it) read back into points, and the one
// SVG line chart of them — written by `sft train` as output_dir/loss_curve.svg and embedded by `sft eval --compare`
// in its report. Layer `report` (depends on util only).
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sft::report {

// One logged row: a training row has loss, an evaluation row eval_loss (a row may carry both).
struct LossPoint {
  int64_t step = 0;
  std::optional<double> loss, eval_loss;
};

// trainer_log.jsonl: one JSON object per line with an integer "step" and numeric "loss" / "eval_loss" (other keys
// ignored, blank lines skipped). Absent file: no points. The file is hostile input (it comes with a model folder):
// a regular file of at most 256 MiB; a bad line is a one-line error naming the file and the line.
std::vector<LossPoint> read_trainer_log(const std::filesystem::path& file);

// A self-contained SVG (no scripts, nothing fetched): training loss as a line, eval loss as a second line, 5 ticks
// per axis, the title on top, a legend. Non-finite values are left out; no point at all still gives a valid (empty)
// chart.
std::string loss_curve_svg(const std::vector<LossPoint>& points, const std::string& title);

}  // namespace sft::report
