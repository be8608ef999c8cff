// safetensors reading (memory-mapped, fully validated) and writing (transformers-loadable, atomic).
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "util/file_util.h"

namespace sft::io {

enum class DType { F32, BF16, F16, I64, I32, U8, BOOL, F64, I16, I8 };
size_t dtype_size(DType d);
const char* dtype_name(DType d);  // "F32", "BF16", ...
DType parse_dtype(const std::string& name);  // inverse of dtype_name; throws sft::Error for anything else

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;  // byte offsets relative to the data section
  int64_t numel() const;
};
std::string shape_str(const std::vector<int64_t>& shape);  // "[896, 151936]", for error messages

// One .safetensors file, memory-mapped. The constructor validates every rule of the format and throws sft::Error
// naming the file and tensor on the first violation.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find(const std::string& name) const;
  const uint8_t* data(const TensorInfo& t) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::filesystem::path& path() const { return map_.path(); }

 private:
  MappedFile map_;
  size_t data_start_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Element conversion of n values stored as `src` (little-endian, any alignment) into float32 / bfloat16.
// F32, BF16 and F16 are accepted; other dtypes throw naming `where`. bf16 rounding is round-to-nearest-even.
void convert_to_f32(DType src, const uint8_t* p, int64_t n, float* dst, const std::string& where);
void convert_to_bf16(DType src, const uint8_t* p, int64_t n, uint16_t* dst, const std::string& where);

// All weights of a model folder: model.safetensors, or shards listed by model.safetensors.index.json.
// Refuses pytorch_model.bin with a message saying how to convert.
class WeightStore {
 public:
  static WeightStore open(const std::filesystem::path& model_dir);
  // Tensors from another container (a GGUF file, through model/gguf_mapping.cpp): each under its HF name and shape,
  // decoded to float32 by `read` (info() reports them as F32). file_of() is for safetensors tensors only.
  struct DecodedTensor {
    std::string name;
    std::vector<int64_t> shape;
    std::filesystem::path file;
    std::function<void(float* dst)> read;
  };
  static WeightStore from_decoded(std::vector<DecodedTensor> tensors);
  // The file a tensor comes from (either kind), for error messages.
  const std::filesystem::path& path_of(const std::string& name) const;
  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws naming the tensor when absent
  std::vector<std::string> names() const;  // sorted
  const std::vector<std::filesystem::path>& files() const { return paths_; }  // the .safetensors files opened
  const SafetensorsFile& file_of(const std::string& name) const;  // throws naming the tensor when absent
  // Converts to float32 / bf16 into dst (numel elements); throws if expected_shape (when non-empty) differs.
  void read_f32(const std::string& name, float* dst, const std::vector<int64_t>& expected_shape = {}) const;
  void read_bf16(const std::string& name, uint16_t* dst, const std::vector<int64_t>& expected_shape = {}) const;

 private:
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<std::filesystem::path> paths_;
  std::map<std::string, std::pair<const SafetensorsFile*, const TensorInfo*>> index_;
  std::vector<DecodedTensor> decoded_;
  std::vector<std::unique_ptr<TensorInfo>> decoded_infos_;
  std::map<std::string, size_t> decoded_index_;
};

struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;  // numel * dtype_size bytes, little-endian C order
};

// Writes one safetensors file atomically: tensors sorted by name, header padded with spaces to 8 bytes,
// "__metadata__": {"format": "pt", ...extra}.
void write_safetensors(const std::filesystem::path& path, std::vector<TensorToWrite> tensors,
                       const std::map<std::string, std::string>& extra_metadata = {});

}  // namespace sft::io
