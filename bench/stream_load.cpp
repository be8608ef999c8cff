// Peak memory of loading a model folder's frozen base (model::load_frozen, streamed from the safetensors mmap chunk
// by chunk) against the folder's size on disk, for a bf16-only base or a 4-bit (QLoRA) one; --baseline runs today's
// load path instead (Model::load with LoRA r 16 all-linear: the frozen base as fp32), for the ratio. Run each in its own process
// (peak RSS is per process): bench/stream_load.sh does that on a folder from bench/make_random_model.py.
// Prints one JSON line: stored bytes (the .safetensors files), loaded bytes (device buffers), peak RSS (VmHWM), RSS
// after loading, seconds, and peak RSS - stored bytes (the target: <= 1 GiB for a bf16 base).
// usage: stream_load --model DIR [--format bf16|nf4|fp4|f32] [--double_quant 1] [--source bf16|f32]
//                    [--chunk_elements N] [--baseline 1]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "model/family.h"
#include "model/frozen_weights.h"
#include "model/model.h"

namespace {

int64_t status_kib(const char* key) {  // VmHWM / VmRSS from /proc/self/status, in KiB
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::stoll(line.substr(std::string(key).size()));
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sft;
  std::string dir, format = "bf16", source = "bf16";
  bool dq = false, baseline = false;
  int64_t chunk = int64_t{1} << 22;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--model") dir = v;
    else if (k == "--format") format = v;
    else if (k == "--double_quant") dq = v == "1" || v == "True" || v == "true";
    else if (k == "--source") source = v;
    else if (k == "--chunk_elements") chunk = std::stoll(v);
    else if (k == "--baseline") baseline = v == "1";
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (dir.empty()) {
    std::fprintf(stderr, "usage: stream_load --model DIR [--format bf16|nf4|fp4|f32] [--double_quant 1] ...\n");
    return 2;
  }
  try {
    auto be = backend::make_cpu_backend();
    const io::WeightStore store = io::WeightStore::open(dir);
    int64_t stored = 0;
    for (const auto& p : store.files()) stored += static_cast<int64_t>(std::filesystem::file_size(p));
    const int64_t rss0 = status_kib("VmRSS:");
    const auto t0 = std::chrono::steady_clock::now();
    int64_t loaded = 0;
    std::unique_ptr<model::Model> m;
    std::vector<model::FrozenTensor> frozen;
    if (baseline) {
      model::LoraOptions lora;  // today's LoRA load path: fp32 frozen base, r 16 all-linear adapters
      lora.config.r = 16, lora.config.lora_alpha = 32;
      lora.config.target_modules = {"all-linear"}, lora.config.target_is_string = true;
      m = model::Model::load(dir, *be, model::Precision::F32, &lora);
      for (const auto& t : model::tensor_table(m->config())) loaded += 4 * t.numel();
    } else {
      model::FrozenStorage s;
      s.dtype = format == "f32" ? backend::DType::F32 : backend::DType::BF16;
      s.load_in_4bit = format == "nf4" || format == "fp4";
      if (s.load_in_4bit) s.quant_type = model::parse_quant_type(format, "--format");
      std::vector<model::FrozenSpec> specs;
      for (const model::TensorSpec& t : model::tensor_table(model::load_config(dir)))
        if (t.shape.size() == 2) specs.push_back({t.name, t.shape, model::frozen_format_for(t.role, s)});
      frozen = model::load_frozen(store, specs, *be, source == "bf16" ? backend::DType::BF16 : backend::DType::F32,
                                  dq, chunk);
      for (const auto& t : frozen) loaded += t.device_bytes();
    }
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int64_t hwm = status_kib("VmHWM:"), rss = status_kib("VmRSS:");
    const double mib = 1.0 / (1 << 20);
    std::printf("{\"mode\": \"%s\", \"format\": \"%s\", \"double_quant\": %s, \"stored_mib\": %.0f, "
                "\"loaded_mib\": %.0f, \"rss_before_mib\": %.0f, \"peak_rss_mib\": %.0f, \"rss_after_mib\": %.0f, "
                "\"peak_minus_stored_mib\": %.0f, \"seconds\": %.2f, \"read_gb_s\": %.2f}\n",
                baseline ? "baseline Model::load (LoRA r 16 all-linear: fp32 frozen base)" : "load_frozen (streamed)",
                baseline ? "f32" : format.c_str(), dq ? "true" : "false", stored * mib, loaded * mib, rss0 / 1024.0,
                hwm / 1024.0, rss / 1024.0, hwm / 1024.0 - stored * mib, sec, stored / sec * 1e-9);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "stream_load: %s\n", e.what());
    return 1;
  }
  return 0;
}
