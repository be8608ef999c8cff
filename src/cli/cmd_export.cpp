// `sft export --model DIR|F.gguf [--adapter DIR] --outfile F.gguf --outtype f32|f16|bf16|q8_0 [--overwrite]`: the model
// (a peft adapter merged in, as `sft merge` merges it) as one GGUF file for llama.cpp / ollama / LM Studio, with
// llama.cpp's converter's flag names. Also `sft train --save_gguf TYPE` (the two helpers at the end).
#include <cstdio>
#include <filesystem>
#include <string>

#include "cli/commands.h"
#include "io/gguf.h"
#include "io/peft_adapter.h"
#include "model/family.h"
#include "model/gguf_mapping.h"
#include "train/train_config.h"
#include "util/error.h"

namespace sft::cli {

namespace {

namespace fs = std::filesystem;

struct ExportArgs {
  std::string model, adapter, outfile, outtype = "f16";
  bool overwrite = false;
};

void print_result(const model::GgufExportResult& r, const std::string& outtype) {
  std::printf("wrote %s (%s, %s, %lld tensors, %.1f MB)\n", r.file.string().c_str(), r.architecture.c_str(),
              outtype.c_str(), static_cast<long long>(r.tensors), static_cast<double>(r.bytes) / 1e6);
  if (r.f16_fallbacks > 0)
    std::printf("note: %lld matrices have rows that are not a multiple of 32 and were written as f16 (as llama.cpp's "
                "converter does)\n", static_cast<long long>(r.f16_fallbacks));
}

void run_export(const ExportArgs& a) {
  const io::GgmlType type = model::parse_gguf_outtype(a.outtype, "--outtype");
  SFT_CHECK(fs::is_directory(a.model) || io::is_gguf_file(a.model), "--model ", a.model,
            ": not a model folder or GGUF file");
  SFT_CHECK(a.outfile.size() > 5 && a.outfile.substr(a.outfile.size() - 5) == ".gguf", "--outfile ", a.outfile,
            ": expected a path ending in .gguf");
  print_result(model::export_gguf(a.model, a.adapter, a.outfile, type, a.overwrite), a.outtype);
}

}  // namespace

void register_export(CLI::App& app) {
  auto a = std::make_shared<ExportArgs>();
  auto* sub = app.add_subcommand("export", "Write a model (HF folder or GGUF, optionally + a peft adapter) as GGUF "
                                           "for llama.cpp / ollama");
  sub->add_option("--model,--model_name_or_path", a->model, "HF model folder or .gguf file")->required();
  sub->add_option("--adapter", a->adapter, "peft adapter folder to merge in first (as sft merge)");
  sub->add_option("--outfile", a->outfile, "the .gguf file to write")->required();
  sub->add_option("--outtype", a->outtype, "f32, f16, bf16 or q8_0 (ggml's 8-bit blocks)")->capture_default_str();
  sub->add_flag("--overwrite", a->overwrite, "replace an existing --outfile");
  sub->callback([a] { run_export(*a); });
}

void check_save_gguf(const train::TrainConfig& cfg) {
  if (cfg.save_gguf.empty()) return;
  model::parse_gguf_outtype(cfg.save_gguf, "--save_gguf");
  const io::ModelConfig mc = model::load_config(fs::path(cfg.model_name_or_path) / "config.json");
  try {
    model::check_gguf_mapping(mc);  // a family without a GGUF mapping fails before training, not after
  } catch (const Error& e) {
    throw Error(std::string("--save_gguf: ") + e.what());
  }
}

void save_gguf_after_training(const train::TrainConfig& cfg, const fs::path& base_model, const fs::path& output_dir) {
  if (cfg.save_gguf.empty()) return;
  fs::path dir = fs::absolute(output_dir).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();
  const fs::path out = dir / (dir.filename().string() + "-" + cfg.save_gguf + ".gguf");
  const bool lora = io::is_adapter_dir(output_dir);  // LoRA: the base model with the trained adapter merged in
  std::printf("--save_gguf %s: exporting %s ...\n", cfg.save_gguf.c_str(), lora ? "the merged model" : "the model");
  std::fflush(stdout);
  print_result(model::export_gguf(lora ? base_model : output_dir, lora ? output_dir : fs::path(), out,
                                  model::parse_gguf_outtype(cfg.save_gguf, "--save_gguf"), /*overwrite=*/true),
               cfg.save_gguf);
}

}  // namespace sft::cli
