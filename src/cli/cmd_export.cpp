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
  std::printf("%s\n", model::describe_gguf_export(r, outtype).c_str());
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

}  // namespace sft::cli
