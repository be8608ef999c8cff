// The BPE model of a byte-level tokenizer.json: vocab, merge ranks (both "a b" and ["a","b"] encodings),
// ignore_merges, and a per-word cache. Words arrive as raw UTF-8 bytes; the GPT-2 byte-level mapping is applied here
// (each byte's initial symbol is the vocab id of its mapped character), so no mapped string is built on the hot path.
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace sft::tok {

// Token ids index dense tables (id -> piece), so tokenizer.json ids above this are refused rather than allocating
// gigabytes for one absurd id; real vocabularies stay far below it (the largest are ~10^6).
inline constexpr int64_t kMaxTokenId = (int64_t{1} << 24) - 1;

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using VocabMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // j = tokenizer.json "model" (type BPE). byte_level: the vocab is in GPT-2 byte-level characters.
  static BpeModel from_json(const nlohmann::json& j, bool byte_level);
  BpeModel(BpeModel&&) noexcept;
  BpeModel& operator=(BpeModel&&) noexcept;
  ~BpeModel();

  // Appends the ids of one pre-token word (raw UTF-8 bytes).
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  // The same without the cache (the reference path tests compare the cached one against).
  void encode_word_uncached(std::string_view word, std::vector<int32_t>& out) const;

  const VocabMap& vocab() const { return vocab_; }
  const std::vector<std::string>& id_to_piece() const { return id_to_piece_; }
  size_t num_merges() const { return num_merges_; }

 private:
  BpeModel() = default;
  struct MergeEntry {
    uint64_t key;  // (left id << 32) | right id; kEmpty marks a free slot
    int32_t rank;
    int32_t new_id;
  };
  static constexpr uint64_t kEmpty = ~0ull;
  void add_merge(int32_t a, int32_t b, int32_t rank, int32_t new_id);
  const MergeEntry* find_merge(int32_t a, int32_t b) const {
    const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
    size_t h = static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_;
    for (;; h = (h + 1) & mask_) {
      const MergeEntry& e = merges_[h];
      if (e.key == key) return &e;
      if (e.key == kEmpty) return nullptr;
    }
  }

  VocabMap vocab_;
  std::vector<std::string> id_to_piece_;
  std::vector<MergeEntry> merges_;  // open addressing, power-of-two size
  size_t mask_ = 0;
  size_t num_merges_ = 0;
  int32_t byte_ids_[256];           // vocab id of each byte's initial symbol, -1 when absent
  bool byte_level_ = true;
  bool ignore_merges_ = false;
  std::optional<int32_t> unk_id_;

  // Word cache: raw word bytes -> ids. Shared-locked reads; stops growing at kCacheCap entries (as HF's cache does).
  static constexpr size_t kCacheCap = 200000;
  static constexpr size_t kCacheMaxWordBytes = 128;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
  mutable std::unique_ptr<std::shared_mutex> cache_mutex_ = std::make_unique<std::shared_mutex>();
};

}  // namespace sft::tok
