// GGUF (ggml's model file format, spec version 3: ggml docs/gguf.md): a bounds-checked reader over a read-only mmap
// and a streaming, atomic writer. Only the container and ggml's block formats live here; which keys and tensor names
// a model family uses (llama.cpp's converter conventions) is decided by model/gguf_mapping.cpp.
//
// Layout: "GGUF" | u32 version | u64 tensor count | u64 KV count | KV pairs (u64-length key, u32 type, value) |
// tensor infos (name, u32 n_dims, u64 dims fastest-first, u32 ggml type, u64 offset) | padding to the alignment |
// tensor data (each tensor at its offset, padded to the alignment). Little-endian throughout. Validation follows
// ggml's own reader (ggml/src/gguf.cpp): a file that passes here loads there.
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

enum class GgufType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
  UINT64 = 10, INT64 = 11, FLOAT64 = 12
};
const char* gguf_type_name(GgufType t);

// One metadata value. Scalars keep their exact type (a FLOAT32 is written back as the same float). Arrays keep their
// element type: numeric/bool elements as the file's little-endian bytes (`raw`, read with int_at / float_at), strings
// in `strs`, nested arrays (allowed by the spec) in `arrays`.
struct GgufValue {
  GgufType type = GgufType::UINT32;
  uint64_t u = 0;  // UINT*, BOOL
  int64_t i = 0;   // INT*
  double f = 0;    // FLOAT32 / FLOAT64
  std::string s;   // STRING
  // ARRAY:
  GgufType elem = GgufType::UINT32;
  uint64_t count = 0;
  std::string raw;                  // numeric / bool elements
  std::vector<std::string> strs;    // STRING elements
  std::vector<GgufValue> arrays;    // ARRAY elements

  static GgufValue u32(uint32_t v);
  static GgufValue i32(int32_t v);
  static GgufValue u64(uint64_t v);
  static GgufValue f32(float v);
  static GgufValue boolean(bool v);
  static GgufValue str(std::string v);
  static GgufValue strings(std::vector<std::string> v);
  static GgufValue i32s(const std::vector<int32_t>& v);
  static GgufValue f32s(const std::vector<float>& v);

  bool is_integer() const;  // a scalar of any integer type (not BOOL)
  int64_t as_int() const;   // an integer scalar's value (UINT64 above INT64_MAX throws)
  // Element k of a numeric array (integer elements for int_at, FLOAT32/FLOAT64 for float_at).
  int64_t int_at(size_t k) const;
  double float_at(size_t k) const;
};
size_t gguf_scalar_size(GgufType t);  // bytes of a numeric/bool element; 0 for STRING / ARRAY

// ggml tensor types (ggml.h enum ggml_type); the ones a GGUF may hold.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9, Q2_K = 10, Q3_K = 11, Q4_K = 12,
  Q5_K = 13, Q6_K = 14, Q8_K = 15, IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21,
  IQ2_S = 22, IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34,
  TQ2_0 = 35, MXFP4 = 39
};
struct GgmlTypeTraits {
  const char* name;
  int64_t block_size;  // elements per block
  int64_t type_size;   // bytes per block
};
// nullptr for a type id ggml does not define.
const GgmlTypeTraits* ggml_type_traits(uint32_t type);
const char* ggml_type_name(GgmlType t);
// Types read_f32 decodes (bit-identical to gguf-py's dequantize): F32, F16, BF16, Q8_0, Q4_0, Q4_1.
bool ggml_type_readable(GgmlType t);

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> dims;  // ggml order: dims[0] is the fastest-varying (row length)
  uint64_t offset = 0;        // relative to the data section
  uint64_t nbytes = 0;
  int64_t numel = 0;
  std::vector<int64_t> shape() const;  // PyTorch order (dims reversed), e.g. [out, in] for a projection
};

// A GGUF file, memory-mapped and fully validated by the constructor (errors name the file and the key or tensor).
class GgufFile {
 public:
  explicit GgufFile(const std::filesystem::path& path);
  // The same rules over bytes in memory (fuzz targets, tests); `name` stands for the file in errors.
  static GgufFile from_bytes(std::string bytes, const std::string& name);
  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;

  const std::string& name() const { return name_; }  // the path, for error messages
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;  // nullptr when absent
  // Typed getters: throw "<file>: key <key> ..." when absent (no default given) or of the wrong type.
  const GgufValue& get(const std::string& key) const;
  std::string get_string(const std::string& key) const;
  std::string get_string(const std::string& key, const std::string& dflt) const;
  int64_t get_int(const std::string& key) const;  // any integer type
  int64_t get_int(const std::string& key, int64_t dflt) const;
  double get_float(const std::string& key) const;  // FLOAT32 / FLOAT64
  double get_float(const std::string& key, double dflt) const;
  bool get_bool(const std::string& key, bool dflt) const;
  // An array whose elements are of type `elem` (throws naming the key otherwise).
  const GgufValue& get_array(const std::string& key, GgufType elem) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  const uint8_t* tensor_data(const GgufTensorInfo& t) const { return data_ + data_start_ + t.offset; }
  // Decodes a tensor into t.numel float32 values (ggml_type_readable types; anything else throws naming the tensor).
  void read_f32(const GgufTensorInfo& t, float* dst) const;

 private:
  GgufFile() = default;
  void parse();

  std::string name_;
  MappedFile map_;
  std::shared_ptr<const std::string> owned_;  // from_bytes (shared: data_ stays valid when the file object moves)
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_start_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t> tensor_index_;
};

// Quick check without parsing: a regular file that starts with the GGUF magic.
bool is_gguf_file(const std::filesystem::path& path);

// ---- block codecs (ggml's formats) ----
// n must be a multiple of the block size (32). q8_0: per block an fp16 scale d = max|x| / 127 and 32 int8 values
// round(x / d) (round half away from zero), computed in float32 exactly as gguf-py's Q8_0.quantize_blocks (which is
// bit-exact with ggml-quants.c quantize_row_q8_0_ref).
void quantize_q8_0(const float* x, int64_t n, uint8_t* out);
// Decodes n elements of a tensor of type `type` (a ggml_type_readable one) from `src` into dst.
void dequantize(GgmlType type, const uint8_t* src, int64_t n, float* dst);

// ---- writer ----
struct GgufTensorToWrite {
  std::string name;
  GgmlType type = GgmlType::F32;   // F32, F16, BF16 or Q8_0
  std::vector<int64_t> shape;      // PyTorch order ([out, in]); written reversed as ggml dims
  // Fills `values` with the tensor's numel float32 values (called once, while the tensor is written: only one
  // tensor's values are in memory at a time).
  std::function<void(std::vector<float>& values)> produce;
};

// Writes a GGUF v3 file atomically (temp name + fsync + rename; nothing at `path` on failure): metadata in the order
// given (general.alignment is not written: the default 32 is used), tensor infos, then each tensor's data encoded to
// its type and padded to 32 bytes. Tensors are produced and encoded one at a time.
void write_gguf(const std::filesystem::path& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorToWrite>& tensors);
// Bytes a tensor of this type and shape takes in a GGUF (throws when the row length is not a block multiple).
uint64_t ggml_nbytes(GgmlType type, const std::vector<int64_t>& shape, const std::string& name);

}  // namespace sft::io
