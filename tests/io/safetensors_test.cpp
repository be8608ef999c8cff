// safetensors reader/writer: conversions on random values, every validation rule with a hand-made malformed file
// (each must give a clear sft::Error naming the file, never a crash), a randomised byte-flip / truncation loop, and
// WeightStore over single, sharded and pickle-only folders. Parity with the Python `safetensors` package itself is in
// test_safetensors_roundtrip.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "io/hf_folder.h"
#include "io/safetensors.h"
#include "util/bf16.h"
#include "util/error.h"
#include "util/file_util.h"

using namespace sft::io;
namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("sft_io_test_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

// A raw file: 8-byte length + header text + data bytes (no validation, no padding).
fs::path raw_file(const fs::path& dir, const std::string& header, const std::string& data, uint64_t n_override = 0) {
  static int counter = 0;
  fs::path p = dir / ("f" + std::to_string(counter++) + ".safetensors");
  std::ofstream f(p, std::ios::binary);
  std::string bytes = le64(n_override ? n_override : header.size()) + header + data;
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return p;
}

// Opening must throw sft::Error whose message names the file and contains `needle`.
void expect_invalid(const fs::path& p, const std::string& needle) {
  try {
    SafetensorsFile f(p);
    FAIL() << "accepted an invalid file, expected error containing '" << needle << "'";
  } catch (const sft::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(p.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "expected '" << needle << "' in: " << msg;
  }
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 3.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

const std::string kTwo = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})";

}  // namespace

TEST(Safetensors, WriteThenReadAllFloatDtypes) {
  TempDir tmp;
  auto f32 = random_floats(37, 1);
  std::vector<uint16_t> bf16(f32.size()), f16(f32.size());
  for (size_t i = 0; i < f32.size(); ++i) {
    bf16[i] = sft::float_to_bf16(f32[i]);
    f16[i] = sft::float_to_f16(f32[i]);
  }
  std::vector<int32_t> ints = {1, -2, 3};
  fs::path p = tmp.path() / "m.safetensors";
  write_safetensors(p,
                    {{"z.f32", DType::F32, {37}, f32.data()},
                     {"a.bf16", DType::BF16, {1, 37}, bf16.data()},
                     {"m.f16", DType::F16, {37, 1}, f16.data()},
                     {"i32", DType::I32, {3}, ints.data()},
                     {"empty", DType::F32, {0, 5}, nullptr},
                     {"scalar", DType::F32, {}, f32.data()}},
                    {{"note", "x"}});
  // Header: padded to 8 bytes with spaces, data section right after.
  std::string bytes = sft::read_file(p);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes[8 + n - 1] == ' ' || bytes[8 + n - 1] == '}', true);

  SafetensorsFile f(p);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "x");
  ASSERT_EQ(f.tensors().size(), 6u);
  EXPECT_EQ(f.tensors()[0].name, "a.bf16");  // sorted by name
  const TensorInfo* t = f.find("a.bf16");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->shape, (std::vector<int64_t>{1, 37}));
  EXPECT_EQ(f.find("nope"), nullptr);
  EXPECT_EQ(f.find("empty")->numel(), 0);
  EXPECT_EQ(f.find("scalar")->numel(), 1);

  std::vector<float> out(37);
  convert_to_f32(DType::F32, f.data(*f.find("z.f32")), 37, out.data(), "t");
  EXPECT_EQ(std::memcmp(out.data(), f32.data(), 37 * 4), 0);
  convert_to_f32(DType::BF16, f.data(*f.find("a.bf16")), 37, out.data(), "t");
  for (size_t i = 0; i < 37; ++i) EXPECT_EQ(out[i], sft::bf16_to_float(bf16[i]));
  convert_to_f32(DType::F16, f.data(*f.find("m.f16")), 37, out.data(), "t");
  for (size_t i = 0; i < 37; ++i) EXPECT_EQ(out[i], sft::f16_to_float(f16[i]));
  // bf16 reads: F32 rounds to nearest even (same as torch), BF16 is copied, F16 goes through float.
  std::vector<uint16_t> ob(37);
  convert_to_bf16(DType::F32, f.data(*f.find("z.f32")), 37, ob.data(), "t");
  EXPECT_EQ(ob, bf16);
  convert_to_bf16(DType::F16, f.data(*f.find("m.f16")), 37, ob.data(), "t");
  for (size_t i = 0; i < 37; ++i) EXPECT_EQ(ob[i], sft::float_to_bf16(sft::f16_to_float(f16[i])));
  EXPECT_THROW(convert_to_f32(DType::I32, f.data(*f.find("i32")), 3, out.data(), "t"), sft::Error);

  EXPECT_THROW(write_safetensors(tmp.path() / "dup.safetensors",
                                 {{"x", DType::F32, {1}, f32.data()}, {"x", DType::F32, {1}, f32.data()}}),
               sft::Error);
  EXPECT_THROW(write_safetensors(tmp.path() / "neg.safetensors", {{"x", DType::F32, {-1}, f32.data()}}), sft::Error);
  EXPECT_FALSE(fs::exists(tmp.path() / "dup.safetensors"));
}

TEST(Safetensors, MinimalValidFiles) {
  TempDir tmp;
  SafetensorsFile empty(raw_file(tmp.path(), "{}", ""));
  EXPECT_TRUE(empty.tensors().empty());
  SafetensorsFile two(raw_file(tmp.path(), kTwo, std::string(12, '\1')));
  EXPECT_EQ(two.tensors().size(), 2u);
  // Offsets listed out of order in the JSON are fine as long as they tile the data section.
  SafetensorsFile rev(raw_file(
      tmp.path(), R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]},"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})",
      std::string(12, '\0')));
  EXPECT_EQ(rev.find("a")->dtype, DType::I64);
  // Header padded with trailing spaces (what the reference writer does).
  SafetensorsFile pad(raw_file(tmp.path(), kTwo + "    ", std::string(12, '\0')));
  EXPECT_EQ(pad.tensors().size(), 2u);
}

TEST(Safetensors, MalformedHeadersGiveClearErrors) {
  TempDir tmp;
  const fs::path d = tmp.path();
  const std::string data12(12, '\0');
  // Size / length field.
  {
    fs::path p = d / "short.safetensors";
    std::ofstream(p, std::ios::binary) << "abc";
    expect_invalid(p, "8-byte header length");
  }
  expect_invalid(raw_file(d, kTwo, data12, 200'000'000), "100 MB");
  expect_invalid(raw_file(d, kTwo, data12, kTwo.size() + 100), "past the end");
  expect_invalid(raw_file(d, kTwo.substr(0, 30), ""), "");  // truncated header: not valid JSON or past end
  expect_invalid(raw_file(d, kTwo, data12.substr(0, 7)), "data section");  // truncated data
  expect_invalid(raw_file(d, kTwo, data12 + "xx"), "data section");        // trailing bytes
  // JSON shape.
  expect_invalid(raw_file(d, "{\"a\":", ""), "not valid JSON");
  expect_invalid(raw_file(d, "[1,2,3]", ""), "must be a JSON object");
  expect_invalid(raw_file(d, " {}", ""), "must be a JSON object");
  expect_invalid(raw_file(d, R"({"a":[[[[[[[[[[[[[[1]]]]]]]]]]]]]})", ""), "nested");
  expect_invalid(raw_file(d, R"({"a":5})", ""), "entry must be an object");
  expect_invalid(raw_file(d, R"({"a":{"shape":[1],"data_offsets":[0,4]}})", std::string(4, 0)), "\"dtype\"");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", std::string(4, 0)), "\"shape\"");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[1]}})", std::string(4, 0)), "data_offsets");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", std::string(4, 0)),
                 "data_offsets");
  expect_invalid(raw_file(d, R"({"__metadata__":{"format":5}})", ""), "__metadata__");
  expect_invalid(raw_file(d, R"({"__metadata__":[1]})", ""), "__metadata__");
  // Dtypes.
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]}})", std::string(4, 0)),
                 "unknown safetensors dtype \"F8_E4M3\"");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", std::string(4, 0)),
                 "tensor \"a\"");
  expect_invalid(raw_file(d, R"({"a":{"dtype":3,"shape":[1],"data_offsets":[0,4]}})", std::string(4, 0)), "dtype");
  // Numbers: strings, negatives, floats, booleans, overflow.
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}})", std::string(4, 0)),
                 "non-negative integer");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":["0",4]}})", std::string(4, 0)),
                 "data_offsets[0]");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", std::string(4, 0)),
                 "non-negative integer");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}})", std::string(4, 0)),
                 "non-negative integer");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}})", std::string(4, 0)),
                 "non-negative integer");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]}})",
                          std::string(4, 0)),
                 "too large");
  // A shape whose byte count overflows 64 bits must not wrap around to the given size.
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})", ""),
                 "does not match");
  // Sizes and offsets.
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}})", std::string(4, 0)),
                 "does not match data_offsets");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,4]}})", std::string(4, 0)),
                 "does not match data_offsets");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", std::string(4, 0)),
                 "begin > end");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", std::string(8, 0)),
                 "gap");  // does not start at 0
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          std::string(8, 0)),
                 "overlaps");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                          std::string(12, 0)),
                 "gap");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                          std::string(8, 0)),
                 "duplicate key \"a\"");
  expect_invalid(raw_file(d, R"({"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})",
                          std::string(4, 0)),
                 "duplicate key \"dtype\"");
  // Not a file at all.
  EXPECT_THROW(SafetensorsFile(d / "missing.safetensors"), sft::Error);
}

TEST(Safetensors, RandomByteFlipsNeverCrash) {
  TempDir tmp;
  auto vals = random_floats(24, 7);
  std::vector<uint16_t> half(24);
  for (size_t i = 0; i < 24; ++i) half[i] = sft::float_to_bf16(vals[i]);
  fs::path good = tmp.path() / "good.safetensors";
  write_safetensors(good, {{"model.a", DType::F32, {4, 6}, vals.data()}, {"model.b", DType::BF16, {24}, half.data()}});
  const std::string orig = sft::read_file(good);
  uint64_t n = 0;
  std::memcpy(&n, orig.data(), 8);
  std::mt19937 rng(12345);
  // The 3000 mutated files go to tmpfs when there is one: on a disk-backed /tmp rewriting a file 3000 times costs
  // seconds of I/O wait for nothing.
  std::error_code ec;
  fs::path fuzz_dir = fs::is_directory("/dev/shm", ec) ? fs::path("/dev/shm") : tmp.path();
  fuzz_dir /= "sft_io_fuzz_" + std::to_string(std::random_device{}());
  fs::create_directories(fuzz_dir);
  struct Cleanup {
    fs::path p;
    ~Cleanup() { std::error_code e; fs::remove_all(p, e); }
  } cleanup{fuzz_dir};
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string bytes = orig;
    const int mode = iter % 4;
    if (mode == 3) {
      bytes.resize(std::uniform_int_distribution<size_t>(0, bytes.size() - 1)(rng));  // truncation
    } else {
      // Mostly flip inside the header (where the structure is), sometimes the length field, rarely the data.
      const int flips = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < flips; ++k) {
        size_t pos = mode == 0 ? rng() % 8 : (mode == 1 ? 8 + rng() % n : rng() % bytes.size());
        static const char interesting[] = "{}[]\",:0123456789-eE. \\\x00\xff";
        bytes[pos] = (rng() % 2) ? static_cast<char>(rng()) : interesting[rng() % (sizeof(interesting) - 1)];
      }
    }
    fs::path p = fuzz_dir / "fuzz.safetensors";
    {
      std::ofstream f(p, std::ios::binary | std::ios::trunc);
      f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    try {
      SafetensorsFile f(p);
      // Whatever is accepted must be fully readable within the mapped bytes.
      for (const auto& t : f.tensors()) {
        ASSERT_LE(t.end, bytes.size()) << t.name;
        if (t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::F16) {
          std::vector<float> out(static_cast<size_t>(t.numel()));
          convert_to_f32(t.dtype, f.data(t), t.numel(), out.data(), t.name);
        }
      }
      ++accepted;
    } catch (const sft::Error& e) {
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
      ++rejected;
    }
  }
  // Both outcomes must occur: flips inside tensor names or data keep a file valid; most break it.
  EXPECT_GT(accepted, 10);
  EXPECT_GT(rejected, 1000);
}

TEST(WeightStore, SingleShardedPickleAndErrors) {
  TempDir tmp;
  auto a = random_floats(6, 3), b = random_floats(4, 4), c = random_floats(8, 5);
  // Single file.
  fs::path single = tmp.path() / "single";
  fs::create_directories(single);
  write_safetensors(single / "model.safetensors", {{"x.a", DType::F32, {2, 3}, a.data()}});
  WeightStore ws = WeightStore::open(single);
  EXPECT_TRUE(ws.has("x.a"));
  EXPECT_FALSE(ws.has("x.b"));
  std::vector<float> out(6);
  ws.read_f32("x.a", out.data(), {2, 3});
  EXPECT_EQ(out, a);
  try {
    ws.read_f32("x.a", out.data(), {3, 2});
    FAIL();
  } catch (const sft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("shape [2, 3], expected [3, 2]"), std::string::npos) << e.what();
  }
  try {
    ws.info("lm_head.weight");
    FAIL();
  } catch (const sft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("lm_head.weight"), std::string::npos) << e.what();
  }

  // Sharded through write_weights (tiny shard limit: one tensor per shard), read back through the index.
  fs::path sharded = tmp.path() / "sharded";
  std::vector<uint16_t> cb(8);
  for (size_t i = 0; i < 8; ++i) cb[i] = sft::float_to_bf16(c[i]);
  auto files = write_weights(sharded,
                             {{"x.a", DType::F32, {2, 3}, a.data()},
                              {"x.b", DType::F32, {4}, b.data()},
                              {"x.c", DType::BF16, {8}, cb.data()}},
                             20);
  EXPECT_EQ(files.size(), 4u);
  EXPECT_TRUE(fs::exists(sharded / "model-00001-of-00003.safetensors"));
  EXPECT_TRUE(fs::exists(sharded / "model.safetensors.index.json"));
  auto index = nlohmann::json::parse(sft::read_file(sharded / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 24 + 16 + 16);
  EXPECT_EQ(index["weight_map"]["x.c"], "model-00003-of-00003.safetensors");
  WeightStore sh = WeightStore::open(sharded);
  EXPECT_EQ(sh.names(), (std::vector<std::string>{"x.a", "x.b", "x.c"}));
  EXPECT_EQ(sh.files().size(), 3u);
  std::vector<float> oc(8);
  sh.read_f32("x.c", oc.data());
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(oc[i], sft::bf16_to_float(cb[i]));
  std::vector<uint16_t> ob(4);
  sh.read_bf16("x.b", ob.data());
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(ob[i], sft::float_to_bf16(b[i]));

  // Saving again as one file removes the stale shards and index.
  write_weights(sharded, {{"x.a", DType::F32, {2, 3}, a.data()}});
  EXPECT_FALSE(fs::exists(sharded / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(sharded / "model-00001-of-00003.safetensors"));
  EXPECT_EQ(WeightStore::open(sharded).names(), (std::vector<std::string>{"x.a"}));

  // Index problems: missing shard (named), tensor mapped to the wrong shard, path escaping the folder.
  fs::path broken = tmp.path() / "broken";
  write_weights(broken, {{"x.a", DType::F32, {2, 3}, a.data()}, {"x.b", DType::F32, {4}, b.data()}}, 20);
  fs::remove(broken / "model-00002-of-00002.safetensors");
  try {
    WeightStore::open(broken);
    FAIL();
  } catch (const sft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("model-00002-of-00002.safetensors"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
  sft::write_file_atomic(broken / "model.safetensors.index.json",
                         R"({"weight_map":{"x.a":"model-00001-of-00002.safetensors","x.z":"model-00001-of-00002.safetensors"}})");
  EXPECT_THROW(WeightStore::open(broken), sft::Error);
  sft::write_file_atomic(broken / "model.safetensors.index.json", R"({"weight_map":{"x.a":"../single/model.safetensors"}})");
  EXPECT_THROW(WeightStore::open(broken), sft::Error);
  sft::write_file_atomic(broken / "model.safetensors.index.json", R"({"weight_map":{"x.a":"pytorch_model-00001.bin"}})");
  try {
    WeightStore::open(broken);
    FAIL();
  } catch (const sft::Error& e) {
    EXPECT_NE(std::string(e.what()).find("safe_serialization=True"), std::string::npos) << e.what();
  }

  // Pickle only: refused with the conversion recipe.
  fs::path pickle = tmp.path() / "pickle";
  fs::create_directories(pickle);
  sft::write_file_atomic(pickle / "pytorch_model.bin", "PK\x03\x04 not really");
  try {
    WeightStore::open(pickle);
    FAIL();
  } catch (const sft::Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("pytorch_model.bin"), std::string::npos) << msg;
    EXPECT_NE(msg.find("save_pretrained"), std::string::npos) << msg;
    EXPECT_NE(msg.find("safe_serialization=True"), std::string::npos) << msg;
  }
  fs::path nothing = tmp.path() / "nothing";
  fs::create_directories(nothing);
  EXPECT_THROW(WeightStore::open(nothing), sft::Error);
  EXPECT_THROW(WeightStore::open(tmp.path() / "does-not-exist"), sft::Error);
}

TEST(HfFolder, CopyTokenizerFilesAndSave) {
  TempDir tmp;
  fs::path base = tmp.path() / "base", out = tmp.path() / "out";
  fs::create_directories(base);
  sft::write_file_atomic(base / "tokenizer.json", "{\"t\":1}");
  sft::write_file_atomic(base / "generation_config.json", "{\"g\":2}");
  sft::write_file_atomic(base / "model.safetensors", "not copied");
  sft::write_file_atomic(base / "config.json", R"({"model_type":"llama","hidden_size":8,"intermediate_size":16,
      "num_hidden_layers":1,"num_attention_heads":2,"vocab_size":10})");
  auto copied = copy_tokenizer_files(base, out);
  EXPECT_EQ(copied, (std::vector<std::string>{"tokenizer.json", "generation_config.json"}));
  EXPECT_EQ(sft::read_file(out / "tokenizer.json"), "{\"t\":1}");
  EXPECT_FALSE(fs::exists(out / "model.safetensors"));
  EXPECT_TRUE(copy_tokenizer_files(out, out).empty());  // onto itself: nothing to do

  const std::string config_text = sft::read_file(base / "config.json");
  auto w = random_floats(80, 9);
  save_hf_folder(tmp.path() / "saved", config_text, {{"model.embed_tokens.weight", DType::F32, {10, 8}, w.data()}},
                 base);
  EXPECT_EQ(sft::read_file(tmp.path() / "saved" / "config.json"), config_text);
  EXPECT_TRUE(fs::exists(tmp.path() / "saved" / "tokenizer.json"));
  std::vector<float> back(80);
  WeightStore::open(tmp.path() / "saved").read_f32("model.embed_tokens.weight", back.data(), {10, 8});
  EXPECT_EQ(back, w);
}
