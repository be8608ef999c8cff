// GGUF container (io/gguf.h): writer -> reader round trip of every metadata type and tensor type, the block codecs
// against plain scalar formulas on random data, and every malformed-file rule (each a one-line sft::Error naming the
// file). gguf-py and llama.cpp read our files in tests/io/test_gguf_*.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>

#include "io/gguf.h"
#include "util/bf16.h"
#include "util/error.h"
#include "util/file_util.h"

namespace sft::io {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path p;
  TempDir() {
    p = fs::temp_directory_path() / ("sft-gguf-test-" + std::to_string(::getpid()) + "-" +
                                     std::to_string(std::random_device{}()));
    fs::create_directories(p);
  }
  ~TempDir() { fs::remove_all(p); }
};

std::vector<float> random_values(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

GgufValue nested() {
  GgufValue outer;
  outer.type = GgufType::ARRAY;
  outer.elem = GgufType::ARRAY;
  outer.arrays = {GgufValue::i32s({1, -2, 3}), GgufValue::strings({"a", ""})};
  outer.count = 2;
  return outer;
}

std::vector<std::pair<std::string, GgufValue>> all_types_metadata() {
  std::vector<std::pair<std::string, GgufValue>> md;
  auto scalar = [&](const char* key, GgufType t, uint64_t u, int64_t i, double f) {
    GgufValue v;
    v.type = t;
    v.u = u;
    v.i = i;
    v.f = f;
    md.emplace_back(key, v);
  };
  scalar("t.u8", GgufType::UINT8, 200, 0, 0);
  scalar("t.i8", GgufType::INT8, 0, -100, 0);
  scalar("t.u16", GgufType::UINT16, 60000, 0, 0);
  scalar("t.i16", GgufType::INT16, 0, -30000, 0);
  scalar("t.u32", GgufType::UINT32, 4000000000u, 0, 0);
  scalar("t.i32", GgufType::INT32, 0, -2000000000, 0);
  scalar("t.u64", GgufType::UINT64, 1ull << 40, 0, 0);
  scalar("t.i64", GgufType::INT64, 0, -(int64_t{1} << 40), 0);
  scalar("t.f32", GgufType::FLOAT32, 0, 0, 0.1f);
  scalar("t.f64", GgufType::FLOAT64, 0, 0, 0.1);
  md.emplace_back("t.bool", GgufValue::boolean(true));
  md.emplace_back("t.str", GgufValue::str("h\xC3\xA9llo"));
  md.emplace_back("t.strs", GgufValue::strings({"x", "", "\xE2\x82\xAC"}));
  md.emplace_back("t.f32s", GgufValue::f32s({1.5f, -2.25f}));
  md.emplace_back("t.nested", nested());
  return md;
}

TEST(Gguf, RoundTripEveryMetadataAndTensorType) {
  TempDir tmp;
  const fs::path p = tmp.p / "m.gguf";
  const auto a = random_values(64 * 3, 1), b = random_values(96, 2), c = random_values(40, 3), d = random_values(5, 4);
  std::vector<GgufTensorToWrite> ts = {
      {"q8", GgmlType::Q8_0, {3, 64}, [&](std::vector<float>& v) { v = a; }},
      {"h", GgmlType::F16, {96}, [&](std::vector<float>& v) { v = b; }},
      {"bf", GgmlType::BF16, {4, 10}, [&](std::vector<float>& v) { v = c; }},
      {"f", GgmlType::F32, {5}, [&](std::vector<float>& v) { v = d; }},
  };
  write_gguf(p, all_types_metadata(), ts);
  const GgufFile f(p);
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  ASSERT_EQ(f.metadata().size(), all_types_metadata().size());
  EXPECT_EQ(f.get("t.u8").u, 200u);
  EXPECT_EQ(f.get("t.i8").i, -100);
  EXPECT_EQ(f.get_int("t.u16"), 60000);
  EXPECT_EQ(f.get_int("t.i16"), -30000);
  EXPECT_EQ(f.get_int("t.u32"), 4000000000ll);
  EXPECT_EQ(f.get_int("t.i32"), -2000000000);
  EXPECT_EQ(f.get_int("t.u64"), int64_t{1} << 40);
  EXPECT_EQ(f.get_int("t.i64"), -(int64_t{1} << 40));
  EXPECT_EQ(f.get_float("t.f32"), static_cast<double>(0.1f));  // a FLOAT32 stays the float it was
  EXPECT_EQ(f.get_float("t.f64"), 0.1);
  EXPECT_TRUE(f.get_bool("t.bool", false));
  EXPECT_EQ(f.get_string("t.str"), "h\xC3\xA9llo");
  EXPECT_EQ(f.get_array("t.strs", GgufType::STRING).strs, (std::vector<std::string>{"x", "", "\xE2\x82\xAC"}));
  EXPECT_EQ(f.get_array("t.f32s", GgufType::FLOAT32).float_at(1), -2.25);
  const GgufValue& n = f.get_array("t.nested", GgufType::ARRAY);
  ASSERT_EQ(n.arrays.size(), 2u);
  EXPECT_EQ(n.arrays[0].int_at(1), -2);
  EXPECT_EQ(n.arrays[1].strs[0], "a");
  EXPECT_THROW(f.get_int("t.str"), Error);
  EXPECT_THROW(f.get_string("absent"), Error);

  ASSERT_EQ(f.tensors().size(), 4u);
  for (const auto& t : f.tensors()) EXPECT_EQ(t.offset % 32, 0u) << t.name;
  const GgufTensorInfo* q = f.find_tensor("q8");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->dims, (std::vector<int64_t>{64, 3}));  // ggml order
  EXPECT_EQ(q->shape(), (std::vector<int64_t>{3, 64}));
  EXPECT_EQ(q->nbytes, 3u * 2 * 34);
  std::vector<float> out(192);
  f.read_f32(*q, out.data());
  for (int blk = 0; blk < 6; ++blk) {  // each value within half a quantisation step of the input
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(a[blk * 32 + j]));
    const float step = f16_to_float(float_to_f16(amax / 127.0f));
    for (int j = 0; j < 32; ++j) EXPECT_NEAR(out[blk * 32 + j], a[blk * 32 + j], 0.5f * step + 2e-3f * amax);
  }
  out.resize(96);
  f.read_f32(*f.find_tensor("h"), out.data());
  for (size_t k = 0; k < 96; ++k) EXPECT_EQ(out[k], f16_to_float(float_to_f16(b[k])));
  out.resize(40);
  f.read_f32(*f.find_tensor("bf"), out.data());
  for (size_t k = 0; k < 40; ++k) EXPECT_EQ(out[k], bf16_to_float(float_to_bf16(c[k])));
  out.resize(5);
  f.read_f32(*f.find_tensor("f"), out.data());
  EXPECT_EQ(out, d);
}

// The Q8_0 rule written out independently: d = amax / 127 in float32, q = round half away from zero of x / d as
// x * (1 / d), d stored as IEEE half. Random blocks at several scales, plus exact ties and an all-zero block.
TEST(Gguf, Q8_0MatchesTheScalarRuleOnRandomBlocks) {
  for (float scale : {1e-3f, 0.02f, 1.0f, 300.0f}) {
    auto x = random_values(32 * 64, 7, scale);
    for (int j = 0; j < 32; ++j) x[j] = 0.0f;                          // block 0: zeros
    for (int j = 0; j < 32; ++j) x[32 + j] = (j - 16) * 0.5f + 0.25f;  // block 1: ties at x/d = k + 0.5 happen
    std::vector<uint8_t> q(64 * 34);
    quantize_q8_0(x.data(), static_cast<int64_t>(x.size()), q.data());
    for (int b = 0; b < 64; ++b) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
      const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
      uint16_t dh;
      std::memcpy(&dh, &q[b * 34], 2);
      ASSERT_EQ(dh, float_to_f16(d)) << "block " << b;
      for (int j = 0; j < 32; ++j) {
        const float v = x[b * 32 + j] * id;
        const float r = v < 0 ? -std::floor(-v + 0.5f) : std::floor(v + 0.5f);
        ASSERT_EQ(static_cast<int8_t>(q[b * 34 + 2 + j]), static_cast<int8_t>(r)) << "block " << b << " j " << j;
      }
    }
  }
}

// Q4_0 / Q4_1 / Q8_0 decoding against the block layouts written out: nibble j of byte k is element k (low) or
// k + 16 (high); Q4_0 x = d (q - 8), Q4_1 x = d q + m, Q8_0 x = d q.
TEST(Gguf, BlockDecodersFollowTheLayouts) {
  std::mt19937 g(5);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int trial = 0; trial < 50; ++trial) {
    const float d = std::ldexp(static_cast<float>(byte(g) + 1), -8), m = -std::ldexp(static_cast<float>(byte(g)), -6);
    const uint16_t dh = float_to_f16(d), mh = float_to_f16(m);
    uint8_t q40[18], q41[20], q80[34];
    std::memcpy(q40, &dh, 2);
    std::memcpy(q41, &dh, 2);
    std::memcpy(q41 + 2, &mh, 2);
    std::memcpy(q80, &dh, 2);
    for (int k = 0; k < 16; ++k) q40[2 + k] = q41[4 + k] = static_cast<uint8_t>(byte(g));
    for (int k = 0; k < 32; ++k) q80[2 + k] = static_cast<uint8_t>(byte(g));
    float o40[32], o41[32], o80[32];
    dequantize(GgmlType::Q4_0, q40, 32, o40);
    dequantize(GgmlType::Q4_1, q41, 32, o41);
    dequantize(GgmlType::Q8_0, q80, 32, o80);
    const float dd = f16_to_float(dh), mm = f16_to_float(mh);
    for (int j = 0; j < 32; ++j) {
      const int nib = j < 16 ? (q40[2 + j] & 15) : (q40[2 + j - 16] >> 4);
      EXPECT_EQ(o40[j], dd * static_cast<float>(nib - 8));
      const float prod = dd * static_cast<float>(nib);
      EXPECT_EQ(o41[j], prod + mm);
      EXPECT_EQ(o80[j], static_cast<float>(static_cast<int8_t>(q80[2 + j])) * dd);
    }
  }
}

std::string file_bytes(const fs::path& p) { return read_file(p); }

// A small valid file to corrupt.
std::string small_file(const TempDir& tmp) {
  const fs::path p = tmp.p / "small.gguf";
  const auto v = random_values(64, 9);
  write_gguf(p, {{"general.architecture", GgufValue::str("llama")}, {"a.list", GgufValue::i32s({1, 2, 3})}},
             {{"w", GgmlType::Q8_0, {2, 32}, [&](std::vector<float>& o) { o = v; }},
              {"n", GgmlType::F32, {4}, [&](std::vector<float>& o) { o.assign(4, 1.0f); }}});
  return file_bytes(p);
}

void expect_error(const std::string& bytes, const std::string& needle) {
  try {
    GgufFile::from_bytes(bytes, "bad.gguf");
    ADD_FAILURE() << "accepted a file that should fail with: " << needle;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("bad.gguf"), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

template <class T>
void put(std::string& s, size_t at, T v) {
  std::memcpy(s.data() + at, &v, sizeof(T));
}

TEST(Gguf, MalformedFilesFailNamingFileAndWhat) {
  TempDir tmp;
  const std::string good = small_file(tmp);
  ASSERT_NO_THROW(GgufFile::from_bytes(good, "ok.gguf"));
  std::string s = good;
  s[0] = 'X';
  expect_error(s, "magic");
  s = good;
  put<uint32_t>(s, 4, 1);
  expect_error(s, "version 1");
  s = good;
  put<uint64_t>(s, 8, uint64_t{1} << 60);
  expect_error(s, "tensor count");
  s = good;
  put<uint64_t>(s, 16, uint64_t{1} << 60);
  expect_error(s, "metadata count");
  // first key "general.architecture": length at 24, type at 24+8+20 = 52
  s = good;
  put<uint32_t>(s, 52, 77);
  expect_error(s, "invalid GGUF type 77");
  s = good;
  put<uint64_t>(s, 24, uint64_t{1} << 40);
  expect_error(s, "truncated");
  // second key "a.list" (after the first value: 56 + 8 + 5 = 69): length 8, 6 bytes, type 4, elem type 4, count 8
  s = good;
  put<uint64_t>(s, 69 + 8 + 6 + 4 + 4, uint64_t{1} << 61);
  expect_error(s, "does not fit");
  // duplicate key: rename the second key to the first one's length-6 prefix cannot collide; write a fresh file
  {
    const fs::path p = tmp.p / "dup.gguf";
    EXPECT_THROW(write_gguf(p, {{"k", GgufValue::u32(1)}, {"k", GgufValue::u32(2)}}, {}), Error);
    EXPECT_FALSE(fs::exists(p));
  }
  // every truncation before the end of the last tensor's data fails cleanly, naming the file (the padding after
  // it, 16 bytes here, is not needed: llama.cpp maps the file and checks only the tensor bytes)
  const size_t data_end = good.size() - 16;
  EXPECT_NO_THROW(GgufFile::from_bytes(good.substr(0, data_end), "ok.gguf"));
  for (size_t n = 0; n < data_end; n += 7) {
    try {
      GgufFile::from_bytes(good.substr(0, n), "bad.gguf");
      ADD_FAILURE() << "truncated at " << n << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("bad.gguf"), std::string::npos);
    }
  }
}

TEST(Gguf, TensorInfoRules) {
  TempDir tmp;
  const std::string good = small_file(tmp);
  const GgufFile f = GgufFile::from_bytes(good, "ok.gguf");
  // Locate tensor "w"'s info: name length 1, "w", n_dims, dims, type, offset.
  const size_t at = good.find(std::string("\x01\0\0\0\0\0\0\0w", 9));
  ASSERT_NE(at, std::string::npos);
  const size_t ndims = at + 9, dim0 = ndims + 4, type = dim0 + 16, offset = type + 4;
  std::string s = good;
  put<uint32_t>(s, ndims, 9);
  expect_error(s, "dimensions");
  s = good;
  put<int64_t>(s, dim0, 31);
  expect_error(s, "block size");
  s = good;
  put<int64_t>(s, dim0, -32);
  expect_error(s, "negative");
  s = good;
  put<uint32_t>(s, type, 5);
  expect_error(s, "unknown ggml type 5");
  s = good;
  put<uint64_t>(s, offset, 32);
  expect_error(s, "offset");
  s = good;
  put<uint32_t>(s, type, static_cast<uint32_t>(GgmlType::F32));  // 64 floats: 256 bytes, past the end
  expect_error(s, "past the end");
  // an unsupported but valid type parses; decoding it names the tensor
  s = good;
  put<uint32_t>(s, type, static_cast<uint32_t>(GgmlType::Q4_K));
  put<int64_t>(s, dim0, 256);
  put<int64_t>(s, dim0 + 8, 1);
  std::string padded = s + std::string(1024, '\0');
  // the second tensor's offset must follow the first's padded size (144 bytes -> 160)
  const size_t at_n = padded.find(std::string("\x01\0\0\0\0\0\0\0n", 9));
  put<uint64_t>(padded, at_n + 9 + 4 + 8 + 4, 160);
  const GgufFile g = GgufFile::from_bytes(padded, "q4k.gguf");
  std::vector<float> out(256);
  try {
    g.read_f32(*g.find_tensor("w"), out.data());
    ADD_FAILURE() << "Q4_K decoded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor w has type Q4_K"), std::string::npos) << e.what();
  }
}

TEST(Gguf, RandomMutationsParseOrFailCleanly) {
  TempDir tmp;
  const std::string good = small_file(tmp);
  std::mt19937 g(123);
  int accepted = 0;
  for (int it = 0; it < 3000; ++it) {
    std::string s = good;
    const int flips = 1 + static_cast<int>(g() % 4);
    for (int k = 0; k < flips; ++k) s[g() % s.size()] = static_cast<char>(g());
    if (g() % 5 == 0) s.resize(g() % s.size());
    try {
      const GgufFile f = GgufFile::from_bytes(s, "mut.gguf");
      for (const auto& t : f.tensors())
        if (ggml_type_readable(t.type) && t.numel <= (1 << 16)) {
          std::vector<float> out(static_cast<size_t>(t.numel));
          f.read_f32(t, out.data());
        }
      ++accepted;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("mut.gguf"), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(accepted, 0);
}

TEST(Gguf, WriterLeavesNothingWhenAProducerFails) {
  TempDir tmp;
  const fs::path p = tmp.p / "out.gguf";
  std::vector<GgufTensorToWrite> ts = {
      {"a", GgmlType::F32, {4}, [](std::vector<float>& v) { v.assign(4, 1.0f); }},
      {"b", GgmlType::F32, {4}, [](std::vector<float>&) { throw Error("tensor b: read failed"); }}};
  EXPECT_THROW(write_gguf(p, {}, ts), Error);
  EXPECT_FALSE(fs::exists(p));
  EXPECT_TRUE(fs::is_empty(tmp.p)) << "a temp file was left behind";
  ts[1].produce = [](std::vector<float>& v) { v.assign(3, 1.0f); };  // wrong count
  EXPECT_THROW(write_gguf(p, {}, ts), Error);
  EXPECT_TRUE(fs::is_empty(tmp.p));
}

TEST(Gguf, IsGgufFileChecksTheMagic) {
  TempDir tmp;
  write_file_atomic(tmp.p / "x.gguf", "NOPE");
  EXPECT_FALSE(is_gguf_file(tmp.p / "x.gguf"));
  EXPECT_FALSE(is_gguf_file(tmp.p));
  write_gguf(tmp.p / "y.gguf", {}, {});
  EXPECT_TRUE(is_gguf_file(tmp.p / "y.gguf"));
  EXPECT_EQ(GgufFile(tmp.p / "y.gguf").tensors().size(), 0u);
}

}  // namespace
}  // namespace sft::io
