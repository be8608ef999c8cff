// What `sft train` prints: the setup notes, the seed-style loss table (plus lr, grad norm, tokens/s, model GFLOP/s), a
// progress display (a live line on a terminal, periodic lines otherwise, none with --disable_tqdm) and the summary.
#pragma once
#include <filesystem>
#include <string>

#include "train/trainer.h"

namespace sft::cli {

class ConsoleObserver final : public train::TrainObserver {
 public:
  explicit ConsoleObserver(bool disable_progress);
  void on_begin(const train::TrainPlan& p) override;
  void on_progress(const train::StepProgress& p) override;
  void on_log(const train::LogRow& r) override;
  void on_eval(const train::LogRow& r) override;
  void on_checkpoint(const std::filesystem::path& dir) override;
  void on_note(const std::string& s) override;
  void clear_bar();  // erases the live progress line before anything else is printed

 private:
  bool tty_, progress_;
  bool bar_shown_ = false;
  double last_plain_s_ = 0;
};

// "done: N steps in ..., final loss ...; model saved to ..." and, data parallel, the communication figures.
void print_summary(const train::TrainSummary& s);

}  // namespace sft::cli
