// Packing samples into rows of a fixed capacity (--packing True): which samples, or pieces of samples, share a row.
// Three strategies (--packing_strategy, TRL's names where TRL has the strategy):
//   bfd        best-fit decreasing, as trl 1.16 data_utils._pack_bfd: within each chunk of 1000 samples in dataset
//              order (the `datasets.map` batch TRL packs), samples longest first (stable), each into the open row
//              whose free space is the smallest that still fits it, else a new row. Whole samples only.
//   wrapped    as trl 1.16 _pack_wrapped: each chunk's tokens concatenated in dataset order and cut every
//              `capacity` tokens, so a sample may be cut at a row end and continue in the next row (a piece).
//   first_fit  sft's earlier packing: whole samples, first fit in a seeded shuffled order (a segment tree over the
//              rows' free space finds the first row with room in O(log n)).
// In every strategy a piece stays its own document in the row: positions restart at 0 and attention stays inside it
// (data/batching.h builds the rows); for wrapped that is where sft differs from TRL, whose wrapped rows attend across
// samples with positions running through the row.
#pragma once
#include <cstdint>
#include <string_view>
#include <vector>

namespace sft::data {

enum class PackingStrategy { Bfd, Wrapped, FirstFit };
PackingStrategy parse_packing_strategy(std::string_view name);  // "bfd" | "wrapped" | "first_fit"
const char* packing_strategy_name(PackingStrategy s);

// Samples per chunk packed independently by bfd and wrapped: the batch size of TRL's `dataset.map(batched=True)`.
inline constexpr int64_t kTrlPackChunk = 1000;

// Tokens [begin, end) of one sample.
struct Piece {
  int32_t sample = 0;
  int64_t begin = 0, end = 0;
  int64_t length() const { return end - begin; }
  bool operator==(const Piece&) const = default;
};
using PackedRow = std::vector<Piece>;

// First-fit bin packing of items (in the given order) into bins of `capacity`; returns bins of item indices.
std::vector<std::vector<int32_t>> pack_first_fit(const std::vector<int64_t>& lengths, const std::vector<int32_t>& order,
                                                 int64_t capacity);
// TRL's best-fit decreasing (see above); rows in the order TRL creates them, each row's samples in insertion order.
// chunk = samples packed together (kTrlPackChunk; tests use other values).
std::vector<std::vector<int32_t>> pack_best_fit_decreasing(const std::vector<int64_t>& lengths, int64_t capacity,
                                                           int64_t chunk = kTrlPackChunk);
// TRL's wrapped packing: rows of exactly `capacity` tokens except each chunk's last; lengths may exceed capacity.
std::vector<PackedRow> pack_wrapped(const std::vector<int64_t>& lengths, int64_t capacity,
                                    int64_t chunk = kTrlPackChunk);

}  // namespace sft::data
