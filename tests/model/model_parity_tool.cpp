// Driver for tests/model/test_model_parity.py: loads an HF folder and a batch (JSON), runs the model and dumps
// everything the Python side compares against transformers.
// usage: model_parity_tool <model_dir> <batch.json> <out_dir> [f32|bf16] [cpu|reference] [full|forward]
// (forward: only logits.bin and loss.json, from forward_loss — for large real-weight models)
// batch.json: {"B", "T", "input_ids", "position_ids", "doc_ids", "labels", optional "session_split": k}
// out_dir gets: logits.bin (fp32 [B*T, V]), loss.json ({"sum", "n_targets"}), grads.safetensors (fp32, HF names,
// gradient of sum-loss / n_targets), logprobs.bin (fp32 [B*T]), greedy.bin (u8 [B*T]) and, when session_split is
// given, session_logits.bin: fp32 [len0, V] for row 0's document fed to a KV session as [0,k) then [k,len0).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "model/model.h"
#include "util/file_util.h"

using namespace sft;

static void write_bin(const std::filesystem::path& p, const void* data, size_t bytes) {
  write_file_atomic(p, std::string_view(static_cast<const char*>(data), bytes));
}

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: model_parity_tool <model_dir> <batch.json> <out_dir> [f32|bf16] [cpu|reference]\n";
    return 2;
  }
  try {
    const std::filesystem::path model_dir = argv[1], out = argv[3];
    const std::string prec = argc > 4 ? argv[4] : "f32", be_name = argc > 5 ? argv[5] : "cpu";
    const bool forward_only = argc > 6 && std::string(argv[6]) == "forward";
    auto be = be_name == "reference" ? backend::make_cpu_reference_backend() : backend::make_cpu_backend();
    auto m = model::Model::load(model_dir, *be, prec == "bf16" ? model::Precision::BF16 : model::Precision::F32);
    const auto j = nlohmann::json::parse(read_file(argv[2]));
    model::Batch b;
    b.B = j.at("B");
    b.T = j.at("T");
    b.input_ids = j.at("input_ids").get<std::vector<int32_t>>();
    b.position_ids = j.at("position_ids").get<std::vector<int32_t>>();
    b.doc_ids = j.at("doc_ids").get<std::vector<int32_t>>();
    b.labels = j.at("labels").get<std::vector<int32_t>>();
    std::filesystem::create_directories(out);

    const std::vector<float> logits = m->logits(b);
    write_bin(out / "logits.bin", logits.data(), logits.size() * sizeof(float));

    if (forward_only) {
      const model::LossSum ls = m->forward_loss(b);
      write_file_atomic(out / "loss.json", nlohmann::json{{"sum", ls.sum}, {"n_targets", ls.n_targets}}.dump());
      return 0;
    }
    m->zero_grad();
    const int64_t n_targets = b.count_targets();
    const model::LossSum ls = m->forward_backward(b, n_targets > 0 ? 1.0f / static_cast<float>(n_targets) : 0.0f);
    write_file_atomic(out / "loss.json", nlohmann::json{{"sum", ls.sum}, {"n_targets", ls.n_targets},
                                                        {"count_targets", n_targets}}.dump());
    std::vector<std::vector<float>> host;
    std::vector<io::TensorToWrite> grads;
    for (const model::ParamRef& p : m->parameters()) {
      host.emplace_back(p.numel);
      be->download(host.back().data(), p.grad, p.numel * sizeof(float));
      grads.push_back({p.name, io::DType::F32, p.shape, host.back().data()});
    }
    io::write_safetensors(out / "grads.safetensors", grads);

    const model::LossSum eval = m->forward_loss(b);
    write_file_atomic(out / "eval_loss.json", nlohmann::json{{"sum", eval.sum}, {"n_targets", eval.n_targets}}.dump());

    std::vector<float> lp;
    std::vector<uint8_t> greedy;
    m->next_token_logprobs(b, lp, greedy);
    write_bin(out / "logprobs.bin", lp.data(), lp.size() * sizeof(float));
    write_bin(out / "greedy.bin", greedy.data(), greedy.size());

    if (j.contains("session_split")) {
      const int64_t k = j.at("session_split");
      std::vector<int32_t> doc0;
      for (int64_t t = 0; t < b.T && b.doc_ids[t] == b.doc_ids[0]; ++t) doc0.push_back(b.input_ids[t]);
      auto s = m->new_session(static_cast<int64_t>(doc0.size()) + 4);
      std::vector<float> all = s->append({doc0.begin(), doc0.begin() + k}, true);
      const std::vector<float> rest = s->append({doc0.begin() + k, doc0.end()}, true);
      all.insert(all.end(), rest.begin(), rest.end());
      // truncate + re-append must reproduce the last position's logits (cache rows overwritten in place)
      s->truncate(static_cast<int64_t>(doc0.size()) - 1);
      const std::vector<float> last = s->append({doc0.back()}, false);
      write_bin(out / "session_logits.bin", all.data(), all.size() * sizeof(float));
      write_bin(out / "session_last.bin", last.data(), last.size() * sizeof(float));
    }
  } catch (const std::exception& e) {
    std::cerr << "model_parity_tool: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
