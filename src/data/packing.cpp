// Packing strategies (data/packing.h): TRL's best-fit decreasing and wrapped packing, and sft's seeded first fit.
#include "data/packing.h"

#include <algorithm>
#include <deque>
#include <map>
#include <numeric>
#include <string>

#include "util/error.h"

namespace sft::data {

PackingStrategy parse_packing_strategy(std::string_view name) {
  if (name == "bfd") return PackingStrategy::Bfd;
  if (name == "wrapped") return PackingStrategy::Wrapped;
  if (name == "first_fit") return PackingStrategy::FirstFit;
  throw Error("unknown packing strategy \"" + std::string(name) + "\" (expected bfd, wrapped or first_fit)");
}

const char* packing_strategy_name(PackingStrategy s) {
  switch (s) {
    case PackingStrategy::Bfd: return "bfd";
    case PackingStrategy::Wrapped: return "wrapped";
    case PackingStrategy::FirstFit: return "first_fit";
  }
  return "?";
}

namespace {
void check_length(int64_t item, int64_t len, int64_t capacity) {
  SFT_CHECK(len >= 1 && len <= capacity, "packing: sample ", item, " has ", len, " tokens, more than the row capacity ",
            capacity, " (truncate first)");
}
}  // namespace

std::vector<std::vector<int32_t>> pack_first_fit(const std::vector<int64_t>& lengths, const std::vector<int32_t>& order,
                                                 int64_t capacity) {
  // Segment tree of the free space of bins 0..size-1 (unopened bins are empty, i.e. have `capacity` free), so the
  // first bin with room is found in O(log n) instead of scanning every open bin.
  size_t size = 1;
  while (size < std::max<size_t>(order.size(), 1)) size *= 2;
  std::vector<int64_t> tree(2 * size, capacity);
  std::vector<std::vector<int32_t>> bins;
  for (int32_t item : order) {
    const int64_t len = lengths[item];
    check_length(item, len, capacity);
    size_t node = 1;
    while (node < size) node = tree[2 * node] >= len ? 2 * node : 2 * node + 1;
    const size_t bin = node - size;
    if (bin >= bins.size()) bins.resize(bin + 1);
    bins[bin].push_back(item);
    tree[node] -= len;
    for (node /= 2; node >= 1; node /= 2) tree[node] = std::max(tree[2 * node], tree[2 * node + 1]);
  }
  return bins;
}

namespace {

// Max segment tree over the free-space values 1..capacity that some open row has (leaf v-1 holds v when present, 0
// otherwise): search(len) is the smallest present value >= len. As TRL's _SegmentTree.
class SpaceTree {
 public:
  explicit SpaceTree(int64_t capacity) {
    while (size_ < static_cast<size_t>(capacity)) size_ *= 2;
    tree_.assign(2 * size_, 0);
  }
  void set(int64_t space, bool present) {
    size_t i = size_ + static_cast<size_t>(space - 1);
    tree_[i] = present ? space : 0;
    for (i /= 2; i >= 1; i /= 2) tree_[i] = std::max(tree_[2 * i], tree_[2 * i + 1]);
  }
  int64_t smallest_at_least(int64_t len) const {
    size_t i = 1;
    while (i < size_) i = tree_[2 * i] >= len ? 2 * i : 2 * i + 1;
    return tree_[i];
  }

 private:
  size_t size_ = 1;
  std::vector<int64_t> tree_;
};

}  // namespace

std::vector<std::vector<int32_t>> pack_best_fit_decreasing(const std::vector<int64_t>& lengths, int64_t capacity,
                                                           int64_t chunk) {
  SFT_CHECK(capacity >= 1 && chunk >= 1, "packing: capacity ", capacity, " and chunk ", chunk, " must be >= 1");
  const auto n = static_cast<int64_t>(lengths.size());
  for (int64_t i = 0; i < n; ++i) check_length(i, lengths[i], capacity);
  std::vector<std::vector<int32_t>> rows;
  SpaceTree tree(capacity);
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    const int64_t c1 = std::min(n, c0 + chunk);
    std::vector<int32_t> order(static_cast<size_t>(c1 - c0));
    std::iota(order.begin(), order.end(), static_cast<int32_t>(c0));
    // Longest first; equal lengths keep dataset order (Arrow's sort is stable).
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return lengths[a] > lengths[b]; });
    std::map<int64_t, std::deque<size_t>> rows_with_space;  // free space -> rows (first opened first)
    tree.set(capacity, true);                               // a new, empty row always fits
    for (int32_t item : order) {
      const int64_t len = lengths[item];
      int64_t space = tree.smallest_at_least(len);
      size_t row = 0;
      if (space < capacity) {  // the open row with the least room that still fits
        auto& q = rows_with_space[space];
        row = q.front();
        q.pop_front();
        if (q.empty()) tree.set(space, false);
      } else {
        row = rows.size();
        rows.emplace_back();
      }
      rows[row].push_back(item);
      space -= len;
      rows_with_space[space].push_back(row);
      if (space > 0) tree.set(space, true);
    }
    for (const auto& [space, q] : rows_with_space)  // the next chunk starts with no open row
      if (space > 0 && !q.empty()) tree.set(space, false);
    tree.set(capacity, false);
  }
  return rows;
}

std::vector<PackedRow> pack_wrapped(const std::vector<int64_t>& lengths, int64_t capacity, int64_t chunk) {
  SFT_CHECK(capacity >= 1 && chunk >= 1, "packing: capacity ", capacity, " and chunk ", chunk, " must be >= 1");
  const auto n = static_cast<int64_t>(lengths.size());
  std::vector<PackedRow> rows;
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    const int64_t c1 = std::min(n, c0 + chunk);
    int64_t room = 0;  // free tokens of the last row of this chunk
    for (int64_t s = c0; s < c1; ++s) {
      SFT_CHECK(lengths[s] >= 1, "packing: sample ", s, " is empty");
      for (int64_t at = 0; at < lengths[s];) {
        if (room == 0) {
          rows.emplace_back();
          room = capacity;
        }
        const int64_t take = std::min(room, lengths[s] - at);
        rows.back().push_back({static_cast<int32_t>(s), at, at + take});
        at += take;
        room -= take;
      }
    }
  }
  return rows;
}

}  // namespace sft::data
