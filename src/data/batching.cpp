// Truncation, ordering (explicit PRNG, HF length grouping), the resumable DataLoader and padding-free batches.
// Packing strategies: data/packing.cpp.
#include "data/batching.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numeric>

#include "util/error.h"

namespace sft::data {

// ---- truncation -------------------------------------------------------------------------------------------------

Truncation parse_truncation(std::string_view name) {
  if (name == "right") return Truncation::Right;
  if (name == "drop") return Truncation::Drop;
  throw Error("unknown truncation \"" + std::string(name) + "\" (expected right or drop)");
}

namespace {
int64_t count_labels(const std::vector<int32_t>& labels) {
  return std::count_if(labels.begin(), labels.end(), [](int32_t l) { return l != kIgnoreIndex; });
}
}  // namespace

TruncationReport apply_truncation(std::vector<Sample>& samples, int64_t max_seq_length, Truncation mode) {
  SFT_CHECK(max_seq_length >= 2, "max_seq_length must be at least 2, got ", max_seq_length);
  TruncationReport r;
  r.samples = static_cast<int64_t>(samples.size());
  r.max_seq_length = max_seq_length;
  std::vector<int64_t> lengths;
  lengths.reserve(samples.size());
  double total = 0;
  for (const Sample& s : samples) {
    lengths.push_back(static_cast<int64_t>(s.ids.size()));
    total += static_cast<double>(s.ids.size());
    r.target_tokens += s.targets;
  }
  if (!lengths.empty()) {
    std::sort(lengths.begin(), lengths.end());
    const auto n = static_cast<int64_t>(lengths.size());
    // Nearest rank: the ceil(p/100 * n)-th smallest (1-based). Integer arithmetic avoids 0.95*100 rounding surprises.
    auto pct = [&](int64_t p) { return lengths[std::max<int64_t>(1, (p * n + 99) / 100) - 1]; };
    r.p50 = pct(50), r.p90 = pct(90), r.p95 = pct(95), r.p99 = pct(99), r.max = lengths.back();
    r.mean = total / static_cast<double>(n);
  }
  std::vector<Sample> kept;
  kept.reserve(samples.size());
  for (Sample& s : samples) {
    const auto len = static_cast<int64_t>(s.ids.size());
    if (len <= max_seq_length) {
      kept.push_back(std::move(s));
      continue;
    }
    ++r.over_length;
    if (mode == Truncation::Split) {  // wrapped packing cuts it across rows; nothing is lost here
      kept.push_back(std::move(s));
      continue;
    }
    if (mode == Truncation::Drop) {
      r.target_tokens_dropped += s.targets;
      ++r.samples_removed;
      continue;
    }
    s.ids.resize(max_seq_length);
    s.labels.resize(max_seq_length);
    const int64_t left = count_labels(s.labels);
    r.target_tokens_dropped += s.targets - left;
    s.targets = left;
    if (left == 0) {
      ++r.samples_without_targets;
      ++r.samples_removed;
      continue;
    }
    kept.push_back(std::move(s));
  }
  samples = std::move(kept);
  r.samples_kept = static_cast<int64_t>(samples.size());
  return r;
}

// ---- batch --------------------------------------------------------------------------------------------------------

int64_t Batch::count_targets() const { return count_labels(labels); }

int64_t count_real_tokens(const Batch& b) {
  return std::count_if(b.doc_ids.begin(), b.doc_ids.end(), [](int32_t d) { return d >= 0; });
}

Batch remove_padding(const Batch& padded) {
  const size_t n = padded.doc_ids.size();
  SFT_CHECK(n == static_cast<size_t>(padded.B * padded.T) && padded.input_ids.size() == n &&
                padded.position_ids.size() == n && padded.labels.size() == n &&
                (padded.origins.empty() || padded.origins.size() == n),
            "remove_padding: a ", padded.B, " x ", padded.T, " batch needs that many ids, positions, docs and labels");
  Batch b;
  b.B = 1;
  b.sample_indices = padded.sample_indices;
  const size_t real = static_cast<size_t>(count_real_tokens(padded));
  b.input_ids.reserve(real);
  b.position_ids.reserve(real);
  b.doc_ids.reserve(real);
  b.labels.reserve(real);
  if (!padded.origins.empty()) b.origins.reserve(real);
  int32_t doc = -1;
  for (int64_t r = 0; r < padded.B; ++r) {
    int32_t prev = -1;  // a row's documents are runs of one doc id; each run becomes the next document of the row
    for (int64_t t = 0; t < padded.T; ++t) {
      const auto i = static_cast<size_t>(r * padded.T + t);
      const int32_t d = padded.doc_ids[i];
      if (d < 0) continue;
      if (t == 0 || d != prev) ++doc;
      prev = d;
      b.input_ids.push_back(padded.input_ids[i]);
      b.position_ids.push_back(padded.position_ids[i]);
      b.doc_ids.push_back(doc);
      b.labels.push_back(padded.labels[i]);
      if (!padded.origins.empty()) b.origins.push_back(padded.origins[i]);
    }
  }
  b.T = static_cast<int64_t>(b.input_ids.size());
  return b;
}

// ---- ordering primitives --------------------------------------------------------------------------------------------

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed) {
  for (uint64_t& s : s_) s = splitmix64(seed);
}

uint64_t Rng::next_u64() {  // xoshiro256** (Blackman & Vigna)
  auto rotl = [](uint64_t x, int k) { return (x << k) | (x >> (64 - k)); };
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

uint64_t Rng::below(uint64_t n) {
  SFT_CHECK(n > 0, "Rng::below(0)");
  unsigned __int128 m = static_cast<unsigned __int128>(next_u64()) * n;
  auto low = static_cast<uint64_t>(m);
  if (low < n) {
    const uint64_t threshold = (0 - n) % n;  // 2^64 mod n: reject the values that would bias small results
    while (low < threshold) {
      m = static_cast<unsigned __int128>(next_u64()) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

std::vector<int32_t> random_permutation(int64_t n, uint64_t seed) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  Rng rng(seed);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[i], p[rng.below(static_cast<uint64_t>(i) + 1)]);
  return p;
}

std::vector<int32_t> length_grouped_order(const std::vector<int64_t>& lengths, int64_t batch_size, uint64_t seed) {
  const auto n = static_cast<int64_t>(lengths.size());
  std::vector<int32_t> order = random_permutation(n, seed);
  if (n == 0) return order;
  const int64_t mult = std::max<int64_t>(1, std::min<int64_t>(n / (batch_size * 4), 50));
  const int64_t mega = mult * batch_size;
  std::vector<int64_t> starts;
  for (int64_t s = 0; s < n; s += mega) {
    starts.push_back(s);
    auto b = order.begin() + s, e = order.begin() + std::min(n, s + mega);
    std::stable_sort(b, e, [&](int32_t x, int32_t y) { return lengths[x] > lengths[y]; });
  }
  // HF puts the longest sample first (so an out-of-memory shows at step 1): the megabatch whose head is longest
  // gives its head to megabatch 0 (first maximum wins, like torch.argmax).
  size_t best = 0;
  for (size_t k = 1; k < starts.size(); ++k)
    if (lengths[order[starts[k]]] > lengths[order[starts[best]]]) best = k;
  std::swap(order[0], order[starts[best]]);
  return order;
}

// ---- DataLoader -------------------------------------------------------------------------------------------------

namespace {
// Independent streams for packing and for each epoch, derived from the user's seed.
uint64_t stream_seed(uint64_t seed, uint64_t stream) {
  uint64_t s = seed ^ (stream * 0xD1B54A32D192ED03ull);
  return splitmix64(s);
}
constexpr uint64_t kPackStream = 0x7061636bull;  // "pack"

std::vector<PackedRow> whole_samples(const std::vector<std::vector<int32_t>>& rows, const std::vector<int64_t>& len) {
  std::vector<PackedRow> out(rows.size());
  for (size_t r = 0; r < rows.size(); ++r)
    for (int32_t s : rows[r]) out[r].push_back({s, 0, len[static_cast<size_t>(s)]});
  return out;
}
}  // namespace

DataLoader::DataLoader(std::shared_ptr<const std::vector<Sample>> samples, const LoaderOptions& opts)
    : samples_(std::move(samples)), opts_(opts) {
  SFT_CHECK(samples_ && !samples_->empty(), "data loader: the dataset has no samples");
  SFT_CHECK(opts_.batch_size >= 1, "data loader: batch size must be >= 1, got ", opts_.batch_size);
  SFT_CHECK(samples_->size() < (size_t{1} << 31), "data loader: ", samples_->size(), " samples are too many");
  const auto n = static_cast<int64_t>(samples_->size());
  const bool wrapped = opts_.packing && opts_.packing_strategy == PackingStrategy::Wrapped;
  std::vector<int64_t> lengths(n);
  for (int64_t i = 0; i < n; ++i) {
    const Sample& s = (*samples_)[i];
    lengths[i] = static_cast<int64_t>(s.ids.size());
    SFT_CHECK(lengths[i] >= 1 && s.labels.size() == s.ids.size(), "data loader: sample ", i, " is malformed");
    SFT_CHECK(lengths[i] < (int64_t{1} << 32), "data loader: sample ", i, " has ", lengths[i], " tokens");
    SFT_CHECK(wrapped || lengths[i] <= opts_.max_seq_length, "data loader: sample ", i, " has ", lengths[i],
              " tokens > max_seq_length ", opts_.max_seq_length, " (apply_truncation first)");
  }
  if (!opts_.packing) {
    base_rows_.resize(n);
    for (int64_t i = 0; i < n; ++i) base_rows_[i] = {{static_cast<int32_t>(i), 0, lengths[i]}};
  } else if (opts_.packing_strategy == PackingStrategy::Bfd) {
    base_rows_ = whole_samples(pack_best_fit_decreasing(lengths, opts_.max_seq_length), lengths);
  } else if (wrapped) {
    base_rows_ = pack_wrapped(lengths, opts_.max_seq_length);
  } else {
    base_rows_ = whole_samples(
        pack_first_fit(lengths, random_permutation(n, stream_seed(opts_.seed, kPackStream)), opts_.max_seq_length),
        lengths);
  }
  SFT_CHECK(batches_per_epoch() > 0, "data loader: ", rows_per_epoch(), " rows are fewer than one batch of ",
            opts_.batch_size, " and drop_last is set: no batch to train on");
}

int64_t DataLoader::rows_per_epoch() const { return static_cast<int64_t>(base_rows_.size()); }

int64_t DataLoader::batches_per_epoch() const {
  const int64_t rows = rows_per_epoch(), b = opts_.batch_size;
  return opts_.drop_last ? rows / b : (rows + b - 1) / b;
}

namespace {
int64_t row_length(const PackedRow& row) {
  int64_t len = 0;
  for (const Piece& p : row) len += p.length();
  return len;
}
}  // namespace

const std::vector<PackedRow>& DataLoader::rows_of_epoch(int64_t epoch) const {
  if (!opts_.shuffle) return base_rows_;
  if (cached_epoch_ == epoch) return cached_rows_;
  const uint64_t seed = stream_seed(opts_.seed, static_cast<uint64_t>(epoch) + 1);
  std::vector<int32_t> order;
  if (opts_.group_by_length) {
    std::vector<int64_t> row_len(base_rows_.size());
    for (size_t r = 0; r < base_rows_.size(); ++r) row_len[r] = row_length(base_rows_[r]);
    order = length_grouped_order(row_len, opts_.batch_size, seed);
  } else {
    order = random_permutation(rows_per_epoch(), seed);
  }
  cached_rows_.clear();
  cached_rows_.reserve(order.size());
  for (int32_t r : order) cached_rows_.push_back(base_rows_[r]);
  cached_epoch_ = epoch;
  return cached_rows_;
}

std::vector<std::vector<int32_t>> DataLoader::epoch_rows(int64_t epoch) const {
  std::vector<std::vector<int32_t>> out;
  for (const PackedRow& row : rows_of_epoch(epoch)) {
    out.emplace_back();
    for (const Piece& p : row) out.back().push_back(p.sample);
  }
  return out;
}

std::vector<int64_t> DataLoader::epoch_row_lengths(int64_t epoch) const {
  std::vector<int64_t> out;
  for (const PackedRow& row : rows_of_epoch(epoch)) out.push_back(row_length(row));
  return out;
}

void DataLoader::seek(const LoaderPosition& pos) {
  SFT_CHECK(pos.epoch >= 0 && pos.index >= 0 && pos.index < batches_per_epoch(), "data loader: cannot resume at epoch ",
            pos.epoch, " batch ", pos.index, ": an epoch has ", batches_per_epoch(),
            " batches (was the dataset or batch size changed since the checkpoint?)");
  pos_ = pos;
}

int64_t DataLoader::piece_targets(const Piece& p) const {
  const Sample& smp = (*samples_)[static_cast<size_t>(p.sample)];
  if (p.begin == 0 && p.end == static_cast<int64_t>(smp.ids.size()))
    return smp.targets - (smp.labels[0] != kIgnoreIndex ? 1 : 0);  // build() masks each first token
  return std::count_if(smp.labels.begin() + p.begin + 1, smp.labels.begin() + p.end,
                       [](int32_t l) { return l != kIgnoreIndex; });
}

Batch DataLoader::build(int64_t epoch, int64_t index) const {
  const auto& rows = rows_of_epoch(epoch);
  const int64_t first = index * opts_.batch_size;
  const int64_t last = std::min<int64_t>(first + opts_.batch_size, static_cast<int64_t>(rows.size()));
  Batch b;
  b.B = last - first;
  for (int64_t r = first; r < last; ++r) b.T = std::max(b.T, row_length(rows[r]));  // dynamic padding
  const size_t total = static_cast<size_t>(b.B * b.T);
  b.input_ids.assign(total, opts_.pad_id);
  b.labels.assign(total, kIgnoreIndex);
  b.doc_ids.assign(total, -1);
  b.position_ids.assign(total, 0);
  b.origins.assign(total, -1);
  for (int64_t r = first; r < last; ++r) {
    size_t at = static_cast<size_t>((r - first) * b.T);
    int32_t doc = 0;
    for (const Piece& p : rows[r]) {
      const Sample& smp = (*samples_)[p.sample];
      b.sample_indices.push_back(p.sample);
      for (int64_t t = p.begin; t < p.end; ++t, ++at) {
        b.input_ids[at] = smp.ids[t];
        // The first token of a document is never a target: the shift must not predict it from the previous doc.
        b.labels[at] = t == p.begin ? kIgnoreIndex : smp.labels[t];
        b.doc_ids[at] = doc;
        b.position_ids[at] = static_cast<int32_t>(t - p.begin);  // positions restart per piece
        b.origins[at] = (static_cast<int64_t>(p.sample) << 32) | t;
      }
      ++doc;
    }
  }
  return b;
}

namespace {
LoaderPosition advance(LoaderPosition p, int64_t steps, int64_t per_epoch) {
  const int64_t flat = p.index + steps;
  return {p.epoch + flat / per_epoch, flat % per_epoch};
}
}  // namespace

Batch DataLoader::next() {
  Batch b = build(pos_.epoch, pos_.index);
  pos_ = advance(pos_, 1, batches_per_epoch());
  return b;
}

Batch DataLoader::peek(int64_t ahead) const {
  LoaderPosition p = advance(pos_, ahead, batches_per_epoch());
  return build(p.epoch, p.index);
}

std::vector<int64_t> DataLoader::targets_ahead(int64_t k) const {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(std::max<int64_t>(k, 0)));
  for (int64_t a = 0; a < k; ++a) {
    LoaderPosition p = advance(pos_, a, batches_per_epoch());
    const auto& rows = rows_of_epoch(p.epoch);
    const int64_t first = p.index * opts_.batch_size;
    const int64_t last = std::min<int64_t>(first + opts_.batch_size, static_cast<int64_t>(rows.size()));
    int64_t sum = 0;
    for (int64_t r = first; r < last; ++r)
      for (const Piece& piece : rows[r]) sum += piece_targets(piece);
    out.push_back(sum);
  }
  return out;
}

// ---- validation split ---------------------------------------------------------------------------------------------

ValidationSplit parse_validation_split(std::string_view text) {
  ValidationSplit v;
  const std::string s(text);
  const bool looks_fraction = s.find_first_of(".eE") != std::string::npos;
  if (!looks_fraction) {
    int64_t count = -1;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), count);
    SFT_CHECK(ec == std::errc() && ptr == s.data() + s.size() && count >= 0, "validation_split \"", s,
              "\": expected a fraction in (0, 1) such as 0.05, or a row count such as 500");
    v.count = count;
    return v;
  }
  char* end = nullptr;
  const double f = std::strtod(s.c_str(), &end);
  SFT_CHECK(end == s.c_str() + s.size() && f >= 0.0 && f < 1.0, "validation_split \"", s,
            "\": expected a fraction in (0, 1) such as 0.05, or a row count such as 500");
  v.fraction = f;
  return v;
}

std::vector<Example> split_validation(std::vector<Example>& train, const ValidationSplit& split, uint64_t seed) {
  if (!split.enabled()) return {};
  const auto n = static_cast<int64_t>(train.size());
  const int64_t k = split.count > 0 ? split.count
                                    : std::max<int64_t>(1, std::llround(split.fraction * static_cast<double>(n)));
  SFT_CHECK(k < n, "validation_split takes ", k, " of ", n, " rows and would leave none to train on");
  std::vector<int32_t> perm = random_permutation(n, stream_seed(seed, 0x76616c6964ull));  // "valid"
  std::vector<char> is_eval(n, 0);
  for (int64_t i = 0; i < k; ++i) is_eval[perm[i]] = 1;
  std::vector<Example> eval, rest;
  eval.reserve(k);
  rest.reserve(n - k);
  for (int64_t i = 0; i < n; ++i) (is_eval[i] ? eval : rest).push_back(std::move(train[i]));
  train = std::move(rest);
  return eval;
}

}  // namespace sft::data
