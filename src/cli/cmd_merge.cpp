// `sft merge --model BASE --adapter DIR --output_dir OUT [--torch_dtype bfloat16]`: the base model with a peft LoRA
// adapter merged into its weights (W += scaling * B A, as peft's merge_and_unload), written as an HF folder
// transformers loads. The adapter is checked against the base first; on any error nothing is written.
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli/commands.h"
#include "io/gguf.h"
#include "io/hf_config.h"
#include "model/family.h"
#include "model/lora.h"
#include "model/weight_check.h"
#include "util/error.h"

namespace sft::cli {

namespace {

struct MergeArgs {
  std::string model, adapter, output_dir, dtype;
  bool allow_nonfinite_weights = false;
};

void run_merge(const MergeArgs& a) {
  namespace fs = std::filesystem;
  SFT_CHECK(fs::is_directory(a.model) || io::is_gguf_file(a.model), "--model ", a.model,
            ": not a model folder or .gguf file");
  std::string dtype = a.dtype;
  if (dtype.empty() || dtype == "auto") {  // keep the base model's dtype (fp32 unless it is bf16)
    const io::ModelConfig cfg = model::load_config(fs::path(a.model) / "config.json");
    dtype = cfg.torch_dtype == "bfloat16" ? "bfloat16" : "float32";
  }
  SFT_CHECK(dtype == "float32" || dtype == "bfloat16", "--torch_dtype: expected float32, bfloat16 or auto, got '",
            a.dtype, "'");
  model::merge_adapter_folder(a.model, a.adapter, a.output_dir, dtype, a.allow_nonfinite_weights);
  std::printf("merged %s into %s -> %s (%s)\n", a.adapter.c_str(), a.model.c_str(), a.output_dir.c_str(),
              dtype.c_str());
}

}  // namespace

void register_merge(CLI::App& app) {
  auto a = std::make_shared<MergeArgs>();
  auto* sub = app.add_subcommand("merge", "Merge a peft LoRA adapter into its base model (an HF folder out)");
  sub->add_option("--model,--model_name_or_path", a->model, "Base HF model folder")->required();
  sub->add_option("--adapter", a->adapter, "peft adapter folder (adapter_config.json + adapter_model.safetensors)")
      ->required();
  sub->add_option("--output_dir", a->output_dir, "Merged model folder (new or empty)")->required();
  sub->add_option("--torch_dtype,--dtype", a->dtype, "float32, bfloat16 or auto (default: the base model's dtype)");
  sub->add_flag(model::kAllowNonfiniteFlag, a->allow_nonfinite_weights,
                "Merge and write weights holding NaN/inf anyway (for debugging; by default refused, naming the tensor)");
  sub->callback([a] { run_merge(*a); });
}

}  // namespace sft::cli
