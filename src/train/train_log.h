// Training log: the per-window loss accumulator, trainer_log.jsonl rows, and the loss-curve SVG (drawn by the report
// toolkit, report/loss_curve.h).
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace sft::train {

// One logged row. loss = mean token cross-entropy over the logging window: the sum of every target token's loss of
// every micro-batch since the previous row, divided by the number of those target tokens (token-weighted; HF instead
// averages the per-step means, which differs only when steps have different target counts).
struct LogRow {
  int64_t step = 0;
  double epoch = 0;  // fractional epoch at this step
  double loss = 0;
  double learning_rate = 0;  // lr for the NEXT step, as HF logs (scheduler value after this step)
  double grad_norm = 0;      // before clipping, of the last step of the window
  double tokens_per_second = 0;  // non-padding input tokens of the window / wall seconds of the window
  int64_t tokens = 0;            // non-padding input tokens of the window
  double model_flops_per_second = 0;  // model FLOPs of the window (6N per token + attention) / wall seconds
  std::optional<double> eval_loss;  // set on evaluation rows (loss fields then unused)
};

// Accumulates loss sums until the next logging step; its state is saved in checkpoints so a resumed run logs the
// same numbers as an uninterrupted one.
struct LogWindow {
  double loss_sum = 0;
  int64_t targets = 0;
  int64_t tokens = 0;
  int64_t steps = 0;
  double model_flops = 0;  // 6 * parameters * tokens + attention (trainer.cpp model_flops)
  void reset() { *this = LogWindow{}; }
};

std::string log_row_json(const LogRow& r);          // one JSON object (no newline), HF log_history keys
LogRow log_row_from_json(const std::string& json);  // inverse (for resume)
void append_line(const std::filesystem::path& file, const std::string& line);  // append + flush

// The loss curve of these rows (report/loss_curve.h: training loss, and eval loss when present, over steps).
std::string loss_curve_svg(const std::vector<LogRow>& rows, const std::string& title);

}  // namespace sft::train
