// WeightStore: every tensor of an HF model folder, from model.safetensors or the shards named by
// model.safetensors.index.json. Pickle checkpoints (pytorch_model.bin, *.pt, .bin shards) are refused: loading them
// means executing arbitrary Python, and the fix is a two-line conversion the error message spells out.
#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "util/bf16.h"
#include "util/error.h"
#include "util/input_file.h"

namespace sft::io {

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

std::string convert_hint(const fs::path& dir) {
  return "convert it to safetensors once with Python: python -c \"from transformers import "
         "AutoModelForCausalLM as M, AutoTokenizer as T; d='" +
         dir.string() +
         "'; M.from_pretrained(d).save_pretrained(d + '-st', safe_serialization=True); "
         "T.from_pretrained(d).save_pretrained(d + '-st')\" and pass " +
         dir.string() + "-st";
}

bool is_pickle_name(const std::string& name) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with(".bin") || ends_with(".pt") || ends_with(".pth") || ends_with(".ckpt") || ends_with(".pkl");
}

}  // namespace

WeightStore WeightStore::open(const fs::path& dir) {
  SFT_CHECK(fs::is_directory(dir), dir.string(), ": not a model folder (directory not found)");
  WeightStore ws;
  std::vector<fs::path> shard_paths;
  std::map<std::string, std::string> weight_map;  // only for sharded folders
  const fs::path single = dir / "model.safetensors";
  const fs::path index = dir / "model.safetensors.index.json";
  if (input_present(single)) {  // a dangling link or a FIFO is opened and reported, not skipped
    shard_paths.push_back(single);
  } else if (input_present(index)) {
    json j = json::parse(read_input_file(index, input::json_file), nullptr, /*allow_exceptions=*/false);
    SFT_CHECK(!j.is_discarded() && j.is_object(), index.string(), ": not a valid JSON object");
    SFT_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), index.string(),
              ": \"weight_map\" object missing");
    std::set<std::string> shard_names;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      SFT_CHECK(it.value().is_string(), index.string(), ": weight_map entry of \"", it.key(), "\" must be a file name");
      std::string shard = it.value().get<std::string>();
      // A shard is a plain file name inside the folder; anything with a path separator could escape it.
      SFT_CHECK(!shard.empty() && shard.find('/') == std::string::npos && shard != "." && shard != "..",
                index.string(), ": weight_map entry of \"", it.key(), "\" names \"", shard,
                "\", expected a file name inside the folder");
      SFT_CHECK(!is_pickle_name(shard), index.string(), ": shard \"", shard,
                "\" is a pickle checkpoint, which sft never loads; ", convert_hint(dir));
      weight_map[it.key()] = shard;
      shard_names.insert(shard);
    }
    SFT_CHECK(!shard_names.empty(), index.string(), ": weight_map is empty");
    for (const auto& s : shard_names) {
      fs::path p = dir / s;
      SFT_CHECK(fs::exists(p), index.string(), ": shard \"", s, "\" listed in weight_map is missing from ",
                dir.string());
      shard_paths.push_back(p);
    }
  } else {
    for (const char* pk : {"pytorch_model.bin", "pytorch_model.bin.index.json", "model.pt", "consolidated.00.pth"})
      SFT_CHECK(!fs::exists(dir / pk), dir.string(), ": only ", pk,
                " found; sft reads safetensors only and never loads pickle checkpoints; ", convert_hint(dir));
    bool has_pickle = false;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_regular_file() && is_pickle_name(e.path().filename().string())) has_pickle = true;
    SFT_CHECK(!has_pickle, dir.string(), ": only pickle weight files (*.bin / *.pt) found; ", convert_hint(dir));
    throw Error(dir.string() + ": no model.safetensors or model.safetensors.index.json in the folder");
  }

  for (const auto& p : shard_paths) {
    ws.files_.push_back(std::make_unique<SafetensorsFile>(p));
    ws.paths_.push_back(p);
    const SafetensorsFile* f = ws.files_.back().get();
    for (const auto& t : f->tensors()) {
      auto [it, inserted] = ws.index_.emplace(t.name, std::make_pair(f, &t));
      SFT_CHECK(inserted, p.string(), ": tensor \"", t.name, "\" also appears in ", it->second.first->path().string());
    }
  }
  for (const auto& [name, shard] : weight_map) {
    auto it = ws.index_.find(name);
    SFT_CHECK(it != ws.index_.end(), (dir / "model.safetensors.index.json").string(), ": tensor \"", name,
              "\" is mapped to ", shard, " but that file does not contain it");
    SFT_CHECK(it->second.first->path().filename() == shard, (dir / "model.safetensors.index.json").string(),
              ": tensor \"", name, "\" is mapped to ", shard, " but found in ",
              it->second.first->path().filename().string());
  }
  return ws;
}

WeightStore WeightStore::from_decoded(std::vector<DecodedTensor> tensors) {
  WeightStore ws;
  for (auto& t : tensors) {
    SFT_CHECK(!ws.decoded_index_.count(t.name), t.file.string(), ": tensor \"", t.name, "\" appears twice");
    auto info = std::make_unique<TensorInfo>();
    info->name = t.name;
    info->dtype = DType::F32;
    info->shape = t.shape;
    info->end = static_cast<size_t>(info->numel()) * 4;
    ws.decoded_index_[t.name] = ws.decoded_.size();
    if (ws.paths_.empty() || ws.paths_.back() != t.file) ws.paths_.push_back(t.file);
    ws.decoded_infos_.push_back(std::move(info));
    ws.decoded_.push_back(std::move(t));
  }
  return ws;
}

bool WeightStore::has(const std::string& name) const { return index_.count(name) != 0 || decoded_index_.count(name); }

const std::filesystem::path& WeightStore::path_of(const std::string& name) const {
  if (auto d = decoded_index_.find(name); d != decoded_index_.end()) return decoded_[d->second].file;
  return file_of(name).path();
}

const TensorInfo& WeightStore::info(const std::string& name) const {
  if (auto d = decoded_index_.find(name); d != decoded_index_.end()) return *decoded_infos_[d->second];
  auto it = index_.find(name);
  SFT_CHECK(it != index_.end(), "tensor \"", name, "\" not found in the model weights",
            paths_.empty() ? std::string() : " (" + paths_.front().parent_path().string() + ")");
  return *it->second.second;
}

const SafetensorsFile& WeightStore::file_of(const std::string& name) const {
  info(name);  // throws when absent
  return *index_.at(name).first;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& kv : index_) out.push_back(kv.first);
  for (const auto& kv : decoded_index_) out.push_back(kv.first);
  std::sort(out.begin(), out.end());
  return out;
}

void WeightStore::read_f32(const std::string& name, float* dst, const std::vector<int64_t>& expected_shape) const {
  const TensorInfo& t = info(name);
  if (auto d = decoded_index_.find(name); d != decoded_index_.end()) {
    SFT_CHECK(expected_shape.empty() || expected_shape == t.shape, path_of(name).string(), ": tensor \"", name,
              "\": shape ", shape_str(t.shape), ", expected ", shape_str(expected_shape));
    decoded_[d->second].read(dst);
    return;
  }
  const SafetensorsFile& f = file_of(name);
  const std::string where = f.path().string() + ": tensor \"" + name + "\"";
  SFT_CHECK(expected_shape.empty() || expected_shape == t.shape, where, ": shape ", shape_str(t.shape),
            ", expected ", shape_str(expected_shape));
  convert_to_f32(t.dtype, f.data(t), t.numel(), dst, where);
}

void WeightStore::read_bf16(const std::string& name, uint16_t* dst, const std::vector<int64_t>& expected_shape) const {
  const TensorInfo& t = info(name);
  if (decoded_index_.count(name)) {  // decoded to float32 first, then rounded to nearest even as an F32 tensor is
    std::vector<float> f(static_cast<size_t>(t.numel()));
    read_f32(name, f.data(), expected_shape);
    for (size_t k = 0; k < f.size(); ++k) dst[k] = float_to_bf16(f[k]);
    return;
  }
  const SafetensorsFile& f = file_of(name);
  const std::string where = f.path().string() + ": tensor \"" + name + "\"";
  SFT_CHECK(expected_shape.empty() || expected_shape == t.shape, where, ": shape ", shape_str(t.shape),
            ", expected ", shape_str(expected_shape));
  convert_to_bf16(t.dtype, f.data(t), t.numel(), dst, where);
}

}  // namespace sft::io
