#include "tokenizer/bpe.h"

#include <algorithm>
#include <limits>

#include <nlohmann/json.hpp>

#include "tokenizer/utf8.h"
#include "util/error.h"
#include "util/json_number.h"

namespace sft::tok {

BpeModel::BpeModel(BpeModel&&) noexcept = default;
BpeModel& BpeModel::operator=(BpeModel&&) noexcept = default;
BpeModel::~BpeModel() = default;

void BpeModel::add_merge(int32_t a, int32_t b, int32_t rank, int32_t new_id) {
  const uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  size_t h = static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 20) & mask_;
  for (;; h = (h + 1) & mask_) {
    MergeEntry& e = merges_[h];
    if (e.key == kEmpty) ++num_merges_;
    if (e.key == kEmpty || e.key == key) {
      // A repeated pair keeps the later rank, as HF's HashMap collect does.
      e = {key, rank, new_id};
      return;
    }
  }
}

BpeModel BpeModel::from_json(const nlohmann::json& j, bool byte_level) {
  const std::string type = j.value("type", "BPE");
  SFT_CHECK(type == "BPE", "tokenizer.json: model type '", type, "' is not supported (only byte-level BPE)");
  SFT_CHECK(j.value("dropout", nlohmann::json()).is_null(), "tokenizer.json: BPE dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const auto it = j.find(key);
    SFT_CHECK(it == j.end() || it->is_null() || it->get<std::string>().empty(), "tokenizer.json: BPE ", key,
              " is not supported (byte-level BPE models leave it empty)");
  }
  BpeModel m;
  m.byte_level_ = byte_level;
  m.ignore_merges_ = j.value("ignore_merges", false);
  const auto& vocab = j.at("vocab");
  m.vocab_.reserve(vocab.size());
  int32_t max_id = -1;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const auto id = static_cast<int32_t>(json_integer(it.value(), "tokenizer.json: id of vocab entry '" + it.key() + "'", 0,
                                                      kMaxTokenId));
    m.vocab_.emplace(it.key(), id);
    max_id = std::max(max_id, id);
  }
  m.id_to_piece_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [piece, id] : m.vocab_) m.id_to_piece_[static_cast<size_t>(id)] = piece;

  const auto& table = utf8::byte_level_table();
  for (int b = 0; b < 256; ++b) {
    const std::string sym = byte_level ? table.byte_to_utf8[b] : std::string(1, static_cast<char>(b));
    const auto it = m.vocab_.find(sym);
    m.byte_ids_[b] = it == m.vocab_.end() ? -1 : it->second;
  }
  const auto unk = j.find("unk_token");
  if (unk != j.end() && unk->is_string()) {
    const auto it = m.vocab_.find(unk->get<std::string>());
    if (it != m.vocab_.end()) m.unk_id_ = it->second;
  }

  const auto& merges = j.at("merges");
  size_t cap = 16;
  while (cap < merges.size() * 2 + 16) cap <<= 1;
  m.merges_.assign(cap, MergeEntry{kEmpty, 0, 0});
  m.mask_ = cap - 1;
  int32_t rank = 0;
  std::string left, right;
  for (const auto& item : merges) {
    if (item.is_string()) {
      const std::string& s = item.get_ref<const std::string&>();
      const size_t sp = s.find(' ');
      SFT_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos,
                "tokenizer.json: merge #", rank, " '", s, "' is not two space-separated tokens");
      left.assign(s, 0, sp);
      right.assign(s, sp + 1);
    } else {
      SFT_CHECK(item.is_array() && item.size() == 2, "tokenizer.json: merge #", rank, " is not a [left, right] pair");
      left = item[0].get<std::string>();
      right = item[1].get<std::string>();
    }
    const auto a = m.vocab_.find(left), b = m.vocab_.find(right), ab = m.vocab_.find(left + right);
    SFT_CHECK(a != m.vocab_.end() && b != m.vocab_.end() && ab != m.vocab_.end(), "tokenizer.json: merge #", rank,
              " ('", left, "', '", right, "') uses a token missing from the vocab");
    m.add_merge(a->second, b->second, rank, ab->second);
    ++rank;
  }
  return m;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.size() <= kCacheMaxWordBytes) {
    {
      std::shared_lock lock(*cache_mutex_);
      const auto it = cache_.find(word);
      if (it != cache_.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const size_t start = out.size();
    encode_word_uncached(word, out);
    std::unique_lock lock(*cache_mutex_);
    if (cache_.size() < kCacheCap)
      cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(start), out.end()));
    return;
  }
  encode_word_uncached(word, out);
}

void BpeModel::encode_word_uncached(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  thread_local std::string mapped;
  if (ignore_merges_) {
    // Llama 3: a word that is itself a vocab entry is emitted whole, merges or not.
    const std::string_view key = [&]() -> std::string_view {
      if (!byte_level_) return word;
      const auto& table = utf8::byte_level_table();
      mapped.clear();
      for (unsigned char c : word) mapped += table.byte_to_utf8[c];
      return mapped;
    }();
    const auto it = vocab_.find(key);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }

  // Symbols as a doubly linked list over a scratch array; merged-away symbols get id -1.
  struct Sym {
    int32_t id, prev, next;
  };
  struct Cand {
    int32_t rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  thread_local std::vector<Sym> syms;
  thread_local std::vector<Cand> heap;
  syms.clear();
  heap.clear();
  auto push_symbol = [&](int32_t id) {
    const auto n = static_cast<int32_t>(syms.size());
    syms.push_back({id, n - 1, -1});
    if (n > 0) syms[static_cast<size_t>(n - 1)].next = n;
  };
  if (byte_level_) {
    for (unsigned char c : word) {
      const int32_t id = byte_ids_[c];
      if (id >= 0) push_symbol(id);
      else if (unk_id_) push_symbol(*unk_id_);
      // else: HF drops a symbol that is neither in the vocab nor covered by unk_token.
    }
  } else {
    for (size_t i = 0; i < word.size();) {
      size_t len = utf8::valid_sequence_length(word, i);
      if (len == 0) len = 1;
      const auto it = vocab_.find(word.substr(i, len));
      if (it != vocab_.end()) push_symbol(it->second);
      else if (unk_id_) push_symbol(*unk_id_);
      i += len;
    }
  }
  const auto greater = std::greater<Cand>();
  auto consider = [&](int32_t pos) {
    const int32_t nx = syms[static_cast<size_t>(pos)].next;
    if (nx < 0) return;
    if (const MergeEntry* m = find_merge(syms[static_cast<size_t>(pos)].id, syms[static_cast<size_t>(nx)].id)) {
      heap.push_back({m->rank, pos, m->new_id});
      std::push_heap(heap.begin(), heap.end(), greater);
    }
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) consider(i);
  // Lowest rank first, leftmost on ties (HF's Word::merge_all ordering); stale candidates are skipped.
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), greater);
    const Cand top = heap.back();
    heap.pop_back();
    Sym& s = syms[static_cast<size_t>(top.pos)];
    if (s.id < 0 || s.next < 0) continue;
    Sym& r = syms[static_cast<size_t>(s.next)];
    const MergeEntry* m = find_merge(s.id, r.id);
    if (!m || m->new_id != top.new_id) continue;
    s.id = top.new_id;
    r.id = -1;
    s.next = r.next;
    if (s.next >= 0) syms[static_cast<size_t>(s.next)].prev = top.pos;
    if (s.prev >= 0) consider(s.prev);
    consider(top.pos);
  }
  for (int32_t i = syms.empty() ? -1 : 0; i >= 0; i = syms[static_cast<size_t>(i)].next) out.push_back(syms[static_cast<size_t>(i)].id);
}

}  // namespace sft::tok
