// Driver for tests/model/test_lora_parity.py: loads an HF folder with a peft adapter attached (Model::load with
// LoraOptions), runs one batch (JSON, as model_parity_tool) and dumps what the Python side compares against peft.
// usage: lora_parity_tool <model_dir> <adapter_dir> <batch.json> <out_dir> [f32|bf16]
// out_dir gets: logits.bin (fp32 [B*T, V]), loss.json ({"sum", "n_targets"}), grads.safetensors (fp32, peft names: the
// gradient of sum-loss / n_targets for every trainable tensor), trainable.json ({"trainable", "all"} as peft counts).
#include <iostream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "util/file_util.h"

using namespace sft;

int main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: lora_parity_tool <model_dir> <adapter_dir> <batch.json> <out_dir> [f32|bf16]\n";
    return 2;
  }
  try {
    const std::filesystem::path out = argv[4];
    const std::string prec = argc > 5 ? argv[5] : "f32";
    auto be = backend::make_cpu_backend();
    model::LoraOptions lo;
    lo.adapter_dir = argv[2];
    auto m = model::Model::load(argv[1], *be, prec == "bf16" ? model::Precision::BF16 : model::Precision::F32, &lo);
    const auto j = nlohmann::json::parse(read_file(argv[3]));
    model::Batch b;
    b.B = j.at("B");
    b.T = j.at("T");
    b.input_ids = j.at("input_ids").get<std::vector<int32_t>>();
    b.position_ids = j.at("position_ids").get<std::vector<int32_t>>();
    b.doc_ids = j.at("doc_ids").get<std::vector<int32_t>>();
    b.labels = j.at("labels").get<std::vector<int32_t>>();
    std::filesystem::create_directories(out);
    const std::vector<float> logits = m->logits(b);
    write_file_atomic(out / "logits.bin",
                      std::string_view(reinterpret_cast<const char*>(logits.data()), logits.size() * sizeof(float)));
    m->zero_grad();
    const int64_t n_targets = b.count_targets();
    const model::LossSum ls = m->forward_backward(b, 1.0f / static_cast<float>(n_targets));
    write_file_atomic(out / "loss.json", nlohmann::json{{"sum", ls.sum}, {"n_targets", ls.n_targets}}.dump());
    std::vector<std::vector<float>> host;
    std::vector<io::TensorToWrite> grads;
    int64_t trainable = 0;
    for (const model::ParamRef& p : m->parameters()) {
      host.emplace_back(p.numel);
      be->download(host.back().data(), p.grad, p.numel * sizeof(float));
      grads.push_back({p.name, io::DType::F32, p.shape, host.back().data()});
      trainable += p.numel;
    }
    io::write_safetensors(out / "grads.safetensors", grads);
    write_file_atomic(out / "trainable.json",
                      nlohmann::json{{"trainable", trainable}, {"all", m->num_all_parameters()}}.dump());
  } catch (const std::exception& e) {
    std::cerr << "lora_parity_tool: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
