// model.safetensors.index.json of a sharded folder: the input is the index text; the folder also holds one valid
// shard (two tensors) so that weight_map entries naming it resolve.
#include "fuzz_util.h"
#include "io/safetensors.h"

#include <vector>

namespace {
const std::filesystem::path& folder() {
  static const std::filesystem::path dir = [] {
    auto d = sft::fuzz::scratch_dir() / "sharded";
    std::filesystem::create_directories(d);
    std::vector<float> a(6, 1.5f), b(2, -2.0f);
    sft::io::write_safetensors(d / "model-00001-of-00001.safetensors",
                               {{"model.norm.weight", sft::io::DType::F32, {2}, b.data()},
                                {"model.embed_tokens.weight", sft::io::DType::F32, {3, 2}, a.data()}});
    return d;
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& dir = folder();
  sft::fuzz::write_bytes(dir / "model.safetensors.index.json",
                         std::string_view(reinterpret_cast<const char*>(data), size));
  sft::fuzz::expect_clean([&] {
    auto ws = sft::io::WeightStore::open(dir);
    for (const auto& name : ws.names()) {
      const auto& info = ws.info(name);
      std::vector<float> out(static_cast<size_t>(info.numel()));
      ws.read_f32(name, out.data(), info.shape);
    }
  });
  return 0;
}
