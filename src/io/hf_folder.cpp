#include "io/hf_folder.h"

#include "io/gguf.h"
#include "io/gguf_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/file_util.h"

namespace sft::io {

namespace fs = std::filesystem;

const std::vector<std::string>& tokenizer_file_names() {
  static const std::vector<std::string> names = {
      "tokenizer.json",     "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
      "vocab.json",         "merges.txt",            "tokenizer.model",         "chat_template.jinja",
      "chat_template.json", "generation_config.json",
  };
  return names;
}

std::vector<std::string> copy_tokenizer_files(const fs::path& src_dir, const fs::path& dst_dir) {
  if (is_gguf_file(src_dir)) {  // a GGUF base: the tokenizer files its metadata stands for (transformers loads them)
    const HfTokenizerFiles files = hf_tokenizer_files(GgufFile(src_dir));
    fs::create_directories(dst_dir);
    write_file_atomic(dst_dir / "tokenizer.json", files.tokenizer_json);
    write_file_atomic(dst_dir / "tokenizer_config.json", files.tokenizer_config_json);
    return {"tokenizer.json", "tokenizer_config.json"};
  }
  SFT_CHECK(fs::is_directory(src_dir), src_dir.string(), ": base model folder not found");
  fs::create_directories(dst_dir);
  std::error_code ec;
  if (fs::equivalent(src_dir, dst_dir, ec)) return {};
  std::vector<std::string> copied;
  for (const auto& name : tokenizer_file_names()) {
    const fs::path src = src_dir / name;
    if (!fs::is_regular_file(src)) continue;
    write_file_atomic(dst_dir / name, read_file(src));
    copied.push_back(name);
  }
  return copied;
}

void write_config(const fs::path& dir, const std::string& config_json) {
  fs::create_directories(dir);
  write_file_atomic(dir / "config.json", config_json);
}

namespace {

uint64_t tensor_bytes(const TensorToWrite& t) {
  uint64_t n = dtype_size(t.dtype);
  for (int64_t d : t.shape) n *= static_cast<uint64_t>(std::max<int64_t>(d, 0));
  return n;
}

std::string shard_name(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

}  // namespace

std::vector<fs::path> write_weights(const fs::path& dir, std::vector<TensorToWrite> tensors, uint64_t max_shard_bytes) {
  fs::create_directories(dir);
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorToWrite& a, const TensorToWrite& b) { return a.name < b.name; });
  uint64_t total = 0;
  for (const auto& t : tensors) total += tensor_bytes(t);

  // Group into shards (transformers' rule: a shard is closed when the next tensor would push it past the limit;
  // a single tensor larger than the limit gets a shard of its own).
  std::vector<std::vector<TensorToWrite>> shards(1);
  if (max_shard_bytes > 0 && total > max_shard_bytes) {
    uint64_t cur = 0;
    for (auto& t : tensors) {
      uint64_t b = tensor_bytes(t);
      if (!shards.back().empty() && cur + b > max_shard_bytes) {
        shards.emplace_back();
        cur = 0;
      }
      shards.back().push_back(t);
      cur += b;
    }
  } else {
    shards[0] = std::move(tensors);
  }

  std::vector<fs::path> written;
  std::set<std::string> keep;
  if (shards.size() == 1) {
    write_safetensors(dir / "model.safetensors", std::move(shards[0]));
    written.push_back(dir / "model.safetensors");
  } else {
    nlohmann::json weight_map = nlohmann::json::object();
    for (size_t i = 0; i < shards.size(); ++i) {
      const std::string name = shard_name(i, shards.size());
      for (const auto& t : shards[i]) weight_map[t.name] = name;
      write_safetensors(dir / name, std::move(shards[i]));
      written.push_back(dir / name);
    }
    nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    write_file_atomic(dir / "model.safetensors.index.json", index.dump(2) + "\n");
    written.push_back(dir / "model.safetensors.index.json");
  }
  for (const auto& p : written) keep.insert(p.filename().string());

  // Stale weights of the other layout (or shards of a different count) from an earlier save into the same folder.
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    const bool weight_file = n == "model.safetensors" || n == "model.safetensors.index.json" ||
                             (n.rfind("model-", 0) == 0 && n.size() > 12 &&
                              n.compare(n.size() - 12, 12, ".safetensors") == 0);
    if (weight_file && !keep.count(n)) fs::remove(e.path());
  }
  return written;
}

void save_hf_folder(const fs::path& dir, const std::string& config_json, std::vector<TensorToWrite> tensors,
                    const fs::path& base_dir, uint64_t max_shard_bytes) {
  fs::create_directories(dir);
  write_weights(dir, std::move(tensors), max_shard_bytes);
  write_config(dir, config_json);
  if (!base_dir.empty()) copy_tokenizer_files(base_dir, dir);
}

}  // namespace sft::io
