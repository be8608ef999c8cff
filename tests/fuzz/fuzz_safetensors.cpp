// safetensors reader: the input is a whole .safetensors file (8-byte header length, JSON header, data).
#include "fuzz_util.h"
#include "io/safetensors.h"

#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = sft::fuzz::scratch_dir() / "model.safetensors";
  sft::fuzz::write_bytes(path, std::string_view(reinterpret_cast<const char*>(data), size));
  sft::fuzz::expect_clean([&] {
    sft::io::SafetensorsFile f(path);
    for (const auto& t : f.tensors()) {
      const int64_t n = t.numel();
      if (n > (1 << 16)) continue;
      std::vector<float> out(static_cast<size_t>(n));
      if (t.dtype == sft::io::DType::F32 || t.dtype == sft::io::DType::BF16 || t.dtype == sft::io::DType::F16)
        sft::io::convert_to_f32(t.dtype, f.data(t), n, out.data(), t.name);
    }
  });
  return 0;
}
