// Driver for the Python parity tests of tests/io (test_safetensors_roundtrip.py, test_hf_config.py):
//   io_tool read PATH OUT_DIR          PATH = a .safetensors file or a model folder (WeightStore). For every tensor
//                                      writes OUT_DIR/<name>.f32 (read_f32) and, for float dtypes, <name>.bf16
//                                      (read_bf16), and prints one JSON line {name: {dtype, shape}}.
//   io_tool write OUT_FILE MANIFEST    MANIFEST = JSON [{name, dtype, shape, file}], file = raw little-endian bytes;
//                                      writes OUT_FILE with write_safetensors (metadata {"source": "io_tool"}).
//   io_tool resave IN_DIR OUT_DIR MAX  Reads an HF folder, writes it again with save_hf_folder (weights in their
//                                      dtype on disk, sharded at MAX bytes, 0 = one file).
//   io_tool config IN_JSON             Parses a config.json (model family specs) and prints config_to_json, then a line
//                                      "num_parameters N".
// Errors print "io_tool: error: ..." and exit 1 (the Python tests check the messages of malformed inputs).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/hf_config.h"
#include "model/family.h"
#include "io/hf_folder.h"
#include "io/safetensors.h"
#include "util/error.h"
#include "util/file_util.h"

namespace fs = std::filesystem;
using nlohmann::json;
using namespace sft::io;

namespace {

void dump(const fs::path& out, const void* p, size_t n) {
  std::ofstream f(out, std::ios::binary);
  f.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
  SFT_CHECK(f.good(), out.string(), ": write failed");
}

bool is_float(DType d) { return d == DType::F32 || d == DType::BF16 || d == DType::F16; }

int cmd_read(const fs::path& in, const fs::path& out) {
  fs::create_directories(out);
  json listing = json::object();
  auto emit = [&](const std::string& name, const TensorInfo& t, auto&& read_f32, auto&& read_bf16) {
    listing[name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}};
    if (!is_float(t.dtype)) return;
    std::vector<float> f(static_cast<size_t>(t.numel()));
    read_f32(f.data());
    dump(out / (name + ".f32"), f.data(), f.size() * 4);
    std::vector<uint16_t> b(static_cast<size_t>(t.numel()));
    read_bf16(b.data());
    dump(out / (name + ".bf16"), b.data(), b.size() * 2);
  };
  if (fs::is_directory(in)) {
    WeightStore ws = WeightStore::open(in);
    for (const auto& name : ws.names()) {
      const TensorInfo& t = ws.info(name);
      emit(name, t, [&](float* d) { ws.read_f32(name, d, t.shape); },
           [&](uint16_t* d) { ws.read_bf16(name, d, t.shape); });
    }
  } else {
    SafetensorsFile f(in);
    for (const auto& t : f.tensors()) {
      emit(t.name, t, [&](float* d) { convert_to_f32(t.dtype, f.data(t), t.numel(), d, t.name); },
           [&](uint16_t* d) { convert_to_bf16(t.dtype, f.data(t), t.numel(), d, t.name); });
    }
    listing["__metadata__"] = f.metadata();
  }
  std::cout << listing.dump() << "\n";
  return 0;
}

int cmd_write(const fs::path& out, const fs::path& manifest) {
  json m = json::parse(sft::read_file(manifest));
  std::vector<std::string> blobs;
  blobs.reserve(m.size());
  std::vector<TensorToWrite> tensors;
  for (const auto& e : m) {
    blobs.push_back(sft::read_file(e["file"].get<std::string>()));
    tensors.push_back({e["name"].get<std::string>(), parse_dtype(e["dtype"].get<std::string>()),
                       e["shape"].get<std::vector<int64_t>>(), blobs.back().data()});
  }
  write_safetensors(out, tensors, {{"source", "io_tool"}});
  return 0;
}

int cmd_resave(const fs::path& in, const fs::path& out, uint64_t max_shard) {
  const std::string config_text = sft::model::config_to_json(sft::model::load_config(in / "config.json"));
  WeightStore ws = WeightStore::open(in);
  std::vector<TensorToWrite> tensors;
  for (const auto& name : ws.names()) {
    const TensorInfo& t = ws.info(name);
    tensors.push_back({name, t.dtype, t.shape, ws.file_of(name).data(t)});
  }
  save_hf_folder(out, config_text, tensors, in, max_shard);
  return 0;
}

int cmd_config(const fs::path& in) {
  const sft::io::ModelConfig cfg = sft::model::load_config(in);
  std::cout << sft::model::config_to_json(cfg) << "num_parameters " << sft::model::num_parameters(cfg) << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  try {
    if (a.size() == 3 && a[0] == "read") return cmd_read(a[1], a[2]);
    if (a.size() == 3 && a[0] == "write") return cmd_write(a[1], a[2]);
    if (a.size() == 4 && a[0] == "resave") return cmd_resave(a[1], a[2], std::stoull(a[3]));
    if (a.size() == 2 && a[0] == "config") return cmd_config(a[1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "io_tool: error: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: io_tool read PATH OUT_DIR | write OUT_FILE MANIFEST | resave IN OUT MAX | config JSON\n");
  return 2;
}
