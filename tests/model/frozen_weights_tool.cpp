// Streams every 2-D tensor of a safetensors folder into a frozen form with model::load_frozen and writes what it
// stored back out, for tests/model/test_frozen_weights.py to compare with bitsandbytes / torch:
//   <name>.values        fp32, the stored values dequantised (4-bit: code x absmax in fp32)
//   <name>.values_bf16   fp32, the same rounded to bf16 (4-bit only: bitsandbytes' dequantisation into bfloat16)
//   and, 4-bit only, the bitsandbytes state dict entries of FrozenTensor::bnb_state (<name>, <name>.absmax, ...).
// usage: frozen_weights_tool <folder> <out.safetensors> <float32|bfloat16|nf4|fp4> <double_quant 0|1>
//                            <source dtype float32|bfloat16> [chunk_elements] [reference]
#include <iostream>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "io/safetensors.h"
#include "model/frozen_weights.h"

int main(int argc, char** argv) {
  if (argc < 6) {
    std::cerr << "usage: frozen_weights_tool <folder> <out.safetensors> <float32|bfloat16|nf4|fp4> <double_quant 0|1> "
                 "<float32|bfloat16> [chunk_elements] [reference]\n";
    return 2;
  }
  using namespace sft;
  try {
    const std::string fmt = argv[3];
    const backend::WeightFormat format = fmt == "float32"    ? backend::WeightFormat::F32
                                         : fmt == "bfloat16" ? backend::WeightFormat::BF16
                                                             : model::parse_quant_type(fmt, "format");
    const bool dq = std::string(argv[4]) == "1";
    const backend::DType source = std::string(argv[5]) == "bfloat16" ? backend::DType::BF16 : backend::DType::F32;
    const int64_t chunk = argc > 6 ? std::stoll(argv[6]) : int64_t{1} << 22;
    auto be = argc > 7 ? backend::make_cpu_reference_backend() : backend::make_cpu_backend();
    const io::WeightStore store = io::WeightStore::open(argv[1]);
    std::vector<model::FrozenSpec> specs;
    for (const std::string& name : store.names())
      if (store.info(name).shape.size() == 2) specs.push_back({name, store.info(name).shape, format});
    const std::vector<model::FrozenTensor> frozen = model::load_frozen(store, specs, *be, source, dq, chunk);

    std::vector<std::vector<float>> keep;
    std::vector<model::QuantStateTensor> states;
    std::vector<io::TensorToWrite> out;
    for (const model::FrozenTensor& t : frozen) {
      const int64_t n = t.shape()[0] * t.shape()[1];
      keep.push_back(t.to_host(0, n, false));
      out.push_back({t.name() + ".values", io::DType::F32, t.shape(), keep.back().data()});
      if (t.view().quantized()) {
        keep.push_back(t.to_host(0, n, true));
        out.push_back({t.name() + ".values_bf16", io::DType::F32, t.shape(), keep.back().data()});
        for (model::QuantStateTensor& s : t.bnb_state(source == backend::DType::BF16 ? "bfloat16" : "float32"))
          states.push_back(std::move(s));
      }
    }
    for (const model::QuantStateTensor& s : states) out.push_back({s.name, s.dtype, s.shape, s.bytes.data()});
    io::write_safetensors(argv[2], std::move(out));
  } catch (const std::exception& e) {
    std::cerr << "frozen_weights_tool: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
