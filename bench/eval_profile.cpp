// Where `sft eval` spends its time: the same tasks, tokenisation and Scorer as the CLI, with the CPU backend wrapped
// in backend::TimingBackend. Prints one JSON object: model load, task building, tokenisation, scoring wall time, the
// per-category kernel time (gemm, attention, norms, memory, ...), host time outside kernels, the gemm GFLOP/s, the
// tokens forwarded, and the compute lower bound = model FLOPs of those tokens (2 * non-embedding parameters per token
// + attention + LM head rows) at --peak_gflops (bench/gemm_peak's large fp32 matmul on this machine).
// usage: eval_profile --model DIR --tasks LIST [--data_dir D] [--limit N] [--num_fewshot K] [--batch_size auto|N]
//                     [--peak_gflops G] [--arc_split dev|test]
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/timing_backend.h"
#include "eval/evaluator.h"
#include "eval/scorer.h"
#include "eval/tasks.h"
#include "model/lora.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

using namespace sft;

int main(int argc, char** argv) {
  std::string model_dir, tasks_arg, data_dir = "data", arc_split = "dev";
  int64_t limit = -1, batch = -1;
  int shots = 0;
  double peak = 125.0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") model_dir = v;
    else if (k == "--tasks") tasks_arg = v;
    else if (k == "--data_dir") data_dir = v;
    else if (k == "--limit") limit = std::stoll(v);
    else if (k == "--num_fewshot") shots = std::stoi(v);
    else if (k == "--batch_size") batch = v == "auto" ? -1 : std::stoll(v);
    else if (k == "--peak_gflops") peak = std::stod(v);
    else if (k == "--arc_split") arc_split = v;
    else {
      std::fprintf(stderr, "eval_profile: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  using clock = std::chrono::steady_clock;
  auto since = [](clock::time_point t) { return std::chrono::duration<double>(clock::now() - t).count(); };
  auto t = clock::now();
  auto inner = backend::make_cpu_backend();
  auto tok = tok::Tokenizer::load(model_dir);
  const double tok_load_s = since(t);
  t = clock::now();
  auto probe = model::load_model(model_dir, "", *inner, model::Precision::F32);
  const io::ModelConfig cfg = probe->config();
  probe.reset();
  const double model_load_s = since(t);
  backend::TimingBackend timing(*inner, cfg.vocab_size);
  auto model = model::load_model(model_dir, "", timing, model::Precision::F32);

  t = clock::now();
  eval::TaskOptions to;
  to.data_dir = data_dir, to.num_fewshot = shots, to.limit = limit, to.arc_split = arc_split;
  std::vector<eval::Task> tasks;
  for (const auto& name : eval::expand_task_names(tasks_arg)) tasks.push_back(eval::build_task(name, to));
  const double build_s = since(t);

  // tokenisation alone (the evaluator encodes again inside score_docs; measured here separately)
  eval::Scorer scorer(*model, tok, eval::lm_eval_max_length(cfg));
  t = clock::now();
  int64_t n_docs = 0;
  for (const auto& task : tasks)
    for (size_t d = 0; d < task.docs.size(); ++d, ++n_docs)
      for (const auto& c : task.docs[d].choices) scorer.encoder().encode_pair(task.contexts[d], " " + c);
  const double tokenize_s = since(t);

  timing.reset();
  eval::EvalOptions eo;
  if (batch > 0) eo.batch.max_docs = eo.batch.max_group_docs = batch;
  t = clock::now();
  const eval::EvalResults res = eval::evaluate(scorer, std::move(tasks), {}, eo);
  const double score_s = since(t);

  // model FLOPs of the tokens forwarded: 2 * (non-embedding linear params) per token; the LM head rows (only the
  // scored ones) and attention are small and left out of the bound (the per-kernel lines show them).
  const double H = cfg.hidden_size, I = cfg.intermediate_size, L = cfg.num_hidden_layers;
  const double d = cfg.head_dim > 0 ? cfg.head_dim : H / cfg.num_attention_heads;
  const double QD = cfg.num_attention_heads * d, KD = cfg.num_key_value_heads * d;
  const double per_token = 2.0 * L * (H * QD * 2 + H * KD * 2 + 3 * H * I);
  const double tokens = static_cast<double>(res.stats.tokens_forwarded);
  using Cat = backend::TimingBackend::Cat;
  const double gemm_s = timing.seconds(Cat::Gemm) + timing.seconds(Cat::HeadGemm);
  const double lower_s = (tokens * per_token) / (peak * 1e9);
  std::printf("{\"docs\": %lld, \"tokens_forwarded\": %lld, \"tokens_requested\": %lld, \"tokenizer_load_s\": %.3f, "
              "\"model_load_s\": %.3f, \"build_tasks_s\": %.3f, \"tokenize_s\": %.3f, \"score_s\": %.3f, ",
              static_cast<long long>(n_docs), static_cast<long long>(res.stats.tokens_forwarded),
              static_cast<long long>(res.stats.tokens_requested), tok_load_s, model_load_s, build_s, tokenize_s,
              score_s);
  for (int c = 0; c < static_cast<int>(Cat::kCount); ++c)
    std::printf("\"%s_s\": %.3f, ", backend::TimingBackend::cat_name(static_cast<Cat>(c)),
                timing.seconds(static_cast<Cat>(c)));
  std::printf("\"host_outside_kernels_s\": %.3f, \"gemm_gflops\": %.1f, \"model_gflop\": %.1f, "
              "\"lower_bound_s_at_peak\": %.3f, \"peak_gflops\": %.1f}\n",
              score_s - timing.total_seconds(), timing.gemm_flop() / std::max(1e-9, gemm_s) / 1e9,
              (tokens * per_token) / 1e9, lower_s, peak);
  std::fprintf(stderr, "per kernel:\n");
  for (const auto& [k, e] : timing.per_kernel())
    std::fprintf(stderr, "  %-28s %8.3f s %8lld calls %8.1f GFLOP/s\n", k.c_str(), e.seconds,
                 static_cast<long long>(e.calls), e.flop > 0 ? e.flop / e.seconds / 1e9 : 0.0);
  return 0;
}
