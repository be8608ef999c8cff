// Frozen weights in their stored form (bf16 / bitsandbytes 4-bit) and their streamed loading: see frozen_weights.h.
#include "model/frozen_weights.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "backend/quant4.h"
#include "util/bf16.h"
#include "util/error.h"

namespace sft::model {

using backend::DType;
using backend::kNestedBlock;
using backend::kQuantBlock;
using backend::WeightFormat;

namespace {

// Python's repr() of a float (json.dumps writes floats with it): the shortest digits that round-trip, fixed notation
// for decimal exponents in [-4, 16), otherwise d.ddde+XX.
std::string python_float_repr(double v) {
  if (v == 0) return std::signbit(v) ? "-0.0" : "0.0";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);  // "-5.234000086784363e-02"
  const size_t epos = sci.find('e');
  std::string mant = sci.substr(0, epos);
  const int exp10 = std::stoi(sci.substr(epos + 1));
  const bool neg = mant[0] == '-';
  if (neg) mant.erase(0, 1);
  std::string digits;
  for (char c : mant)
    if (c != '.') digits += c;
  // Appends only (GCC 12 reports a false -Wrestrict overlap for chains of std::string operator+ here).
  std::string out = neg ? "-" : "";
  if (exp10 >= -4 && exp10 < 16) {
    if (exp10 < 0) {
      out.append("0.").append(static_cast<size_t>(-exp10 - 1), '0').append(digits);
    } else if (static_cast<size_t>(exp10) + 1 >= digits.size()) {
      out.append(digits).append(static_cast<size_t>(exp10) + 1 - digits.size(), '0').append(".0");
    } else {
      out.append(digits, 0, static_cast<size_t>(exp10) + 1).append(".").append(digits, static_cast<size_t>(exp10) + 1);
    }
  } else {
    out.append(digits, 0, 1);
    if (digits.size() > 1) out.append(".").append(digits, 1);
    const std::string e = std::to_string(std::abs(exp10));
    out.append(exp10 < 0 ? "e-" : "e+").append(e.size() < 2 ? "0" : "").append(e);
  }
  return out;
}

template <class T>
QuantStateTensor state_tensor(std::string name, io::DType dt, std::vector<int64_t> shape, const T* p, size_t n) {
  QuantStateTensor t{std::move(name), dt, std::move(shape), std::vector<uint8_t>(n * sizeof(T))};
  if (n) std::memcpy(t.bytes.data(), p, n * sizeof(T));
  return t;
}

}  // namespace

WeightFormat parse_quant_type(const std::string& text, const std::string& flag) {
  if (text == "nf4") return WeightFormat::NF4;
  if (text == "fp4") return WeightFormat::FP4;
  throw Error(flag + " must be nf4 or fp4 (bitsandbytes' 4-bit types), got '" + text + "'");
}

WeightFormat frozen_format_for(TensorRole role, const FrozenStorage& s) {
  const WeightFormat model = s.dtype == DType::BF16 ? WeightFormat::BF16 : WeightFormat::F32;
  const bool projection = role == TensorRole::QProj || role == TensorRole::KProj || role == TensorRole::VProj ||
                          role == TensorRole::OProj || role == TensorRole::GateProj || role == TensorRole::UpProj ||
                          role == TensorRole::DownProj;
  return s.load_in_4bit && projection ? s.quant_type : model;
}

FrozenTensor::FrozenTensor(backend::Backend& be, const std::string& name, const std::vector<int64_t>& shape,
                           WeightFormat format, bool double_quant)
    : be_(&be), name_(name), shape_(shape), want_double_quant_(double_quant) {
  SFT_CHECK(shape.size() == 2 && shape[0] > 0 && shape[1] > 0, "tensor ", name, ": shape ", io::shape_str(shape),
            " cannot be stored as a frozen ", backend::weight_format_name(format), " matrix (expected [rows, cols])");
  view_.format = format, view_.rows = shape[0], view_.cols = shape[1];
  const int64_t n = view_.numel();
  int64_t bytes = 0;
  switch (format) {
    case WeightFormat::F32: bytes = n * 4; break;
    case WeightFormat::BF16: bytes = n * 2; break;
    case WeightFormat::NF4:
    case WeightFormat::FP4: bytes = (n + 1) / 2; break;
  }
  data_ = backend::DeviceBuffer<uint8_t>(be, bytes);
  view_.data = data_.get();
  if (view_.quantized()) host_absmax_.assign(static_cast<size_t>(view_.blocks()), 0.0f);
}

FrozenTensor FrozenTensor::from_values(backend::Backend& be, const std::string& name,
                                       const std::vector<int64_t>& shape, const float* values, WeightFormat format,
                                       bool double_quant) {
  FrozenTensor t(be, name, shape, format, double_quant);
  t.store_chunk(0, t.view_.numel(), values);
  t.finish();
  return t;
}

void FrozenTensor::store_chunk(int64_t e0, int64_t n, const float* values) {
  const int64_t total = view_.numel();
  SFT_CHECK(e0 >= 0 && n >= 0 && e0 + n <= total && e0 % kQuantBlock == 0 &&
                (n % kQuantBlock == 0 || e0 + n == total),
            "internal: frozen tensor ", name_, ": chunk [", e0, ", ", e0 + n, ") is not block-aligned");
  if (n == 0) return;
  switch (view_.format) {
    case WeightFormat::F32:
      be_->upload(data_.get() + e0 * 4, values, static_cast<size_t>(n) * 4);
      return;
    case WeightFormat::BF16: {
      std::vector<uint16_t> h(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) h[i] = float_to_bf16(values[i]);
      be_->upload(data_.get() + e0 * 2, h.data(), h.size() * 2);
      return;
    }
    case WeightFormat::NF4:
    case WeightFormat::FP4: {
      std::vector<uint8_t> packed(static_cast<size_t>((n + 1) / 2));
      const std::string what = "tensor " + name_ + " (from element " + std::to_string(e0) + ")";
      backend::quantize_4bit(values, n, view_.format, packed.data(), host_absmax_.data() + e0 / kQuantBlock,
                             what.c_str());
      be_->upload(data_.get() + e0 / 2, packed.data(), packed.size());
      return;
    }
  }
}

void FrozenTensor::store_bf16_chunk(int64_t e0, int64_t n, const uint16_t* values) {
  SFT_CHECK(view_.format == WeightFormat::BF16 && e0 >= 0 && n >= 0 && e0 + n <= view_.numel(),
            "internal: frozen tensor ", name_, ": bf16 chunk into a ", backend::weight_format_name(view_.format),
            " tensor or out of range");
  if (n) be_->upload(data_.get() + e0 * 2, values, static_cast<size_t>(n) * 2);
}

void FrozenTensor::finish() {
  if (!view_.quantized()) return;
  const int64_t blocks = view_.blocks();
  if (want_double_quant_) {
    const int64_t nested = (blocks + kNestedBlock - 1) / kNestedBlock;
    std::vector<uint8_t> q(static_cast<size_t>(blocks));
    std::vector<float> a2(static_cast<size_t>(nested));
    float offset = 0;
    backend::double_quantize_absmax(host_absmax_.data(), blocks, q.data(), a2.data(), &offset);
    qabsmax_ = backend::DeviceBuffer<uint8_t>(*be_, blocks);
    nested_ = backend::DeviceBuffer<float>(*be_, nested);
    be_->upload(qabsmax_.get(), q.data(), q.size());
    be_->upload(nested_.get(), a2.data(), a2.size() * 4);
    view_.qabsmax = qabsmax_.get(), view_.nested_absmax = nested_.get(), view_.offset = offset;
  } else {
    absmax_ = backend::DeviceBuffer<float>(*be_, blocks);
    be_->upload(absmax_.get(), host_absmax_.data(), host_absmax_.size() * 4);
    view_.absmax = absmax_.get();
  }
  std::vector<float>().swap(host_absmax_);
}

int64_t FrozenTensor::device_bytes() const {
  return static_cast<int64_t>(data_.bytes() + absmax_.bytes() + qabsmax_.bytes() + nested_.bytes());
}

int64_t FrozenTensor::bytes_for(WeightFormat format, int64_t rows, int64_t cols, bool double_quant) {
  const int64_t n = rows * cols, blocks = (n + kQuantBlock - 1) / kQuantBlock;
  switch (format) {
    case WeightFormat::F32: return 4 * n;
    case WeightFormat::BF16: return 2 * n;
    default:
      return (n + 1) / 2 + (double_quant ? blocks + 4 * ((blocks + kNestedBlock - 1) / kNestedBlock) : 4 * blocks);
  }
}

std::vector<float> FrozenTensor::to_host(int64_t e0, int64_t e1, bool round_bf16) const {
  SFT_CHECK(0 <= e0 && e0 <= e1 && e1 <= view_.numel(), "frozen tensor ", name_, ": elements [", e0, ", ", e1,
            ") out of range");
  std::vector<uint8_t> data(data_.bytes()), q(qabsmax_.bytes());
  std::vector<float> a(static_cast<size_t>(absmax_.size())), a2(static_cast<size_t>(nested_.size()));
  be_->download(data.data(), data_.get(), data.size());
  if (!q.empty()) be_->download(q.data(), qabsmax_.get(), q.size());
  if (!a.empty()) be_->download(a.data(), absmax_.get(), a.size() * 4);
  if (!a2.empty()) be_->download(a2.data(), nested_.get(), a2.size() * 4);
  backend::FrozenWeight host = view_;
  host.data = data.data();
  host.absmax = a.empty() ? nullptr : a.data();
  host.qabsmax = q.empty() ? nullptr : q.data();
  host.nested_absmax = a2.empty() ? nullptr : a2.data();
  std::vector<float> out(static_cast<size_t>(e1 - e0));
  backend::dequantize_host(host, e0, e1, round_bf16 && view_.quantized(), out.data());
  return out;
}

std::vector<QuantStateTensor> FrozenTensor::bnb_state(const std::string& torch_dtype) const {
  SFT_CHECK(view_.quantized(), "tensor ", name_, " is stored as ", backend::weight_format_name(view_.format),
            ", not 4-bit: it has no bitsandbytes quant state");
  const int64_t n = view_.numel(), blocks = view_.blocks();
  std::vector<uint8_t> packed(data_.bytes());
  be_->download(packed.data(), data_.get(), packed.size());
  std::vector<QuantStateTensor> out;
  out.push_back(state_tensor(name_, io::DType::U8, {(n + 1) / 2, 1}, packed.data(), packed.size()));
  // quant_map: get_4bit_type() as QuantState keeps it (FP4's index 8 is +0 there, see quant4.cpp)
  std::array<float, 16> code = backend::quant4_code(view_.format);
  for (float& c : code)
    if (c == 0.0f) c = 0.0f;
  std::string json = "{\"quant_type\": \"" + std::string(backend::weight_format_name(view_.format)) +
                     "\", \"blocksize\": " + std::to_string(kQuantBlock) + ", \"dtype\": \"" + torch_dtype +
                     "\", \"shape\": [" + std::to_string(view_.rows) + ", " + std::to_string(view_.cols) + "]";
  if (double_quant()) {
    const int64_t nested = (blocks + kNestedBlock - 1) / kNestedBlock;
    std::vector<uint8_t> q(static_cast<size_t>(blocks));
    std::vector<float> a2(static_cast<size_t>(nested));
    be_->download(q.data(), qabsmax_.get(), q.size());
    be_->download(a2.data(), nested_.get(), a2.size() * 4);
    out.push_back(state_tensor(name_ + ".absmax", io::DType::U8, {blocks}, q.data(), q.size()));
    out.push_back(state_tensor(name_ + ".quant_map", io::DType::F32, {16}, code.data(), code.size()));
    out.push_back(state_tensor(name_ + ".nested_absmax", io::DType::F32, {nested}, a2.data(), a2.size()));
    const std::array<float, 256>& dyn = backend::dynamic_code();
    out.push_back(state_tensor(name_ + ".nested_quant_map", io::DType::F32, {256}, dyn.data(), dyn.size()));
    json += ", \"nested_blocksize\": " + std::to_string(kNestedBlock) +
            ", \"nested_dtype\": \"float32\", \"nested_offset\": " + python_float_repr(view_.offset);
  } else {
    std::vector<float> a(static_cast<size_t>(blocks));
    be_->download(a.data(), absmax_.get(), a.size() * 4);
    out.push_back(state_tensor(name_ + ".absmax", io::DType::F32, {blocks}, a.data(), a.size()));
    out.push_back(state_tensor(name_ + ".quant_map", io::DType::F32, {16}, code.data(), code.size()));
  }
  json += "}";
  out.push_back(state_tensor(name_ + ".quant_state.bitsandbytes__" + backend::weight_format_name(view_.format),
                             io::DType::U8, {static_cast<int64_t>(json.size())},
                             reinterpret_cast<const uint8_t*>(json.data()), json.size()));
  return out;
}

std::vector<FrozenTensor> load_frozen(const io::WeightStore& store, const std::vector<FrozenSpec>& specs,
                                      backend::Backend& be, DType source_dtype, bool double_quant,
                                      int64_t chunk_elements,
                                      const std::function<void(size_t, size_t)>& progress) {
  const int64_t chunk = std::max<int64_t>(kQuantBlock, chunk_elements / kQuantBlock * kQuantBlock);
  std::vector<float> f32;
  std::vector<uint16_t> bf16;
  std::vector<FrozenTensor> out;
  out.reserve(specs.size());
  for (const FrozenSpec& spec : specs) {
    const io::TensorInfo& info = store.info(spec.name);
    SFT_CHECK(info.shape == spec.shape, store.file_of(spec.name).path().string(), ": tensor \"", spec.name,
              "\": shape ", io::shape_str(info.shape), ", expected ", io::shape_str(spec.shape));
    FrozenTensor t(be, spec.name, spec.shape, spec.format, double_quant);
    const int64_t n = info.numel();
    for (int64_t e0 = 0; e0 < n; e0 += chunk) {
      const int64_t m = std::min(chunk, n - e0);
      if (spec.format == WeightFormat::BF16) {
        bf16.resize(static_cast<size_t>(std::min(chunk, n)));
        store.read_bf16_range(spec.name, e0, m, bf16.data());
        t.store_bf16_chunk(e0, m, bf16.data());
      } else {
        f32.resize(static_cast<size_t>(std::min(chunk, n)));
        store.read_f32_range(spec.name, e0, m, f32.data());
        if (source_dtype == DType::BF16 && spec.format != WeightFormat::F32)
          for (int64_t i = 0; i < m; ++i) f32[i] = bf16_to_float(float_to_bf16(f32[i]));
        t.store_chunk(e0, m, f32.data());
      }
      store.release(spec.name, e0, m);
    }
    t.finish();
    out.push_back(std::move(t));
    if (progress) progress(out.size(), specs.size());
  }
  return out;
}

}  // namespace sft::model
