// model/frozen_weights.h: streamed loading into bf16 / 4-bit storage equals today's load path after conversion, chunk
// sizes do not change a bit, the storage policy, sizes, and one-line errors naming the tensor. (Bit-exactness of the
// 4-bit format against bitsandbytes itself: tests/model/test_frozen_weights.py.)
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "../data/temp_dir.h"
#include "backend/backend.h"
#include "backend/quant4.h"
#include "io/hf_folder.h"
#include "io/safetensors.h"
#include "model/frozen_weights.h"
#include "util/bf16.h"
#include "util/error.h"

namespace sft::model {
namespace {

using backend::DType;
using backend::WeightFormat;

std::vector<float> randn(size_t n, uint64_t seed, float sd) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, sd);
  std::vector<float> v(n);
  for (float& x : v) x = d(g);
  return v;
}

// A sharded folder: an fp32 matrix, a bf16 matrix, an f16 matrix and a 1-D tensor, in shards of ~40 KB.
struct Folder {
  data::testing::TempDir dir;
  std::vector<float> a, b, c;
  std::vector<uint16_t> b16, c16;
  Folder() : a(randn(70 * 130, 1, 0.05f)), b(randn(128 * 192, 2, 0.02f)), c(randn(33 * 64, 3, 0.1f)) {
    for (float x : b) b16.push_back(float_to_bf16(x));
    for (float x : c) c16.push_back(float_to_f16(x));
    std::vector<float> norm(130, 1.0f);
    io::write_weights(dir.path(),
                      {{"m.a.weight", io::DType::F32, {70, 130}, a.data()},
                       {"m.b.weight", io::DType::BF16, {128, 192}, b16.data()},
                       {"m.c.weight", io::DType::F16, {33, 64}, c16.data()},
                       {"m.norm.weight", io::DType::F32, {130}, norm.data()}},
                      40000);
  }
  std::vector<FrozenSpec> specs(WeightFormat f) const {
    return {{"m.a.weight", {70, 130}, f}, {"m.b.weight", {128, 192}, f}, {"m.c.weight", {33, 64}, f}};
  }
};

TEST(FrozenWeights, StreamedBf16EqualsTodaysLoadPathConverted) {
  Folder f;
  const io::WeightStore store = io::WeightStore::open(f.dir.path());
  ASSERT_GT(store.files().size(), 1u) << "the folder must be sharded";
  auto be = backend::make_cpu_backend();
  const std::vector<FrozenTensor> t = load_frozen(store, f.specs(WeightFormat::BF16), *be, DType::BF16, false, 100);
  ASSERT_EQ(t.size(), 3u);
  for (const FrozenTensor& x : t) {
    const int64_t n = x.shape()[0] * x.shape()[1];
    std::vector<float> today(static_cast<size_t>(n));
    store.read_f32(x.name(), today.data(), x.shape());  // today's path (fp32), read after the pages were released
    const std::vector<float> got = x.to_host(0, n, false);
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[i], bf16_to_float(float_to_bf16(today[i]))) << x.name() << " " << i;
    EXPECT_EQ(x.device_bytes(), n * 2);  // 2 B/param
    EXPECT_EQ(x.device_bytes(), FrozenTensor::bytes_for(WeightFormat::BF16, x.shape()[0], x.shape()[1], false));
  }
}

TEST(FrozenWeights, ChunkSizeAndBackendDoNotChangeABit) {
  Folder f;
  const io::WeightStore store = io::WeightStore::open(f.dir.path());
  auto fast = backend::make_cpu_backend();
  auto ref = backend::make_cpu_reference_backend();
  for (WeightFormat fmt : {WeightFormat::NF4, WeightFormat::FP4})
    for (bool dq : {false, true}) {
      SCOPED_TRACE(std::string(backend::weight_format_name(fmt)) + (dq ? " dq" : ""));
      const auto whole = load_frozen(store, f.specs(fmt), *fast, DType::BF16, dq);
      const auto chunked = load_frozen(store, f.specs(fmt), *ref, DType::BF16, dq, 64 * 3);
      for (size_t i = 0; i < whole.size(); ++i) {
        const auto sa = whole[i].bnb_state("bfloat16"), sb = chunked[i].bnb_state("bfloat16");
        ASSERT_EQ(sa.size(), sb.size());
        for (size_t k = 0; k < sa.size(); ++k) {
          EXPECT_EQ(sa[k].name, sb[k].name);
          EXPECT_EQ(sa[k].bytes, sb[k].bytes) << sa[k].name;
        }
      }
    }
}

TEST(FrozenWeights, FromValuesQuantisesWithinTheFormatsBound) {
  // NF4's largest gap between neighbouring codes is 0.3038 (0.7230 -> 1.0), so |dequantised - value| <= half of it
  // times the block's absmax; double quantisation adds the error of the 8-bit absmax (< 1% of it here).
  auto be = backend::make_cpu_backend();
  const std::vector<float> v = randn(48 * 128, 5, 0.03f);
  for (bool dq : {false, true}) {
    const FrozenTensor t = FrozenTensor::from_values(*be, "w", {48, 128}, v.data(), WeightFormat::NF4, dq);
    EXPECT_EQ(t.device_bytes(), dq ? 3072 + 96 + 4 : 3072 + 96 * 4);  // packed + per-block scales (+ nested)
    EXPECT_EQ(t.device_bytes(), FrozenTensor::bytes_for(WeightFormat::NF4, 48, 128, dq));
    const std::vector<float> got = t.to_host(0, 48 * 128, false);
    for (int64_t b = 0; b < 96; ++b) {
      float amax = 0;
      for (int64_t i = b * 64; i < b * 64 + 64; ++i) amax = std::max(amax, std::fabs(v[i]));
      for (int64_t i = b * 64; i < b * 64 + 64; ++i)
        ASSERT_LE(std::fabs(got[i] - v[i]), amax * (0.1519f + (dq ? 0.02f : 0.0f))) << i;
    }
  }
}

TEST(FrozenWeights, StoragePolicyIsBitsandbytesForACausalLm) {
  FrozenStorage s;
  EXPECT_EQ(frozen_format_for(TensorRole::QProj, s), WeightFormat::BF16);
  EXPECT_EQ(frozen_format_for(TensorRole::Embedding, s), WeightFormat::BF16);
  s.load_in_4bit = true;
  s.quant_type = WeightFormat::FP4;
  EXPECT_EQ(frozen_format_for(TensorRole::DownProj, s), WeightFormat::FP4);
  EXPECT_EQ(frozen_format_for(TensorRole::Embedding, s), WeightFormat::BF16);  // llm_int8_skip_modules default
  EXPECT_EQ(frozen_format_for(TensorRole::LmHead, s), WeightFormat::BF16);
  EXPECT_EQ(frozen_format_for(TensorRole::QBias, s), WeightFormat::BF16);
  s.dtype = DType::F32;
  EXPECT_EQ(frozen_format_for(TensorRole::LmHead, s), WeightFormat::F32);
  EXPECT_EQ(parse_quant_type("nf4"), WeightFormat::NF4);
  try {
    parse_quant_type("int4");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--bnb_4bit_quant_type"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("int4"), std::string::npos);
  }
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(FrozenWeights, BadInputIsAOneLineErrorNamingTheTensor) {
  Folder f;
  const io::WeightStore store = io::WeightStore::open(f.dir.path());
  auto be = backend::make_cpu_backend();
  std::string e = error_of([&] { load_frozen(store, {{"m.a.weight", {130, 70}, WeightFormat::NF4}}, *be, DType::F32, false); });
  EXPECT_NE(e.find("m.a.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[70, 130]"), std::string::npos) << e;
  EXPECT_NE(e.find(".safetensors"), std::string::npos) << e;
  e = error_of([&] { load_frozen(store, {{"m.norm.weight", {130}, WeightFormat::BF16}}, *be, DType::F32, false); });
  EXPECT_NE(e.find("m.norm.weight"), std::string::npos) << e;
  e = error_of([&] { load_frozen(store, {{"m.missing", {2, 2}, WeightFormat::BF16}}, *be, DType::F32, false); });
  EXPECT_NE(e.find("m.missing"), std::string::npos) << e;
  std::vector<float> v(64 * 2, 0.5f);
  v[77] = INFINITY;
  e = error_of([&] { FrozenTensor::from_values(*be, "layers.3.w", {2, 64}, v.data(), WeightFormat::NF4, false); });
  EXPECT_NE(e.find("layers.3.w"), std::string::npos) << e;
  EXPECT_NE(e.find("77"), std::string::npos) << e;
  e = error_of([&] { store.release("m.a.weight", 9000, 200); });
  EXPECT_NE(e.find("m.a.weight"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
}

TEST(FrozenWeights, ReleasedPagesReadBackUnchanged) {
  Folder f;
  const io::WeightStore store = io::WeightStore::open(f.dir.path());
  std::vector<float> before(70 * 130), after(70 * 130);
  store.read_f32("m.a.weight", before.data());
  store.release("m.a.weight", 0, 70 * 130);
  store.release("m.a.weight", 5, 1);  // inside a page that is already released: harmless
  store.read_f32_range("m.a.weight", 0, 70 * 130, after.data());
  EXPECT_EQ(before, after);
  std::vector<float> part(10);
  store.read_f32_range("m.a.weight", 100, 10, part.data());
  EXPECT_TRUE(std::equal(part.begin(), part.end(), before.begin() + 100));
}

}  // namespace
}  // namespace sft::model
