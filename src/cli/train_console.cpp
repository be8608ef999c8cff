#include "cli/train_console.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sft::cli {

namespace {

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = std::lround(s);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  return buf;
}

std::string with_commas(int64_t v) {  // Python's f"{v:,d}"
  std::string d = std::to_string(v), out;
  for (size_t i = 0; i < d.size(); ++i) {
    if (i > 0 && (d.size() - i) % 3 == 0 && d[i - 1] != '-') out += ',';
    out += d[i];
  }
  return out;
}

}  // namespace

// On a terminal a live line repainted in place after every step; otherwise (CI, logs, pipes) a plain line every ~5% of
// the steps or 60 s, whichever comes first. --disable_tqdm: neither.
ConsoleObserver::ConsoleObserver(bool disable_progress)
    : tty_(isatty(STDOUT_FILENO) == 1), progress_(!disable_progress) {}

void ConsoleObserver::on_begin(const train::TrainPlan& p) {
  std::printf("training: %lld optimizer steps (%lld warmup), %lld micro-batches per epoch, %lld parameters\n",
              static_cast<long long>(p.total_steps), static_cast<long long>(p.warmup_steps),
              static_cast<long long>(p.batches_per_epoch), static_cast<long long>(p.num_parameters));
  if (p.lora)  // peft's print_trainable_parameters line
    std::printf("trainable params: %s || all params: %s || trainable%%: %.4f\n",
                with_commas(p.num_parameters).c_str(), with_commas(p.all_parameters).c_str(),
                100.0 * static_cast<double>(p.num_parameters) / static_cast<double>(p.all_parameters));
  if (p.start_step > 0) std::printf("resuming at step %lld\n", static_cast<long long>(p.start_step));
  std::printf("%-8s%-15s%-15s%-11s%-10s%s\n", "Step", "Training Loss", "Learning Rate", "Grad Norm", "Tokens/s",
              "Model GFLOP/s");
  std::fflush(stdout);
}

void ConsoleObserver::on_progress(const train::StepProgress& p) {
  if (!progress_) return;
  const double done = static_cast<double>(p.step - p.start_step), left = static_cast<double>(p.total - p.step);
  const double eta = done > 0 ? p.elapsed_s / done * left : NAN;
  const double tps = p.elapsed_s > 0 ? static_cast<double>(p.tokens) / p.elapsed_s : 0;
  const int pct = static_cast<int>(100.0 * static_cast<double>(p.step) / static_cast<double>(std::max<int64_t>(1, p.total)));
  if (tty_) {
    const int width = 24, fill = static_cast<int>(width * static_cast<double>(p.step) / static_cast<double>(p.total));
    std::string bar(static_cast<size_t>(std::clamp(fill, 0, width)), '#');
    bar.resize(width, '.');
    std::printf("\r\033[K[%s] %lld/%lld %3d%% | %s<%s | %.0f tok/s | loss %.4f | epoch %.2f", bar.c_str(),
                static_cast<long long>(p.step), static_cast<long long>(p.total), pct,
                format_duration(p.elapsed_s).c_str(), format_duration(eta).c_str(), tps, p.loss, p.epoch);
    std::fflush(stdout);
    bar_shown_ = true;
    return;
  }
  const int64_t every = std::max<int64_t>(1, p.total / 20);
  const bool due = p.step == p.total || p.step % every == 0 || p.elapsed_s - last_plain_s_ >= 60.0;
  if (!due) return;
  last_plain_s_ = p.elapsed_s;
  std::printf("progress: step %lld/%lld (%d%%) elapsed %s ETA %s %.0f tokens/s loss %.4f epoch %.2f\n",
              static_cast<long long>(p.step), static_cast<long long>(p.total), pct,
              format_duration(p.elapsed_s).c_str(), format_duration(eta).c_str(), tps, p.loss, p.epoch);
  std::fflush(stdout);
}

void ConsoleObserver::on_log(const train::LogRow& r) {
  clear_bar();
  std::printf("%-8lld%-15.4f%-15.3e%-11.4f%-10.0f%.1f\n", static_cast<long long>(r.step), r.loss, r.learning_rate,
              r.grad_norm, r.tokens_per_second, r.model_flops_per_second / 1e9);
  std::fflush(stdout);
}

void ConsoleObserver::on_eval(const train::LogRow& r) {
  clear_bar();
  std::printf("eval    step %lld: eval_loss %.4f\n", static_cast<long long>(r.step), *r.eval_loss);
  std::fflush(stdout);
}

void ConsoleObserver::on_checkpoint(const std::filesystem::path& dir) {
  clear_bar();
  std::printf("saved %s\n", dir.string().c_str());
  std::fflush(stdout);
}

void ConsoleObserver::on_note(const std::string& s) {
  clear_bar();
  std::printf("%s\n", s.c_str());
  std::fflush(stdout);
}

void ConsoleObserver::clear_bar() {
  if (bar_shown_) std::printf("\r\033[K");
  bar_shown_ = false;
}

void print_summary(const train::TrainSummary& s) {
  char loss[64];
  if (std::isfinite(s.final_loss)) std::snprintf(loss, sizeof loss, "%.4f", s.final_loss);
  else std::snprintf(loss, sizeof loss, "n/a (no step was applied)");
  std::printf("done: %lld steps in %s, final loss %s; model saved to %s (loss curve: loss_curve.svg)\n",
              static_cast<long long>(s.steps), format_duration(s.seconds).c_str(), loss, s.output_dir.string().c_str());
  if (s.world_size > 1) {
    const double per_step = s.steps > 0 ? 1e3 / static_cast<double>(s.steps) : 0.0;  // s -> ms per optimizer step
    std::printf("data parallel: rank 0 spent %.2f s in collectives (%.1f ms per optimizer step) of %.1f s; per step: "
                "gradient exchange %.1f ms (%.1f%% of the step), longest wait for the slowest rank %.1f ms; "
                "%.1f%% of the positions computed were padding\n",
                s.comm_seconds, s.comm_seconds * per_step, s.seconds, s.exchange_seconds * per_step,
                s.steps_seconds > 0 ? 100.0 * s.exchange_seconds / s.steps_seconds : 0.0, s.max_wait_seconds * per_step,
                s.padded_positions > 0 ? 100.0 * (1.0 - static_cast<double>(s.tokens) / static_cast<double>(s.padded_positions)) : 0.0);
  } else if (s.padded_positions > 0) {  // micro-batches are right-padded to their longest row
    std::printf("batches: %.1f%% of the positions computed were padding\n",
                100.0 * (1.0 - static_cast<double>(s.tokens) / static_cast<double>(s.padded_positions)));
  }
}

}  // namespace sft::cli
