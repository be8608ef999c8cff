// safetensors reader (mmap + full validation) and writer. The rules checked here are those of the reference Rust
// implementation (huggingface/safetensors, `SafeTensors::read_metadata` / `Metadata::validate`) plus a duplicate-name
// check the JSON layer of the reference does not do: a file that passes here loads there, and a file we write loads
// with `safetensors.numpy.load_file` / `transformers` (tests/io/test_safetensors_roundtrip.py).
#include "io/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "util/bf16.h"
#include "util/error.h"

namespace sft::io {

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference's MAX_HEADER_SIZE
// A valid header nests at most 3 levels ({ name: { shape: [ ] } }); anything deeper is rejected before parsing so
// that a hostile "[[[[..." header can never exhaust the stack or the allocator inside the JSON parser.
constexpr int kMaxJsonDepth = 4;

struct DTypeName {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeName kDTypes[] = {
    {DType::F32, "F32", 4}, {DType::BF16, "BF16", 2}, {DType::F16, "F16", 2},  {DType::I64, "I64", 8},
    {DType::I32, "I32", 4}, {DType::U8, "U8", 1},     {DType::BOOL, "BOOL", 1}, {DType::F64, "F64", 8},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1},
};

const DTypeName& dtype_entry(DType d) {
  for (const auto& e : kDTypes)
    if (e.dtype == d) return e;
  throw Error("safetensors: invalid DType value " + std::to_string(static_cast<int>(d)));
}

// Nesting depth of a JSON text outside string literals (a cheap pre-scan; the parser validates the syntax).
int json_depth(const char* p, size_t n) {
  int depth = 0, max_depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < n; ++i) {
    char c = p[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      max_depth = std::max(max_depth, ++depth);
      if (max_depth > kMaxJsonDepth) return max_depth;
    } else if (c == '}' || c == ']') {
      --depth;
    }
  }
  return max_depth;
}

// Parses JSON rejecting duplicate keys in any object (nlohmann silently keeps the last one otherwise).
json parse_json_strict(const std::string& text, const std::string& where) {
  std::vector<std::set<std::string>> keys_stack;
  std::string duplicate;
  json::parser_callback_t cb = [&](int /*depth*/, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      keys_stack.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!keys_stack.empty()) keys_stack.pop_back();
    } else if (ev == json::parse_event_t::key && !keys_stack.empty()) {
      const std::string& k = parsed.get_ref<const std::string&>();
      if (!keys_stack.back().insert(k).second && duplicate.empty()) duplicate = k;
    }
    return true;
  };
  json j = json::parse(text, cb, /*allow_exceptions=*/false);
  SFT_CHECK(!j.is_discarded(), where, ": header is not valid JSON");
  SFT_CHECK(duplicate.empty(), where, ": duplicate key \"", duplicate, "\" in header");
  return j;
}

// A non-negative JSON integer that fits in int64 (rejects floats, strings, booleans, negatives).
int64_t json_uint(const json& v, const std::string& what) {
  SFT_CHECK(v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0), what,
            " must be a non-negative integer, got ", v.dump());
  uint64_t u = v.get<uint64_t>();
  SFT_CHECK(u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), what, " is too large: ", v.dump());
  return static_cast<int64_t>(u);
}

}  // namespace

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}


size_t dtype_size(DType d) { return dtype_entry(d).size; }
const char* dtype_name(DType d) { return dtype_entry(d).name; }

DType parse_dtype(const std::string& name) {
  for (const auto& e : kDTypes)
    if (name == e.name) return e.dtype;
  throw Error("unknown safetensors dtype \"" + name +
              "\" (supported: F32 BF16 F16 F64 I64 I32 I16 I8 U8 BOOL)");
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) : map_(path) {
  const std::string where = path.string();
  const size_t fsize = map_.size();
  SFT_CHECK(fsize >= 8, where, ": not a safetensors file (", fsize, " bytes, the 8-byte header length is missing)");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | map_.data()[i];  // little-endian regardless of host
  SFT_CHECK(n <= kMaxHeaderBytes, where, ": header length ", std::to_string(n), " exceeds the 100 MB limit");
  SFT_CHECK(n <= fsize - 8, where, ": header length ", std::to_string(n), " runs past the end of the file (",
            fsize, " bytes)");
  data_start_ = 8 + static_cast<size_t>(n);
  const char* hdr = reinterpret_cast<const char*>(map_.data() + 8);
  SFT_CHECK(n >= 2 && hdr[0] == '{', where, ": header must be a JSON object starting with '{'");
  SFT_CHECK(json_depth(hdr, n) <= kMaxJsonDepth, where, ": header JSON is nested deeper than a safetensors header");
  json j = parse_json_strict(std::string(hdr, n), where);
  SFT_CHECK(j.is_object(), where, ": header must be a JSON object");

  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      SFT_CHECK(v.is_object(), where, ": __metadata__ must be an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        SFT_CHECK(m.value().is_string(), where, ": __metadata__ value of \"", m.key(), "\" must be a string");
        metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tw = where + ": tensor \"" + name + "\"";
    SFT_CHECK(v.is_object(), tw, ": entry must be an object with dtype, shape, data_offsets");
    SFT_CHECK(v.contains("dtype") && v["dtype"].is_string(), tw, ": \"dtype\" missing or not a string");
    SFT_CHECK(v.contains("shape") && v["shape"].is_array(), tw, ": \"shape\" missing or not an array");
    SFT_CHECK(v.contains("data_offsets") && v["data_offsets"].is_array() && v["data_offsets"].size() == 2, tw,
              ": \"data_offsets\" must be an array [begin, end]");
    TensorInfo t;
    t.name = name;
    try {
      t.dtype = parse_dtype(v["dtype"].get<std::string>());
    } catch (const Error& e) {
      throw Error(tw + ": " + e.what());
    }
    // numel * size computed with overflow checks: a hostile shape must not wrap around to a matching size.
    unsigned __int128 bytes = dtype_size(t.dtype);
    for (const auto& d : v["shape"]) {
      int64_t dim = json_uint(d, tw + ": shape dimension");
      t.shape.push_back(dim);
      bytes *= static_cast<uint64_t>(dim);
      if (bytes > static_cast<unsigned __int128>(fsize)) bytes = static_cast<unsigned __int128>(fsize) + 1;
    }
    int64_t b = json_uint(v["data_offsets"][0], tw + ": data_offsets[0]");
    int64_t e = json_uint(v["data_offsets"][1], tw + ": data_offsets[1]");
    SFT_CHECK(b <= e, tw, ": data_offsets [", b, ", ", e, "] has begin > end");
    t.begin = static_cast<size_t>(b);
    t.end = static_cast<size_t>(e);
    SFT_CHECK(bytes == static_cast<unsigned __int128>(t.end - t.begin), tw, ": shape ", shape_str(t.shape), " of ",
              dtype_name(t.dtype), " does not match data_offsets [", b, ", ", e, "] (", e - b, " bytes)");
    tensors_.push_back(std::move(t));
  }

  // Offsets must tile the data section exactly: sorted, starting at 0, each beginning where the previous ended.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  size_t expected = 0;
  for (const TensorInfo* t : by_offset) {
    SFT_CHECK(t->begin == expected, where, ": tensor \"", t->name, "\" data_offsets [", t->begin, ", ", t->end,
              "] ", (t->begin < expected ? "overlaps the previous tensor" : "leaves a gap after the previous tensor"),
              " (expected begin ", expected, ")");
    expected = t->end;
  }
  const size_t data_bytes = fsize - data_start_;
  SFT_CHECK(expected == data_bytes, where, ": tensors cover ", expected, " bytes but the data section holds ",
            data_bytes, " bytes (file size - 8 - header length)");
  std::sort(tensors_.begin(), tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorInfo& t, const std::string& n) { return t.name < n; });
  return (it != tensors_.end() && it->name == name) ? &*it : nullptr;
}

const uint8_t* SafetensorsFile::data(const TensorInfo& t) const { return map_.data() + data_start_ + t.begin; }

void SafetensorsFile::release(const TensorInfo& t, size_t begin, size_t end) const {
  if (end > begin && t.begin + end <= t.end) map_.release(data_start_ + t.begin + begin, end - begin);
}

// ---- conversion into the requested dtype (memcpy per element: the data section need not be aligned) ----

void convert_to_f32(DType src, const uint8_t* p, int64_t n, float* dst, const std::string& where) {
  if (n == 0) return;  // empty tensor: dst may be null, and memcpy(null, ..., 0) is UB (found by fuzzing)
  switch (src) {
    case DType::F32:
      std::memcpy(dst, p, static_cast<size_t>(n) * 4);
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = bf16_to_float(h);
      }
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = f16_to_float(h);
      }
      return;
    default:
      throw Error(where + ": dtype " + dtype_name(src) + " cannot be read as float32 (expected F32, BF16 or F16)");
  }
}

void convert_to_bf16(DType src, const uint8_t* p, int64_t n, uint16_t* dst, const std::string& where) {
  if (n == 0) return;  // empty tensor: dst may be null, and memcpy(null, ..., 0) is UB (found by fuzzing)
  switch (src) {
    case DType::BF16:
      std::memcpy(dst, p, static_cast<size_t>(n) * 2);
      return;
    case DType::F32:
      for (int64_t i = 0; i < n; ++i) {
        float f;
        std::memcpy(&f, p + 4 * i, 4);
        dst[i] = float_to_bf16(f);
      }
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = float_to_bf16(f16_to_float(h));
      }
      return;
    default:
      throw Error(where + ": dtype " + dtype_name(src) + " cannot be read as bfloat16 (expected F32, BF16 or F16)");
  }
}

// ---- writer ----

void write_safetensors(const std::filesystem::path& path, std::vector<TensorToWrite> tensors,
                       const std::map<std::string, std::string>& extra_metadata) {
  const std::string where = path.string();
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
  json header = json::object();
  json meta = json::object();
  meta["format"] = "pt";
  for (const auto& [k, v] : extra_metadata) meta[k] = v;
  header["__metadata__"] = meta;
  size_t offset = 0;
  std::vector<size_t> sizes;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& t = tensors[i];
    SFT_CHECK(!t.name.empty() && t.name != "__metadata__", where, ": invalid tensor name \"", t.name, "\"");
    SFT_CHECK(i == 0 || tensors[i - 1].name != t.name, where, ": duplicate tensor name \"", t.name, "\"");
    size_t bytes = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      SFT_CHECK(d >= 0, where, ": tensor \"", t.name, "\" has a negative dimension in ", shape_str(t.shape));
      bytes *= static_cast<size_t>(d);
    }
    SFT_CHECK(bytes == 0 || t.data != nullptr, where, ": tensor \"", t.name, "\" has no data");
    header[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    sizes.push_back(bytes);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');  // the reference pads with spaces so the data section is 8-byte aligned
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(static_cast<uint64_t>(h.size()) >> (8 * i));
  write_file_atomic_fd(path, [&](int fd) {
    write_all(fd, len, 8, path);
    write_all(fd, h.data(), h.size(), path);
    for (size_t i = 0; i < tensors.size(); ++i)
      if (sizes[i]) write_all(fd, tensors[i].data, sizes[i], path);
  });
}

}  // namespace sft::io
