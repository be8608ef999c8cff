// GGUF reader (bounds-checked over the mmap, ggml/src/gguf.cpp's rules) and writer (streaming, atomic).
#include "io/gguf.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <set>

#include "util/bf16.h"
#include "util/error.h"

namespace sft::io {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint64_t kDefaultAlignment = 32;
constexpr int kMaxArrayDepth = 8;             // nested arrays; real files use none
constexpr uint64_t kMaxElements = 1ull << 26;  // strings + nested arrays in one file (a 256k vocab uses ~10^6)
constexpr size_t kMaxTensorName = 63;         // GGML_MAX_NAME - 1
constexpr uint32_t kMaxDims = 4;              // GGML_MAX_DIMS

constexpr struct {
  uint32_t id;
  GgmlTypeTraits t;
} kTypes[] = {
    {0, {"F32", 1, 4}},       {1, {"F16", 1, 2}},        {2, {"Q4_0", 32, 18}},     {3, {"Q4_1", 32, 20}},
    {6, {"Q5_0", 32, 22}},    {7, {"Q5_1", 32, 24}},     {8, {"Q8_0", 32, 34}},     {9, {"Q8_1", 32, 36}},
    {10, {"Q2_K", 256, 84}},  {11, {"Q3_K", 256, 110}},  {12, {"Q4_K", 256, 144}},  {13, {"Q5_K", 256, 176}},
    {14, {"Q6_K", 256, 210}}, {15, {"Q8_K", 256, 292}},  {16, {"IQ2_XXS", 256, 66}}, {17, {"IQ2_XS", 256, 74}},
    {18, {"IQ3_XXS", 256, 98}}, {19, {"IQ1_S", 256, 50}}, {20, {"IQ4_NL", 32, 18}}, {21, {"IQ3_S", 256, 110}},
    {22, {"IQ2_S", 256, 82}}, {23, {"IQ4_XS", 256, 136}}, {24, {"I8", 1, 1}},       {25, {"I16", 1, 2}},
    {26, {"I32", 1, 4}},      {27, {"I64", 1, 8}},       {28, {"F64", 1, 8}},       {29, {"IQ1_M", 256, 56}},
    {30, {"BF16", 1, 2}},     {34, {"TQ1_0", 256, 54}},  {35, {"TQ2_0", 256, 66}},  {39, {"MXFP4", 32, 17}},
};

// A cursor over [p, end) whose reads throw naming the file and what was being read.
struct Cursor {
  const uint8_t* base;
  size_t pos, size;
  const std::string& file;
  uint64_t elements = 0;  // strings + nested arrays read so far

  size_t remaining() const { return size - pos; }
  void need(uint64_t n, const std::string& what) const {
    SFT_CHECK(n <= remaining(), file, ": truncated while reading ", what, " (needs ", n, " bytes at offset ", pos,
              ", file has ", size, ")");
  }
  template <class T>
  T read(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, base + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string read_string(const std::string& what) {
    const uint64_t n = read<uint64_t>(what + " length");
    need(n, what);
    std::string s(reinterpret_cast<const char*>(base + pos), static_cast<size_t>(n));
    pos += static_cast<size_t>(n);
    return s;
  }
};

size_t min_element_bytes(GgufType t) {
  if (t == GgufType::STRING) return 8;
  if (t == GgufType::ARRAY) return 12;
  return gguf_scalar_size(t);
}

GgufValue read_value(Cursor& c, GgufType type, const std::string& key, int depth);

GgufValue read_array(Cursor& c, const std::string& key, int depth) {
  SFT_CHECK(depth < kMaxArrayDepth, c.file, ": key ", key, ": arrays nested deeper than ", kMaxArrayDepth);
  GgufValue v;
  v.type = GgufType::ARRAY;
  const uint32_t elem = c.read<uint32_t>("key " + key + " array type");
  SFT_CHECK(elem <= static_cast<uint32_t>(GgufType::FLOAT64), c.file, ": key ", key, ": invalid array element type ",
            elem);
  v.elem = static_cast<GgufType>(elem);
  v.count = c.read<uint64_t>("key " + key + " array length");
  // Every element takes at least min_element_bytes in the file: a count the rest of the file cannot hold is refused
  // before anything is allocated for it.
  const size_t min = min_element_bytes(v.elem);
  SFT_CHECK(v.count <= c.remaining() / min, c.file, ": key ", key, ": array of ", v.count, " ",
            gguf_type_name(v.elem), " elements does not fit in the rest of the file (", c.remaining(), " bytes)");
  if (v.elem == GgufType::STRING || v.elem == GgufType::ARRAY) {
    c.elements += v.count;
    SFT_CHECK(c.elements <= kMaxElements, c.file, ": key ", key, ": more than ", kMaxElements,
              " strings/arrays in the metadata");
  }
  if (v.elem == GgufType::STRING) {
    v.strs.reserve(static_cast<size_t>(v.count));
    for (uint64_t k = 0; k < v.count; ++k) v.strs.push_back(c.read_string("key " + key + " element"));
  } else if (v.elem == GgufType::ARRAY) {
    v.arrays.reserve(static_cast<size_t>(v.count));
    for (uint64_t k = 0; k < v.count; ++k) v.arrays.push_back(read_array(c, key, depth + 1));
  } else {
    const uint64_t bytes = v.count * min;
    c.need(bytes, "key " + key + " array");
    v.raw.assign(reinterpret_cast<const char*>(c.base + c.pos), static_cast<size_t>(bytes));
    if (v.elem == GgufType::BOOL)
      for (char b : v.raw)
        SFT_CHECK(b == 0 || b == 1, c.file, ": key ", key, ": bool array element is ", static_cast<int>(b),
                  ", expected 0 or 1");
    c.pos += static_cast<size_t>(bytes);
  }
  return v;
}

GgufValue read_value(Cursor& c, GgufType type, const std::string& key, int depth) {
  const std::string what = "key " + key;
  GgufValue v;
  v.type = type;
  switch (type) {
    case GgufType::UINT8: v.u = c.read<uint8_t>(what); break;
    case GgufType::UINT16: v.u = c.read<uint16_t>(what); break;
    case GgufType::UINT32: v.u = c.read<uint32_t>(what); break;
    case GgufType::UINT64: v.u = c.read<uint64_t>(what); break;
    case GgufType::INT8: v.i = c.read<int8_t>(what); break;
    case GgufType::INT16: v.i = c.read<int16_t>(what); break;
    case GgufType::INT32: v.i = c.read<int32_t>(what); break;
    case GgufType::INT64: v.i = c.read<int64_t>(what); break;
    case GgufType::FLOAT32: v.f = c.read<float>(what); break;
    case GgufType::FLOAT64: v.f = c.read<double>(what); break;
    case GgufType::BOOL: {
      const uint8_t b = c.read<uint8_t>(what);
      SFT_CHECK(b <= 1, c.file, ": key ", key, ": bool value is ", static_cast<int>(b), ", expected 0 or 1");
      v.u = b;
      break;
    }
    case GgufType::STRING: v.s = c.read_string(what); break;
    case GgufType::ARRAY: return read_array(c, key, depth);
  }
  return v;
}

// ---- writing ----

struct Out {
  std::string buf;
  template <class T>
  void put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    buf.append(b, sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    buf += s;
  }
};

void write_value(Out& o, const GgufValue& v) {
  switch (v.type) {
    case GgufType::UINT8: o.put<uint8_t>(static_cast<uint8_t>(v.u)); break;
    case GgufType::UINT16: o.put<uint16_t>(static_cast<uint16_t>(v.u)); break;
    case GgufType::UINT32: o.put<uint32_t>(static_cast<uint32_t>(v.u)); break;
    case GgufType::UINT64: o.put<uint64_t>(v.u); break;
    case GgufType::INT8: o.put<int8_t>(static_cast<int8_t>(v.i)); break;
    case GgufType::INT16: o.put<int16_t>(static_cast<int16_t>(v.i)); break;
    case GgufType::INT32: o.put<int32_t>(static_cast<int32_t>(v.i)); break;
    case GgufType::INT64: o.put<int64_t>(v.i); break;
    case GgufType::FLOAT32: o.put<float>(static_cast<float>(v.f)); break;
    case GgufType::FLOAT64: o.put<double>(v.f); break;
    case GgufType::BOOL: o.put<uint8_t>(v.u ? 1 : 0); break;
    case GgufType::STRING: o.put_string(v.s); break;
    case GgufType::ARRAY:
      o.put<uint32_t>(static_cast<uint32_t>(v.elem));
      o.put<uint64_t>(v.count);
      if (v.elem == GgufType::STRING) {
        SFT_CHECK(v.strs.size() == v.count, "internal: GGUF string array count mismatch");
        for (const auto& s : v.strs) o.put_string(s);
      } else if (v.elem == GgufType::ARRAY) {
        SFT_CHECK(v.arrays.size() == v.count, "internal: GGUF nested array count mismatch");
        for (const auto& a : v.arrays) {
          SFT_CHECK(a.type == GgufType::ARRAY, "internal: GGUF nested array element is not an array");
          write_value(o, a);
        }
      } else {
        SFT_CHECK(v.raw.size() == v.count * gguf_scalar_size(v.elem), "internal: GGUF array byte count mismatch");
        o.buf += v.raw;
      }
      break;
  }
}

uint64_t pad_to(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

// Encodes values into the bytes of `type` (F32, F16, BF16, Q8_0).
void encode(GgmlType type, const std::vector<float>& v, std::string& out) {
  const size_t n = v.size();
  switch (type) {
    case GgmlType::F32:
      out.resize(n * 4);
      std::memcpy(out.data(), v.data(), n * 4);
      return;
    case GgmlType::F16:
    case GgmlType::BF16: {
      out.resize(n * 2);
      for (size_t k = 0; k < n; ++k) {
        const uint16_t h = type == GgmlType::F16 ? float_to_f16(v[k]) : float_to_bf16(v[k]);
        std::memcpy(out.data() + 2 * k, &h, 2);
      }
      return;
    }
    case GgmlType::Q8_0:
      out.resize(n / 32 * 34);
      quantize_q8_0(v.data(), static_cast<int64_t>(n), reinterpret_cast<uint8_t*>(out.data()));
      return;
    default: throw Error(std::string("GGUF writer: tensor type ") + ggml_type_name(type) + " cannot be written");
  }
}

}  // namespace

// ---- GgufValue ----

const char* gguf_type_name(GgufType t) {
  static const char* names[] = {"UINT8", "INT8",  "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
                                "BOOL",  "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};
  const auto k = static_cast<uint32_t>(t);
  return k < 13 ? names[k] : "?";
}

size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    default: return 0;
  }
}

GgufValue GgufValue::u32(uint32_t v) { GgufValue x; x.type = GgufType::UINT32; x.u = v; return x; }
GgufValue GgufValue::i32(int32_t v) { GgufValue x; x.type = GgufType::INT32; x.i = v; return x; }
GgufValue GgufValue::u64(uint64_t v) { GgufValue x; x.type = GgufType::UINT64; x.u = v; return x; }
GgufValue GgufValue::f32(float v) { GgufValue x; x.type = GgufType::FLOAT32; x.f = v; return x; }
GgufValue GgufValue::boolean(bool v) { GgufValue x; x.type = GgufType::BOOL; x.u = v ? 1 : 0; return x; }
GgufValue GgufValue::str(std::string v) { GgufValue x; x.type = GgufType::STRING; x.s = std::move(v); return x; }

GgufValue GgufValue::strings(std::vector<std::string> v) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem = GgufType::STRING;
  x.count = v.size();
  x.strs = std::move(v);
  return x;
}

GgufValue GgufValue::i32s(const std::vector<int32_t>& v) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem = GgufType::INT32;
  x.count = v.size();
  x.raw.assign(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  return x;
}

GgufValue GgufValue::f32s(const std::vector<float>& v) {
  GgufValue x;
  x.type = GgufType::ARRAY;
  x.elem = GgufType::FLOAT32;
  x.count = v.size();
  x.raw.assign(reinterpret_cast<const char*>(v.data()), v.size() * 4);
  return x;
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::UINT16: case GgufType::INT16: case GgufType::UINT32:
    case GgufType::INT32: case GgufType::UINT64: case GgufType::INT64: return true;
    default: return false;
  }
}

int64_t GgufValue::as_int() const {
  SFT_CHECK(is_integer(), "value of type ", gguf_type_name(type), " is not an integer");
  const bool is_unsigned = type == GgufType::UINT8 || type == GgufType::UINT16 || type == GgufType::UINT32 ||
                           type == GgufType::UINT64;
  if (!is_unsigned) return i;
  SFT_CHECK(u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "value ", u, " is too large");
  return static_cast<int64_t>(u);
}

int64_t GgufValue::int_at(size_t k) const {
  SFT_CHECK(type == GgufType::ARRAY && k < count, "GGUF array index ", k, " out of range");
  const char* p = raw.data() + k * gguf_scalar_size(elem);
  auto get = [&](auto v) {
    std::memcpy(&v, p, sizeof(v));
    return v;
  };
  switch (elem) {
    case GgufType::UINT8: return get(uint8_t{});
    case GgufType::INT8: return get(int8_t{});
    case GgufType::UINT16: return get(uint16_t{});
    case GgufType::INT16: return get(int16_t{});
    case GgufType::UINT32: return get(uint32_t{});
    case GgufType::INT32: return get(int32_t{});
    case GgufType::INT64: return get(int64_t{});
    case GgufType::UINT64: {
      const uint64_t v = get(uint64_t{});
      SFT_CHECK(v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), "GGUF array value ", v,
                " is too large");
      return static_cast<int64_t>(v);
    }
    default: throw Error(std::string("GGUF array of ") + gguf_type_name(elem) + " is not an integer array");
  }
}

double GgufValue::float_at(size_t k) const {
  SFT_CHECK(type == GgufType::ARRAY && k < count, "GGUF array index ", k, " out of range");
  const char* p = raw.data() + k * gguf_scalar_size(elem);
  if (elem == GgufType::FLOAT32) {
    float v;
    std::memcpy(&v, p, 4);
    return v;
  }
  SFT_CHECK(elem == GgufType::FLOAT64, "GGUF array of ", gguf_type_name(elem), " is not a float array");
  double v;
  std::memcpy(&v, p, 8);
  return v;
}

// ---- types ----

const GgmlTypeTraits* ggml_type_traits(uint32_t type) {
  for (const auto& e : kTypes)
    if (e.id == type) return &e.t;
  return nullptr;
}

const char* ggml_type_name(GgmlType t) {
  const GgmlTypeTraits* tr = ggml_type_traits(static_cast<uint32_t>(t));
  return tr ? tr->name : "?";
}

bool ggml_type_readable(GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16 || t == GgmlType::Q8_0 ||
         t == GgmlType::Q4_0 || t == GgmlType::Q4_1;
}

std::vector<int64_t> GgufTensorInfo::shape() const { return {dims.rbegin(), dims.rend()}; }

uint64_t ggml_nbytes(GgmlType type, const std::vector<int64_t>& shape, const std::string& name) {
  const GgmlTypeTraits* tr = ggml_type_traits(static_cast<uint32_t>(type));
  SFT_CHECK(tr, "tensor ", name, ": unknown ggml type ", static_cast<uint32_t>(type));
  SFT_CHECK(!shape.empty() && shape.back() % tr->block_size == 0, "tensor ", name, ": row length ",
            shape.empty() ? 0 : shape.back(), " is not a multiple of the ", tr->name, " block size ", tr->block_size);
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n / static_cast<uint64_t>(tr->block_size) * static_cast<uint64_t>(tr->type_size);
}

// ---- reader ----

bool is_gguf_file(const std::filesystem::path& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  uint32_t magic = 0;
  const bool ok = ::read(fd, &magic, 4) == 4 && magic == kMagic;
  ::close(fd);
  return ok;
}

GgufFile::GgufFile(const std::filesystem::path& path) : name_(path.string()), map_(path, input::gguf_file) {
  data_ = map_.data();
  size_ = map_.size();
  parse();
}

GgufFile GgufFile::from_bytes(std::string bytes, const std::string& name) {
  GgufFile f;
  f.name_ = name;
  f.owned_ = std::make_shared<const std::string>(std::move(bytes));
  f.data_ = reinterpret_cast<const uint8_t*>(f.owned_->data());
  f.size_ = f.owned_->size();
  f.parse();
  return f;
}

void GgufFile::parse() {
  Cursor c{data_, 0, size_, name_};
  SFT_CHECK(size_ >= 4 && c.read<uint32_t>("magic") == kMagic, name_, ": not a GGUF file (no \"GGUF\" magic)");
  version_ = c.read<uint32_t>("version");
  SFT_CHECK(version_ == 2 || version_ == 3, name_, ": GGUF version ", version_,
            " is not supported (supported: 2 and 3; version 1 is obsolete)");
  const uint64_t n_tensors = c.read<uint64_t>("tensor count");
  const uint64_t n_kv = c.read<uint64_t>("metadata count");
  // A KV pair takes at least 13 bytes (key length, type, one byte), a tensor info at least 24.
  SFT_CHECK(n_kv <= c.remaining() / 13, name_, ": metadata count ", n_kv, " does not fit in the file");
  SFT_CHECK(n_tensors <= c.remaining() / 24, name_, ": tensor count ", n_tensors, " does not fit in the file");

  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string key = c.read_string("metadata key " + std::to_string(k));
    SFT_CHECK(!key.empty(), name_, ": metadata key ", k, " is empty");
    SFT_CHECK(!kv_index_.count(key), name_, ": duplicate metadata key ", key);
    const uint32_t type = c.read<uint32_t>("key " + key + " type");
    SFT_CHECK(type <= static_cast<uint32_t>(GgufType::FLOAT64), name_, ": key ", key, " has invalid GGUF type ",
              type);
    GgufValue v = read_value(c, static_cast<GgufType>(type), key, 0);
    kv_index_[key] = kv_.size();
    kv_.emplace_back(std::move(key), std::move(v));
  }
  if (const GgufValue* a = find("general.alignment")) {
    SFT_CHECK(a->type == GgufType::UINT32, name_, ": key general.alignment has type ", gguf_type_name(a->type),
              ", expected UINT32");
    SFT_CHECK(a->u != 0 && (a->u & (a->u - 1)) == 0, name_, ": general.alignment ", a->u, " is not a power of 2");
    alignment_ = a->u;
  }

  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    t.name = c.read_string("tensor name " + std::to_string(k));
    SFT_CHECK(t.name.size() <= kMaxTensorName, name_, ": tensor name \"", t.name.substr(0, 80), "\" is longer than ",
              kMaxTensorName, " bytes");
    SFT_CHECK(!tensor_index_.count(t.name), name_, ": duplicate tensor ", t.name);
    const std::string what = "tensor " + t.name;
    const uint32_t n_dims = c.read<uint32_t>(what + " dimension count");
    SFT_CHECK(n_dims <= kMaxDims, name_, ": ", what, " has ", n_dims, " dimensions (at most ", kMaxDims, ")");
    t.numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      const int64_t ne = c.read<int64_t>(what + " dimensions");
      SFT_CHECK(ne >= 0, name_, ": ", what, " dimension ", d, " is negative (", ne, ")");
      SFT_CHECK(ne == 0 || t.numel <= std::numeric_limits<int64_t>::max() / ne, name_, ": ", what,
                " has more than 2^63 elements");
      t.numel *= ne;
      t.dims.push_back(ne);
    }
    const uint32_t type = c.read<uint32_t>(what + " type");
    const GgmlTypeTraits* tr = ggml_type_traits(type);
    SFT_CHECK(tr, name_, ": ", what, " has unknown ggml type ", type);
    t.type = static_cast<GgmlType>(type);
    const int64_t row = t.dims.empty() ? 1 : t.dims[0];
    SFT_CHECK(row % tr->block_size == 0, name_, ": ", what, " row length ", row, " is not a multiple of the ",
              tr->name, " block size ", tr->block_size);
    const uint64_t blocks = static_cast<uint64_t>(t.numel / tr->block_size);
    SFT_CHECK(blocks <= std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(tr->type_size), name_, ": ",
              what, " byte size overflows");
    t.nbytes = blocks * static_cast<uint64_t>(tr->type_size);
    t.offset = c.read<uint64_t>(what + " offset");
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment; tensors follow in order, each at the offset the
  // previous one's padded size gives (ggml's reader requires exactly this), and must lie inside the file.
  data_start_ = pad_to(c.pos, alignment_);
  SFT_CHECK(tensors_.empty() || data_start_ <= size_, name_, ": truncated before the tensor data section (offset ",
            data_start_, ", file has ", size_, " bytes)");
  uint64_t expected = 0;
  for (const GgufTensorInfo& t : tensors_) {
    SFT_CHECK(t.offset == expected, name_, ": tensor ", t.name, " has data offset ", t.offset, ", expected ", expected,
              " (tensors must be stored in order, each padded to ", alignment_, " bytes)");
    SFT_CHECK(t.nbytes <= size_ - data_start_ && t.offset <= size_ - data_start_ - t.nbytes, name_, ": tensor ",
              t.name, " data (", t.nbytes, " bytes at offset ", data_start_ + t.offset,
              ") extends past the end of the file (", size_, " bytes): truncated file?");
    expected = pad_to(t.offset + t.nbytes, alignment_);
  }
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufValue& GgufFile::get(const std::string& key) const {
  const GgufValue* v = find(key);
  SFT_CHECK(v, name_, ": metadata key ", key, " is missing");
  return *v;
}

std::string GgufFile::get_string(const std::string& key) const {
  const GgufValue& v = get(key);
  SFT_CHECK(v.type == GgufType::STRING, name_, ": key ", key, " has type ", gguf_type_name(v.type),
            ", expected STRING");
  return v.s;
}

std::string GgufFile::get_string(const std::string& key, const std::string& dflt) const {
  return find(key) ? get_string(key) : dflt;
}

int64_t GgufFile::get_int(const std::string& key) const {
  const GgufValue& v = get(key);
  SFT_CHECK(v.is_integer(), name_, ": key ", key, " has type ", gguf_type_name(v.type), ", expected an integer");
  try {
    return v.as_int();
  } catch (const Error& e) {
    throw Error(name_ + ": key " + key + ": " + e.what());
  }
}

int64_t GgufFile::get_int(const std::string& key, int64_t dflt) const { return find(key) ? get_int(key) : dflt; }

double GgufFile::get_float(const std::string& key) const {
  const GgufValue& v = get(key);
  SFT_CHECK(v.type == GgufType::FLOAT32 || v.type == GgufType::FLOAT64, name_, ": key ", key, " has type ",
            gguf_type_name(v.type), ", expected FLOAT32");
  return v.f;
}

double GgufFile::get_float(const std::string& key, double dflt) const { return find(key) ? get_float(key) : dflt; }

bool GgufFile::get_bool(const std::string& key, bool dflt) const {
  const GgufValue* v = find(key);
  if (!v) return dflt;
  SFT_CHECK(v->type == GgufType::BOOL, name_, ": key ", key, " has type ", gguf_type_name(v->type), ", expected BOOL");
  return v->u != 0;
}

const GgufValue& GgufFile::get_array(const std::string& key, GgufType elem) const {
  const GgufValue& v = get(key);
  SFT_CHECK(v.type == GgufType::ARRAY, name_, ": key ", key, " has type ", gguf_type_name(v.type),
            ", expected an array of ", gguf_type_name(elem));
  SFT_CHECK(v.elem == elem, name_, ": key ", key, " is an array of ", gguf_type_name(v.elem), ", expected ",
            gguf_type_name(elem));
  return v;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

void GgufFile::read_f32(const GgufTensorInfo& t, float* dst) const {
  SFT_CHECK(ggml_type_readable(t.type), name_, ": tensor ", t.name, " has type ", ggml_type_name(t.type),
            ", which sft cannot read (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1)");
  dequantize(t.type, tensor_data(t), t.numel, dst);
}

// ---- writer ----

void write_gguf(const std::filesystem::path& path, const std::vector<std::pair<std::string, GgufValue>>& metadata,
                const std::vector<GgufTensorToWrite>& tensors) {
  Out h;
  h.put<uint32_t>(kMagic);
  h.put<uint32_t>(3);
  h.put<uint64_t>(tensors.size());
  h.put<uint64_t>(metadata.size());
  std::set<std::string> keys;
  for (const auto& [key, value] : metadata) {
    SFT_CHECK(keys.insert(key).second, "GGUF writer: duplicate metadata key ", key);
    h.put_string(key);
    h.put<uint32_t>(static_cast<uint32_t>(value.type));
    write_value(h, value);
  }
  uint64_t offset = 0;
  std::set<std::string> names;
  for (const GgufTensorToWrite& t : tensors) {
    SFT_CHECK(names.insert(t.name).second, "GGUF writer: duplicate tensor ", t.name);
    SFT_CHECK(t.name.size() <= kMaxTensorName && !t.shape.empty() && t.shape.size() <= kMaxDims,
              "GGUF writer: tensor ", t.name, " has an invalid name or shape");
    h.put_string(t.name);
    h.put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (auto d = t.shape.rbegin(); d != t.shape.rend(); ++d) h.put<int64_t>(*d);
    h.put<uint32_t>(static_cast<uint32_t>(t.type));
    h.put<uint64_t>(offset);
    offset = pad_to(offset + ggml_nbytes(t.type, t.shape, t.name), kDefaultAlignment);
  }
  h.buf.resize(static_cast<size_t>(pad_to(h.buf.size(), kDefaultAlignment)), '\0');

  write_file_atomic_fd(path, [&](int fd) {
    write_all(fd, h.buf.data(), h.buf.size(), path);
    std::vector<float> values;
    std::string bytes;
    const char zeros[32] = {};
    for (const GgufTensorToWrite& t : tensors) {
      values.clear();
      t.produce(values);
      int64_t numel = 1;
      for (int64_t d : t.shape) numel *= d;
      SFT_CHECK(static_cast<int64_t>(values.size()) == numel, "GGUF writer: tensor ", t.name, " produced ",
                values.size(), " values, expected ", numel);
      encode(t.type, values, bytes);
      write_all(fd, bytes.data(), bytes.size(), path);
      const size_t pad = static_cast<size_t>(pad_to(bytes.size(), kDefaultAlignment) - bytes.size());
      write_all(fd, zeros, pad, path);
    }
  });
}

}  // namespace sft::io
