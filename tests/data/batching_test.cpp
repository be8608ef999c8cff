// Truncation report, PRNG/ordering primitives, packing and the DataLoader (padding, packing invariants,
// determinism, resume, target counting), validation split.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

#include "data/batching.h"
#include "data/prepare.h"
#include "util/error.h"

namespace sft::data {
namespace {

// A synthetic sample of `len` tokens whose last `n_targets` tokens are targets; ids encode (sample, position) so
// that tests can check exactly where every token went.
Sample make_sample(int32_t index, int64_t len, int64_t n_targets) {
  Sample s;
  s.source_index = index;
  for (int64_t t = 0; t < len; ++t) {
    const auto id = static_cast<int32_t>(1000 * (index + 1) + t);
    s.ids.push_back(id);
    s.labels.push_back(t >= len - n_targets && t > 0 ? id : kIgnoreIndex);
  }
  s.targets = std::count_if(s.labels.begin(), s.labels.end(), [](int32_t l) { return l != kIgnoreIndex; });
  return s;
}

std::shared_ptr<std::vector<Sample>> random_samples(int n, int64_t max_len, uint64_t seed) {
  auto v = std::make_shared<std::vector<Sample>>();
  Rng rng(seed);
  for (int i = 0; i < n; ++i) {
    const auto len = static_cast<int64_t>(2 + rng.below(max_len - 1));
    v->push_back(make_sample(i, len, 1 + static_cast<int64_t>(rng.below(len - 1))));
  }
  return v;
}

// ---- PRNG -----------------------------------------------------------------------------------------------------------

TEST(Rng, MatchesReferenceImplementations) {
  // splitmix64(0) first output: the published reference value (Vigna's splitmix64.c).
  uint64_t state = 0;
  EXPECT_EQ(splitmix64(state), 0xe220a8397b1dcdafull);
  // xoshiro256** seeded by splitmix64(42), and a Fisher-Yates permutation: values from an independent Python
  // transcription of xoshiro256starstar.c + Lemire's bounded draw (see docs/arch/data.md).
  Rng rng(42);
  EXPECT_EQ(rng.next_u64(), 0x15780b2e0c2ec716ull);
  EXPECT_EQ(rng.next_u64(), 0x6104d9866d113a7eull);
  EXPECT_EQ(rng.next_u64(), 0xae17533239e499a1ull);
  EXPECT_EQ(random_permutation(10, 7), (std::vector<int32_t>{1, 8, 3, 0, 4, 5, 9, 6, 2, 7}));
}

TEST(Rng, PermutationIsUniformEnough) {
  // Where element 0 lands over 20000 seeds: each of 5 slots expects 4000; a biased shuffle (e.g. swapping with
  // any index) is far outside +-6% (the binomial sd is ~57, so 240 is > 4 sd).
  std::vector<int> where(5, 0);
  for (uint64_t seed = 0; seed < 20000; ++seed) {
    auto p = random_permutation(5, seed);
    where[std::find(p.begin(), p.end(), 0) - p.begin()]++;
  }
  for (int c : where) EXPECT_NEAR(c, 4000, 240);
  Rng rng(1);
  for (int i = 0; i < 1000; ++i) EXPECT_LT(rng.below(7), 7u);
}

// ---- length grouping ------------------------------------------------------------------------------------------------

TEST(LengthGrouped, HfMegabatchProperties) {
  Rng rng(3);
  std::vector<int64_t> lengths(1000);
  for (auto& l : lengths) l = 1 + static_cast<int64_t>(rng.below(500));
  const int64_t batch = 4, mega = 50 * batch;  // mult = min(1000 / 16, 50) = 50
  auto order = length_grouped_order(lengths, batch, 11);
  auto sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < 1000; ++i) ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(lengths[order[0]], *std::max_element(lengths.begin(), lengths.end()));
  for (int64_t s = 0; s < 1000; s += mega) {
    // Sorted descending inside each megabatch (position 0 of megabatch 0 may hold the swapped-in longest sample,
    // and the megabatch that gave it away got megabatch 0's head, so skip the heads).
    for (int64_t i = s + 2; i < s + mega; ++i) EXPECT_GE(lengths[order[i - 1]], lengths[order[i]]) << i;
  }
  EXPECT_EQ(length_grouped_order(lengths, batch, 11), order);
  EXPECT_NE(length_grouped_order(lengths, batch, 12), order);
  // Small datasets: mult = max(1, n / (4 * batch)).
  std::vector<int64_t> few = {5, 9, 1, 7, 3, 8};
  auto o = length_grouped_order(few, 4, 1);  // mult 1 -> megabatches of 4
  EXPECT_EQ(few[o[0]], 9);
}

// ---- first-fit packing --------------------------------------------------------------------------------------------

// The plain reference: scan every open bin from the left.
std::vector<std::vector<int32_t>> naive_first_fit(const std::vector<int64_t>& lengths,
                                                  const std::vector<int32_t>& order, int64_t cap) {
  std::vector<std::vector<int32_t>> bins;
  std::vector<int64_t> used;
  for (int32_t item : order) {
    size_t b = 0;
    while (b < bins.size() && used[b] + lengths[item] > cap) ++b;
    if (b == bins.size()) bins.emplace_back(), used.push_back(0);
    bins[b].push_back(item);
    used[b] += lengths[item];
  }
  return bins;
}

TEST(Packing, SegmentTreeFirstFitEqualsNaiveReference) {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    Rng rng(seed);
    const int n = 1 + static_cast<int>(rng.below(300));
    const int64_t cap = 8 + static_cast<int64_t>(rng.below(120));
    std::vector<int64_t> lengths(n);
    for (auto& l : lengths) l = 1 + static_cast<int64_t>(rng.below(cap));
    auto order = random_permutation(n, seed * 31);
    ASSERT_EQ(pack_first_fit(lengths, order, cap), naive_first_fit(lengths, order, cap)) << "seed " << seed;
  }
  try {
    pack_first_fit({5, 20}, {0, 1}, 10);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sample 1 has 20 tokens, more than the row capacity 10"), std::string::npos);
  }
}

// ---- best-fit decreasing and wrapped packing (TRL's; parity with trl itself: tests/data/test_packing.py) ----------

// The plain reference of TRL's bfd: per chunk, items longest first (stable); each goes to the open bin with the least
// space that still fits it, among equal spaces the bin that reached that space first; else a new bin.
std::vector<std::vector<int32_t>> naive_bfd(const std::vector<int64_t>& lengths, int64_t cap, int64_t chunk) {
  std::vector<std::vector<int32_t>> bins;
  const auto n = static_cast<int64_t>(lengths.size());
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    std::vector<int32_t> order;
    for (int64_t i = c0; i < std::min(n, c0 + chunk); ++i) order.push_back(static_cast<int32_t>(i));
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return lengths[a] > lengths[b]; });
    std::vector<size_t> open;
    std::vector<int64_t> space, reached;  // per open bin: free space, when it got that space
    int64_t clock = 0;
    for (int32_t item : order) {
      size_t best = open.size();
      for (size_t b = 0; b < open.size(); ++b)
        if (space[b] >= lengths[item] &&
            (best == open.size() || space[b] < space[best] || (space[b] == space[best] && reached[b] < reached[best])))
          best = b;
      if (best == open.size()) {
        open.push_back(bins.size());
        bins.emplace_back();
        space.push_back(cap);
        reached.push_back(0);
      }
      bins[open[best]].push_back(item);
      space[best] -= lengths[item];
      reached[best] = ++clock;
    }
  }
  return bins;
}

TEST(Packing, BestFitDecreasingEqualsNaiveReference) {
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    Rng rng(seed);
    const int n = 1 + static_cast<int>(rng.below(400));
    const int64_t cap = 4 + static_cast<int64_t>(rng.below(60));
    const int64_t chunk = 1 + static_cast<int64_t>(rng.below(150));
    std::vector<int64_t> lengths(n);
    for (auto& l : lengths) l = 1 + static_cast<int64_t>(rng.below(rng.below(2) ? cap : cap / 3 + 1));
    ASSERT_EQ(pack_best_fit_decreasing(lengths, cap, chunk), naive_bfd(lengths, cap, chunk)) << "seed " << seed;
  }
  // TRL's docstring example (after truncation to 4): [[1,2,3,4]], [[8,9,10],[11]], [[6,7]].
  EXPECT_EQ(pack_best_fit_decreasing({4, 2, 3, 1}, 4), (std::vector<std::vector<int32_t>>{{0}, {2, 3}, {1}}));
  EXPECT_THROW(pack_best_fit_decreasing({5}, 4), Error);
}

TEST(Packing, WrappedCutsRowsAtTheCapacityPerChunk) {
  using R = std::vector<PackedRow>;
  EXPECT_EQ(pack_wrapped({3, 5, 2}, 4), (R{{{0, 0, 3}, {1, 0, 1}}, {{1, 1, 5}}, {{2, 0, 2}}}));
  // Chunks are packed on their own: the first chunk's last row stays short.
  EXPECT_EQ(pack_wrapped({3, 3, 3}, 4, 2), (R{{{0, 0, 3}, {1, 0, 1}}, {{1, 1, 3}}, {{2, 0, 3}}}));
  EXPECT_EQ(pack_wrapped({9}, 4), (R{{{0, 0, 4}}, {{0, 4, 8}}, {{0, 8, 9}}}));
  EXPECT_EQ(parse_packing_strategy("first_fit"), PackingStrategy::FirstFit);
  EXPECT_STREQ(packing_strategy_name(parse_packing_strategy("wrapped")), "wrapped");
  EXPECT_THROW(parse_packing_strategy("bfd_split"), Error);
}

// ---- truncation -----------------------------------------------------------------------------------------------------

TEST(Truncation, PercentilesAndCounts) {
  std::vector<Sample> v;
  for (int i = 0; i < 100; ++i) v.push_back(make_sample(i, i + 1 + (i == 0), std::min<int64_t>(i + 1, 10)));
  // lengths 2,2,3,...,100 (sample 0 has length 2); targets: min(i+1,10) but never the first token.
  int64_t total_targets = 0;
  for (auto& s : v) total_targets += s.targets;
  auto copy = v;
  TruncationReport r = apply_truncation(copy, 95, Truncation::Right);
  EXPECT_EQ(r.samples, 100);
  EXPECT_EQ(r.p50, 50);  // nearest rank: the 50th smallest of 2,2,3..100
  EXPECT_EQ(r.p90, 90);
  EXPECT_EQ(r.p95, 95);
  EXPECT_EQ(r.p99, 99);
  EXPECT_EQ(r.max, 100);
  EXPECT_EQ(r.over_length, 5);  // 96..100
  EXPECT_EQ(r.target_tokens, total_targets);
  // Samples of length 96..100 keep their first 95 tokens; their targets are the last 10 tokens, so they lose
  // len-95 targets each: 1+2+3+4+5 = 15. None loses all.
  EXPECT_EQ(r.target_tokens_dropped, 15);
  EXPECT_EQ(r.samples_without_targets, 0);
  EXPECT_EQ(r.samples_kept, 100);
  for (const auto& s : copy) {
    EXPECT_LE(s.ids.size(), 95u);
    EXPECT_EQ(s.ids.size(), s.labels.size());
  }
  // Cut at 89: samples 90..100 long lose targets; those of length >= 99 lose all 10 (tokens 89..98+ are all cut).
  copy = v;
  r = apply_truncation(copy, 89, Truncation::Right);
  EXPECT_EQ(r.over_length, 11);
  EXPECT_EQ(r.samples_without_targets, 2);  // lengths 99 and 100: targets start at 89 and 90
  EXPECT_EQ(r.samples_removed, 2);
  EXPECT_EQ(r.samples_kept, 98);
  // Drop mode: removes the over-long samples with all their targets.
  copy = v;
  r = apply_truncation(copy, 95, Truncation::Drop);
  EXPECT_EQ(r.samples_removed, 5);
  EXPECT_EQ(r.target_tokens_dropped, 50);
  EXPECT_EQ(r.samples_kept, 95);
  const std::string text = format_report(r, Truncation::Drop);
  EXPECT_NE(text.find("p50 50  p90 90  p95 95  p99 99  max 100"), std::string::npos) << text;
  EXPECT_NE(text.find("over max_seq_length: 5 samples (5.0%)"), std::string::npos) << text;
  EXPECT_NE(text.find("truncation drop removes them with 50 of"), std::string::npos) << text;
  EXPECT_EQ(parse_truncation("drop"), Truncation::Drop);
  EXPECT_THROW(parse_truncation("left"), Error);
}

// ---- DataLoader -----------------------------------------------------------------------------------------------------

// Checks the Batch contract and returns, per row, the list of sample indices found by reading doc boundaries.
void check_batch(const Batch& b, const std::vector<Sample>& samples, int32_t pad_id, int64_t max_len) {
  ASSERT_EQ(b.input_ids.size(), static_cast<size_t>(b.B * b.T));
  ASSERT_EQ(b.labels.size(), b.input_ids.size());
  ASSERT_EQ(b.position_ids.size(), b.input_ids.size());
  ASSERT_EQ(b.doc_ids.size(), b.input_ids.size());
  EXPECT_LE(b.T, max_len);
  size_t next_sample = 0;
  int64_t longest = 0;
  for (int64_t r = 0; r < b.B; ++r) {
    int64_t t = 0;
    int32_t doc = 0;
    while (t < b.T && b.doc_ids[r * b.T + t] != -1) {
      ASSERT_LT(next_sample, b.sample_indices.size());
      const Sample& s = samples[b.sample_indices[next_sample++]];
      for (size_t k = 0; k < s.ids.size(); ++k, ++t) {
        const int64_t at = r * b.T + t;
        ASSERT_EQ(b.input_ids[at], s.ids[k]);
        ASSERT_EQ(b.position_ids[at], static_cast<int32_t>(k));  // positions restart per document
        ASSERT_EQ(b.doc_ids[at], doc);
        ASSERT_EQ(b.labels[at], k == 0 ? kIgnoreIndex : s.labels[k]);  // first token of a document never a target
      }
      ++doc;
    }
    longest = std::max(longest, t);
    for (; t < b.T; ++t) {  // padding
      const int64_t at = r * b.T + t;
      EXPECT_EQ(b.input_ids[at], pad_id);
      EXPECT_EQ(b.labels[at], kIgnoreIndex);
      EXPECT_EQ(b.doc_ids[at], -1);
    }
  }
  EXPECT_EQ(next_sample, b.sample_indices.size());
  EXPECT_EQ(longest, b.T);  // dynamic padding: T is the longest row, not max_seq_length
}

TEST(DataLoader, DynamicPaddingEpochCoverageAndDropLast) {
  auto samples = random_samples(23, 40, 5);
  LoaderOptions o;
  o.batch_size = 4;
  o.max_seq_length = 40;
  o.pad_id = 7;
  DataLoader loader(samples, o);
  EXPECT_EQ(loader.batches_per_epoch(), 6);  // ceil(23 / 4)
  std::multiset<int32_t> seen;
  for (int i = 0; i < 6; ++i) {
    Batch b = loader.next();
    check_batch(b, *samples, 7, 40);
    EXPECT_EQ(b.B, i < 5 ? 4 : 3);
    seen.insert(b.sample_indices.begin(), b.sample_indices.end());
  }
  EXPECT_EQ(seen.size(), 23u);
  EXPECT_EQ(std::set<int32_t>(seen.begin(), seen.end()).size(), 23u);
  EXPECT_EQ(loader.position(), (LoaderPosition{1, 0}));
  o.drop_last = true;
  DataLoader dl(samples, o);
  EXPECT_EQ(dl.batches_per_epoch(), 5);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(dl.next().B, 4);
  EXPECT_EQ(dl.position(), (LoaderPosition{1, 0}));
  o.batch_size = 24;
  EXPECT_THROW(DataLoader(samples, o), Error);  // drop_last with fewer rows than one batch
}

TEST(DataLoader, DeterministicAcrossInstancesAndDifferentPerEpoch) {
  auto samples = random_samples(50, 30, 9);
  LoaderOptions o;
  o.batch_size = 3;
  o.max_seq_length = 30;
  o.seed = 1234;
  DataLoader a(samples, o), b(samples, o);
  for (int i = 0; i < 40; ++i) {
    Batch x = a.next(), y = b.next();
    ASSERT_EQ(x.input_ids, y.input_ids);
    ASSERT_EQ(x.sample_indices, y.sample_indices);
  }
  EXPECT_NE(a.epoch_rows(0), a.epoch_rows(1));  // reshuffled every epoch
  o.seed = 1235;
  DataLoader c(samples, o);
  EXPECT_NE(c.epoch_rows(0), a.epoch_rows(0));
  o.shuffle = false;
  DataLoader d(samples, o);
  EXPECT_EQ(d.next().sample_indices, (std::vector<int32_t>{0, 1, 2}));
}

TEST(DataLoader, SeekResumesExactlyAndTargetsAhead) {
  auto samples = random_samples(37, 25, 2);
  for (bool packing : {false, true}) {
    LoaderOptions o;
    o.batch_size = 2;
    o.max_seq_length = 60;
    o.packing = packing;
    o.group_by_length = !packing;
    DataLoader a(samples, o);
    const int64_t per_epoch = a.batches_per_epoch();
    for (int64_t i = 0; i < per_epoch + 3; ++i) a.next();  // into epoch 1
    const LoaderPosition pos = a.position();
    EXPECT_EQ(pos, (LoaderPosition{1, 3}));
    // Target counts of the next k micro-batches, crossing into epoch 2, equal what next() then returns.
    const int64_t k = per_epoch;
    std::vector<int64_t> ahead = a.targets_ahead(k);
    ASSERT_EQ(ahead.size(), static_cast<size_t>(k));
    DataLoader fresh(samples, o);
    fresh.seek(pos);
    EXPECT_EQ(fresh.peek(2).input_ids, a.peek(2).input_ids);
    for (int64_t i = 0; i < k; ++i) {
      Batch x = a.next(), y = fresh.next();
      ASSERT_EQ(x.input_ids, y.input_ids);
      ASSERT_EQ(x.labels, y.labels);
      EXPECT_EQ(x.count_targets(), ahead[i]) << "packing " << packing << " batch " << i;
    }
    EXPECT_THROW(fresh.seek({0, per_epoch}), Error);
  }
}

TEST(DataLoader, PackingInvariants) {
  auto samples = random_samples(200, 64, 17);
  LoaderOptions o;
  o.batch_size = 3;
  o.max_seq_length = 128;
  o.packing = true;
  o.pad_id = 0;
  DataLoader loader(samples, o);
  // Every sample in exactly one packed row; rows fit; far fewer rows than samples.
  const auto& rows = loader.epoch_rows(0);
  std::vector<int> count(samples->size(), 0);
  for (const auto& row : rows) {
    int64_t len = 0;
    for (int32_t s : row) count[s]++, len += static_cast<int64_t>((*samples)[s].ids.size());
    EXPECT_LE(len, 128);
  }
  for (int c : count) EXPECT_EQ(c, 1);
  EXPECT_LT(rows.size(), samples->size() / 2);
  // Same rows every epoch (packed once), in a different order.
  auto sorted_rows = [](std::vector<std::vector<int32_t>> r) {
    std::sort(r.begin(), r.end());
    return r;
  };
  EXPECT_EQ(sorted_rows(loader.epoch_rows(0)), sorted_rows(loader.epoch_rows(1)));
  EXPECT_NE(loader.epoch_rows(0), loader.epoch_rows(1));
  int64_t targets = 0, expected_targets = 0;
  for (const auto& s : *samples) expected_targets += s.targets;
  for (int64_t i = 0; i < loader.batches_per_epoch(); ++i) {
    Batch b = loader.next();
    check_batch(b, *samples, 0, 128);
    targets += b.count_targets();
  }
  EXPECT_EQ(targets, expected_targets);  // masking first tokens loses nothing: they were never targets
}

TEST(DataLoader, GroupByLengthPutsLongestFirst) {
  auto samples = random_samples(120, 50, 4);
  LoaderOptions o;
  o.batch_size = 4;
  o.max_seq_length = 50;
  o.group_by_length = true;
  DataLoader loader(samples, o);
  int64_t longest = 0;
  for (const auto& s : *samples) longest = std::max<int64_t>(longest, static_cast<int64_t>(s.ids.size()));
  for (int epoch = 0; epoch < 3; ++epoch) {
    Batch b = loader.next();
    EXPECT_EQ(b.T, longest);
    for (int64_t i = 1; i < loader.batches_per_epoch(); ++i) loader.next();
  }
}

TEST(DataLoader, RejectsUntruncatedSamples) {
  auto samples = random_samples(5, 30, 1);
  LoaderOptions o;
  o.max_seq_length = 10;
  try {
    DataLoader loader(samples, o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("apply_truncation first"), std::string::npos);
  }
}

// ---- validation split -----------------------------------------------------------------------------------------------

TEST(ValidationSplit, ParseAndSplit) {
  EXPECT_DOUBLE_EQ(parse_validation_split("0.1").fraction, 0.1);
  EXPECT_EQ(parse_validation_split("25").count, 25);
  EXPECT_FALSE(parse_validation_split("0").enabled());
  EXPECT_THROW(parse_validation_split("1.5"), Error);
  EXPECT_THROW(parse_validation_split("ten"), Error);
  EXPECT_THROW(parse_validation_split("-3"), Error);
  std::vector<Example> rows(100);
  for (int i = 0; i < 100; ++i) rows[i].instruction = std::to_string(i);
  auto train = rows;
  auto eval = split_validation(train, parse_validation_split("0.1"), 7);
  EXPECT_EQ(eval.size(), 10u);
  EXPECT_EQ(train.size(), 90u);
  std::set<std::string> all;
  for (auto& e : eval) all.insert(e.instruction);
  for (auto& e : train) all.insert(e.instruction);
  EXPECT_EQ(all.size(), 100u);
  for (size_t i = 1; i < train.size(); ++i)  // relative order kept
    EXPECT_LT(std::stoi(train[i - 1].instruction), std::stoi(train[i].instruction));
  auto train2 = rows;
  auto eval2 = split_validation(train2, parse_validation_split("0.1"), 7);
  for (size_t i = 0; i < eval.size(); ++i) EXPECT_EQ(eval[i].instruction, eval2[i].instruction);
  auto train3 = rows;
  EXPECT_EQ(split_validation(train3, parse_validation_split("30"), 7).size(), 30u);
  auto train4 = rows;
  EXPECT_THROW(split_validation(train4, parse_validation_split("100"), 7), Error);
}

}  // namespace
}  // namespace sft::data

namespace sft::data {
namespace {

// Wrapped packing: samples longer than a row continue in the next one; each piece is its own document (positions
// from 0, its first token not a target), every token is trained exactly once per epoch, targets_ahead agrees.
TEST(DataLoader, WrappedPackingSplitsSamplesIntoPieces) {
  auto samples = std::make_shared<std::vector<Sample>>();
  Rng rng(5);
  for (int32_t i = 0; i < 60; ++i) samples->push_back(make_sample(i, 1 + static_cast<int64_t>(rng.below(70)), 20));
  LoaderOptions o;
  o.batch_size = 3;
  o.max_seq_length = 32;
  o.packing = true;
  o.packing_strategy = PackingStrategy::Wrapped;
  DataLoader loader(samples, o);
  const std::vector<int64_t> ahead = loader.targets_ahead(loader.batches_per_epoch());
  std::map<std::pair<int32_t, int64_t>, int> seen;  // (sample, offset) -> times trained
  for (int64_t i = 0; i < loader.batches_per_epoch(); ++i) {
    const Batch b = loader.next();
    EXPECT_LE(b.T, 32);
    EXPECT_EQ(b.count_targets(), ahead[static_cast<size_t>(i)]);
    for (int64_t at = 0; at < b.B * b.T; ++at) {
      if (b.doc_ids[at] < 0) continue;
      const auto sample = static_cast<int32_t>(b.origins[at] >> 32);
      const int64_t offset = b.origins[at] & 0xffffffff;
      const Sample& s = (*samples)[sample];
      ++seen[{sample, offset}];
      EXPECT_EQ(b.input_ids[at], s.ids[offset]);
      const bool starts = at % b.T == 0 || b.doc_ids[at - 1] != b.doc_ids[at];
      EXPECT_EQ(b.position_ids[at] == 0, starts);  // positions restart at every piece
      EXPECT_EQ(b.labels[at], starts ? kIgnoreIndex : s.labels[offset]);
    }
  }
  int64_t tokens = 0;
  for (const Sample& s : *samples) tokens += static_cast<int64_t>(s.ids.size());
  EXPECT_EQ(static_cast<int64_t>(seen.size()), tokens);
  for (const auto& [key, times] : seen) EXPECT_EQ(times, 1);
  o.packing_strategy = PackingStrategy::Bfd;  // bfd needs truncated samples
  EXPECT_THROW(DataLoader(samples, o), Error);
}

// remove_padding: the same tokens (row after row), positions, labels and origins in one row with no padding; doc ids
// count the documents along the row; the same targets.
TEST(DataLoader, RemovePaddingLaysRowsEndToEnd) {
  auto samples = random_samples(40, 30, 3);
  for (bool packing : {false, true}) {
    LoaderOptions o;
    o.batch_size = 4;
    o.max_seq_length = 60;
    o.packing = packing;
    DataLoader loader(samples, o);
    const Batch padded = loader.next();
    const Batch flat = remove_padding(padded);
    EXPECT_EQ(flat.B, 1);
    EXPECT_EQ(flat.T, count_real_tokens(padded));
    if (!packing) EXPECT_LT(flat.T, padded.B * padded.T);  // bfd rows of these samples are full
    EXPECT_EQ(flat.count_targets(), padded.count_targets());
    EXPECT_EQ(flat.sample_indices, padded.sample_indices);
    size_t at = 0;
    int32_t docs = 0;
    for (int64_t i = 0; i < padded.B * padded.T; ++i) {
      if (padded.doc_ids[i] < 0) continue;
      ASSERT_LT(at, flat.input_ids.size());
      EXPECT_EQ(flat.input_ids[at], padded.input_ids[i]);
      EXPECT_EQ(flat.position_ids[at], padded.position_ids[i]);
      EXPECT_EQ(flat.labels[at], padded.labels[i]);
      EXPECT_EQ(flat.origins[at], padded.origins[i]);
      if (padded.position_ids[i] == 0) ++docs;
      EXPECT_EQ(flat.doc_ids[at], docs - 1);
      ++at;
    }
    EXPECT_EQ(static_cast<size_t>(docs), padded.sample_indices.size());
    EXPECT_EQ(remove_padding(flat).input_ids, flat.input_ids);  // already padding-free: unchanged
  }
}

}  // namespace
}  // namespace sft::data
