#include "train/train_log.h"

#include <fstream>

#include <nlohmann/json.hpp>

#include "report/loss_curve.h"
#include "util/error.h"
#include "util/json_number.h"

namespace sft::train {

std::string log_row_json(const LogRow& r) {
  nlohmann::ordered_json j;
  j["step"] = r.step;
  j["epoch"] = r.epoch;
  if (r.eval_loss) {
    j["eval_loss"] = *r.eval_loss;
  } else {
    j["loss"] = r.loss;
    j["learning_rate"] = r.learning_rate;
    j["grad_norm"] = r.grad_norm;
    j["tokens_per_second"] = r.tokens_per_second;
    j["model_flops_per_second"] = r.model_flops_per_second;
    j["num_tokens"] = r.tokens;
  }
  return j.dump();
}

LogRow log_row_from_json(const std::string& text) {
  auto j = nlohmann::json::parse(text);
  LogRow r;
  r.step = json_integer(j.at("step"), "log_history: step", 0);  // a float there would be UB in get<int64_t>()
  r.epoch = j.value("epoch", 0.0);
  if (j.contains("eval_loss")) {
    r.eval_loss = j["eval_loss"].get<double>();
  } else {
    r.loss = j.value("loss", 0.0);
    r.learning_rate = j.value("learning_rate", 0.0);
    r.grad_norm = j.value("grad_norm", 0.0);
    r.tokens_per_second = j.value("tokens_per_second", 0.0);
    r.model_flops_per_second = j.value("model_flops_per_second", 0.0);
    r.tokens = j.contains("num_tokens") ? json_integer(j.at("num_tokens"), "log_history: num_tokens", 0) : 0;
  }
  return r;
}

void append_line(const std::filesystem::path& file, const std::string& line) {
  std::ofstream out(file, std::ios::app);
  SFT_CHECK(out.good(), file.string(), ": cannot open for appending");
  out << line << '\n';
  out.flush();
  SFT_CHECK(out.good(), file.string(), ": write failed");
}

std::string loss_curve_svg(const std::vector<LogRow>& rows, const std::string& title) {
  std::vector<report::LossPoint> points;
  points.reserve(rows.size());
  for (const auto& r : rows) {
    report::LossPoint p;
    p.step = r.step;
    if (r.eval_loss) p.eval_loss = r.eval_loss;
    else p.loss = r.loss;
    points.push_back(p);
  }
  return report::loss_curve_svg(points, title);
}

}  // namespace sft::train
