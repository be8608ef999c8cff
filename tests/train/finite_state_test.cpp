// Non-finite training state (train/finite_guard.h, AdamW's state file checks, train/continue_check.h's LoRA notes):
// random finite values (never zeros) pass; a planted NaN / inf / negative second moment is found at its tensor and
// element; the cheap filter's false alarm (finite values whose squares overflow fp32) is no error; the opt-out loads
// and saves such state.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "parallel/communicator.h"
#include "train/adamw.h"
#include "train/continue_check.h"
#include "train/data_parallel.h"
#include "train/finite_guard.h"
#include "util/error.h"

namespace sft::train {
namespace {

namespace fs = std::filesystem;

io::ModelConfig tiny() {
  io::ModelConfig c;
  c.model_type = "qwen2";
  c.hidden_size = 24, c.intermediate_size = 40, c.num_hidden_layers = 2, c.num_attention_heads = 4;
  c.num_key_value_heads = 2, c.head_dim = 6, c.vocab_size = 53, c.max_position_embeddings = 64;
  c.rope_theta = 1000.0, c.rms_norm_eps = 1e-6, c.tie_word_embeddings = true, c.attention_bias = true;
  return c;
}

struct Tmp {
  fs::path dir = fs::temp_directory_path() / ("sft_finite_" + std::to_string(::getpid()));
  Tmp() { fs::create_directories(dir); }
  ~Tmp() { fs::remove_all(dir); }
};

// One value of a parameter, uploaded into backend memory.
void set_param(model::Model& m, size_t param, int64_t index, float v) {
  m.backend().upload(m.parameters()[param].value + index, &v, sizeof v);
}

bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(FiniteGuard, FindsAPlantedNonFiniteValueAtItsTensorAndElement) {
  auto be = backend::make_cpu_backend();
  auto m = model::Model::random(tiny(), 3, *be, model::Precision::F32);
  EXPECT_EQ(first_nonfinite_parameter(*be, m->parameters()), "");
  EXPECT_NO_THROW(check_parameters_before_save(*m, "checkpoint-4"));
  const auto params = m->parameters();
  std::mt19937 rng(11);
  const struct {
    float value;
    const char* name;
  } bad[] = {{std::numeric_limits<float>::quiet_NaN(), "NaN"},
             {std::numeric_limits<float>::infinity(), "inf"},
             {-std::numeric_limits<float>::infinity(), "-inf"}};
  for (const auto& b : bad) {
    auto fresh = model::Model::random(tiny(), 3, *be, model::Precision::F32);
    const size_t p = rng() % params.size();
    const int64_t at = static_cast<int64_t>(rng() % static_cast<uint32_t>(params[p].numel));
    set_param(*fresh, p, at, b.value);
    const std::string found = first_nonfinite_parameter(*be, fresh->parameters());
    EXPECT_EQ(found, "tensor \"" + params[p].name + "\" holds " + b.name + " at element " + std::to_string(at) +
                         " of " + io::shape_str(params[p].shape));
    const std::string e = error_of([&] { check_parameters_before_save(*fresh, "out/checkpoint-4"); });
    EXPECT_TRUE(contains(e, "out/checkpoint-4: " + found)) << e;
    EXPECT_TRUE(contains(e, "--allow_nonfinite_weights")) << e;
  }
}

TEST(FiniteGuard, HugeFiniteValuesAreNoErrorButRoundToInfInBf16) {
  auto be = backend::make_cpu_backend();
  auto m = model::Model::random(tiny(), 3, *be, model::Precision::F32);
  // 3.4e38 squared overflows the filter's fp32 block sums (a false alarm the exact scan must clear); it is finite in
  // fp32 but rounds to inf in bfloat16 (bf16's largest value is 3.3895e38).
  const float huge = 3.4e38f;
  ASSERT_TRUE(std::isfinite(huge));
  set_param(*m, 0, 5, huge);
  EXPECT_FALSE(std::isfinite(be->sum_squares(m->parameters()[0].value, m->parameters()[0].numel)));
  EXPECT_EQ(first_nonfinite_parameter(*be, m->parameters()), "");
  EXPECT_NO_THROW(check_parameters_before_save(*m, "final", false));
  const std::string e = error_of([&] { check_parameters_before_save(*m, "final", true); });
  EXPECT_TRUE(contains(e, "tensor \"" + m->parameters()[0].name + "\" holds 3.4e+38")) << e;
  EXPECT_TRUE(contains(e, "at element 5 of")) << e;
  EXPECT_TRUE(contains(e, "rounds to inf in bfloat16")) << e;
  set_param(*m, 0, 5, 3.0e38f);  // below the rounding threshold: bf16 holds it
  EXPECT_NO_THROW(check_parameters_before_save(*m, "final", true));
}

TEST(FiniteGuard, UpdateCheckNamesTheStepAndStopsEvenWhenSkippingIsOn) {
  auto be = backend::make_cpu_backend();
  auto m = model::Model::random(tiny(), 3, *be, model::Precision::F32);
  auto comm = parallel::make_single_process_communicator();
  DataParallelAdamW opt(*comm, *be, m->parameters(), AdamWHyper{}, DataParallelOptions{});
  EXPECT_NO_THROW(check_update_finite(opt, *m, 7, 1e-3));
  set_param(*m, 2, 1, std::numeric_limits<float>::quiet_NaN());
  const std::string e = error_of([&] { check_update_finite(opt, *m, 7, 1e-3); });
  EXPECT_TRUE(contains(e, "optimizer step 7: after the update tensor \"" + m->parameters()[2].name + "\" holds NaN"))
      << e;
  EXPECT_TRUE(contains(e, "--skip_nonfinite_steps cannot skip")) << e;
}

// An optimizer state file written by AdamW, then one value replaced.
void write_state_with(const fs::path& file, model::Model& m, const std::string& tensor, float value) {
  std::vector<std::vector<float>> data;
  std::vector<io::TensorToWrite> t;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(0.01f, 1.0f);
  for (const auto& p : m.parameters())
    for (const char* kind : {"exp_avg.", "exp_avg_sq."}) {
      data.emplace_back(static_cast<size_t>(p.numel));
      for (float& x : data.back()) x = u(rng);
      if (kind + p.name == tensor) data.back()[3] = value;
      t.push_back({kind + p.name, io::DType::F32, p.shape, data.back().data()});
    }
  io::write_safetensors(file, std::move(t), {{"step", "2"}});
}

TEST(AdamWState, LoadRefusesNonFiniteAndNegativeSecondMomentsUnlessAllowed) {
  Tmp tmp;
  auto be = backend::make_cpu_backend();
  auto m = model::Model::random(tiny(), 3, *be, model::Precision::F32);
  const std::string p1 = m->parameters()[1].name;
  const fs::path f = tmp.dir / "optimizer.safetensors";
  {
    write_state_with(f, *m, "", 0);
    AdamW opt(*be, m->parameters(), AdamWHyper{});
    EXPECT_NO_THROW(opt.load_state(f));
    EXPECT_EQ(opt.steps_done(), 2);
  }
  const struct {
    std::string tensor;
    float value;
    const char* says;
  } bad[] = {{"exp_avg." + p1, std::numeric_limits<float>::quiet_NaN(), "holds NaN at element 3"},
             {"exp_avg_sq." + p1, std::numeric_limits<float>::infinity(), "holds inf at element 3"},
             {"exp_avg_sq." + p1, -0.5f, "is never negative"}};
  for (const auto& b : bad) {
    SCOPED_TRACE(b.tensor);
    write_state_with(f, *m, b.tensor, b.value);
    AdamW opt(*be, m->parameters(), AdamWHyper{});
    const std::string e = error_of([&] { opt.load_state(f); });
    EXPECT_TRUE(contains(e, f.string() + ": tensor \"" + b.tensor + "\"")) << e;
    EXPECT_TRUE(contains(e, b.says)) << e;
    EXPECT_TRUE(contains(e, "--allow_nonfinite_weights")) << e;
    AdamW allowed(*be, m->parameters(), AdamWHyper{});
    allowed.set_allow_nonfinite(true);
    EXPECT_NO_THROW(allowed.load_state(f));
  }
  // -0.0 is a valid second moment (a zero gradient's square, negated sign bit aside).
  write_state_with(f, *m, "exp_avg_sq." + p1, -0.0f);
  AdamW opt(*be, m->parameters(), AdamWHyper{});
  EXPECT_NO_THROW(opt.load_state(f));
}

TEST(AdamWState, SaveRefusesANonFiniteMomentSoThatEveryCheckpointResumes) {
  Tmp tmp;
  auto be = backend::make_cpu_backend();
  auto m = model::Model::random(tiny(), 3, *be, model::Precision::F32);
  const std::string name = "exp_avg_sq." + m->parameters()[0].name;
  const fs::path in = tmp.dir / "in.safetensors", out = tmp.dir / "out.safetensors";
  write_state_with(in, *m, name, std::numeric_limits<float>::infinity());
  AdamW opt(*be, m->parameters(), AdamWHyper{});
  opt.set_allow_nonfinite(true);
  opt.load_state(in);
  opt.set_allow_nonfinite(false);
  const std::string e = error_of([&] { opt.save_state(out); });
  EXPECT_TRUE(contains(e, "optimizer step 2: the AdamW state \"" + name + "\" holds inf at element 3")) << e;
  EXPECT_FALSE(fs::exists(out));
  opt.set_allow_nonfinite(true);
  EXPECT_NO_THROW(opt.save_state(out));
}

TEST(AdamWState, StepMetadataIsParsedStrictly) {
  Tmp tmp;
  auto be = backend::make_cpu_backend();
  auto m = model::Model::random(tiny(), 3, *be, model::Precision::F32);
  for (const char* step : {"abc", "12abc", "-1", "99999999999999999999", ""}) {
    SCOPED_TRACE(step);
    const fs::path f = tmp.dir / "s.safetensors";
    const float x = 1.0f;
    io::write_safetensors(f, {{"x", io::DType::F32, {1}, &x}}, {{"step", step}});
    const std::string e = error_of([&] { optimizer_state_step(io::SafetensorsFile(f)); });
    EXPECT_TRUE(contains(e, "\"step\" must be a non-negative integer")) << e;
  }
}

TEST(AdamWState, ParameterSumOfSquaresIsOneReadPass) {
  auto be = backend::make_cpu_backend();
  auto m = model::Model::random(tiny(), 3, *be, model::Precision::F32);
  AdamW opt(*be, m->parameters(), AdamWHyper{});
  double expect = 0;
  for (const auto& p : m->parameters()) {
    const float* h = static_cast<const float*>(be->host_view(p.value));
    for (int64_t i = 0; i < p.numel; ++i) expect += static_cast<double>(h[i]) * h[i];
  }
  // fp32 partial sums inside blocks of 4096: relative error ~ 4096 x 2^-24 at worst.
  EXPECT_NEAR(opt.parameter_sum_squares(), expect, expect * 3e-4);
  set_param(*m, 0, 0, std::numeric_limits<float>::quiet_NaN());
  EXPECT_TRUE(std::isnan(opt.parameter_sum_squares()));
}

// ---- LoRA settings an adapter's config overrides ----

io::LoraAdapterConfig adapter(int64_t r, double alpha, std::vector<std::string> targets) {
  io::LoraAdapterConfig a;
  a.r = r, a.lora_alpha = alpha, a.lora_dropout = 0.05, a.target_modules = std::move(targets);
  return a;
}

TEST(AdapterSettingsNote, SilentWhenTheFlagsSelectWhatTheAdapterHolds) {
  TrainConfig cfg;
  cfg.lora_r = 8, cfg.lora_alpha = 16;  // default targets: q_proj,v_proj
  std::vector<std::string> expanded;  // as sft saves an all-linear adapter: full module names
  for (int l = 0; l < 2; ++l)
    for (const char* m : {"q_proj", "v_proj"})
      expanded.push_back("model.layers." + std::to_string(l) + ".self_attn." + m);
  EXPECT_EQ(adapter_settings_note(cfg, adapter(8, 16, expanded), "ad", tiny()), "");
  EXPECT_EQ(adapter_settings_note(cfg, adapter(8, 16, {"v_proj", "q_proj"}), "ad", tiny()), "");
}

TEST(AdapterSettingsNote, NamesEveryDifferingFlagAndTheValueUsed) {
  TrainConfig cfg;
  cfg.lora_r = 4;
  cfg.lora_target_modules = "all-linear";
  cfg.use_rslora = true;
  const std::string n = adapter_settings_note(cfg, adapter(8, 16, {"q_proj", "k_proj"}), "ad", tiny());
  EXPECT_TRUE(contains(n, "note: continuing the adapter ad: its adapter_config.json sets the LoRA settings")) << n;
  EXPECT_TRUE(contains(n, "--lora_r 4 -> r 8")) << n;
  EXPECT_TRUE(contains(n, "--lora_alpha 32 (the default) -> 16")) << n;
  EXPECT_TRUE(contains(n, "--use_rslora True -> False")) << n;
  EXPECT_TRUE(contains(n, "--lora_target_modules all-linear -> 4 linear layers (k_proj, q_proj)")) << n;
  EXPECT_FALSE(contains(n, "--lora_dropout")) << n;  // equal: not named
  // A flag naming no layer of this model is not used, so it is a difference, not an error.
  cfg.lora_target_modules = "no_such_proj";
  EXPECT_TRUE(contains(adapter_settings_note(cfg, adapter(4, 32, {"q_proj"}), "ad", tiny()),
                       "--lora_target_modules no_such_proj -> 2 linear layers (q_proj)"));
}

TEST(ZeroAlphaWarning, OnlyForAlphaZero) {
  EXPECT_EQ(zero_alpha_warning(adapter(8, 16, {"q_proj"}), "--lora_alpha 16"), "");
  EXPECT_EQ(zero_alpha_warning(adapter(8, -2, {"q_proj"}), "--lora_alpha -2"), "");  // peft scales by -2/8: it trains
  const std::string w = zero_alpha_warning(adapter(8, 0, {"q_proj"}), "--lora_alpha 0");
  EXPECT_TRUE(contains(w, "warning: --lora_alpha 0 scales the LoRA term by 0")) << w;
  EXPECT_TRUE(contains(w, "nothing trains")) << w;
  io::LoraAdapterConfig saved = adapter(8, 0, {"q_proj"});
  saved.modules_to_save = {"embed_tokens"};
  EXPECT_TRUE(contains(zero_alpha_warning(saved, "a.json: lora_alpha 0"), "only the modules_to_save tensors train"));
}

}  // namespace
}  // namespace sft::train
