// TensorBoard events: TFRecord framing + the few protobuf messages TensorBoard's scalar and text plugins read, encoded
// by hand (field numbers from tensorboard's event.proto, summary.proto, tensor.proto, tensor_shape.proto).
#include "train/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>

#include <nlohmann/json.hpp>

#include "util/error.h"
#include "util/file_util.h"

namespace sft::train {
namespace {

// ---- CRC-32C ----

constexpr uint32_t kCastagnoliReflected = 0x82F63B78u;

std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCastagnoliReflected : c >> 1;
    t[i] = c;
  }
  return t;
}

// ---- protobuf wire format (only what the messages below need) ----

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, uint32_t field, WireType type) { put_varint(out, (uint64_t{field} << 3) | type); }
void put_bytes(std::string& out, uint32_t field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}
template <class T>
void put_little_endian(std::string& out, T bits) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
}
void put_double(std::string& out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed64);
  put_little_endian(out, bits);
}
void put_float(std::string& out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  put_key(out, field, kFixed32);
  put_little_endian(out, bits);
}

// Event: wall_time = 1 (double), step = 2 (int64); then one of file_version = 3, summary = 5, session_log = 7.
// proto3 leaves out scalar fields that hold their default (0), as protobuf's serializers do; oneof members are
// always written.
enum EventField : uint32_t { kWallTime = 1, kStep = 2, kFileVersion = 3, kSummary = 5, kSessionLog = 7 };

std::string event_header(double wall_time, int64_t step) {
  std::string e;
  uint64_t bits;
  std::memcpy(&bits, &wall_time, sizeof bits);
  if (bits != 0) put_double(e, kWallTime, wall_time);
  if (step != 0) {
    put_key(e, kStep, kVarint);
    put_varint(e, static_cast<uint64_t>(step));  // negative int64: ten-byte two's complement, as protobuf does
  }
  return e;
}

// Summary { repeated Value value = 1 }; Value { tag = 1, simple_value = 2 (float), tensor = 8, metadata = 9 }.
std::string summary_of(const std::string& value) {
  std::string s;
  put_bytes(s, 1, value);
  return s;
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  std::string h(buf);
  for (char& c : h)
    if (c == '/') c = '_';
  return h;
}

constexpr std::string_view kEventsPrefix = "events.out.tfevents.";

// The time field of an events file name as we, torch and tensorboard write it (10 digits: seconds since the epoch);
// -1 for any other name.
int64_t events_file_time(const std::string& name) {
  if (name.compare(0, kEventsPrefix.size(), kEventsPrefix) != 0) return -1;
  int64_t t = 0;
  size_t i = kEventsPrefix.size(), digits = 0;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && digits <= 10; ++i, ++digits) t = t * 10 + (name[i] - '0');
  return digits == 10 && t < 9999999999 ? t : -1;
}

}  // namespace

void make_logging_dir(const std::filesystem::path& dir) {
  std::error_code ec;
  const auto st = std::filesystem::status(dir, ec);
  if (std::filesystem::exists(st)) {
    SFT_CHECK(std::filesystem::is_directory(st), dir.string(),
              ": the TensorBoard logging dir exists and is not a folder (logging_dir must name a folder)");
    return;
  }
  std::filesystem::create_directories(dir, ec);
  SFT_CHECK(!ec, dir.string(), ": cannot create the TensorBoard logging dir (", ec.message(), ")");
}

std::filesystem::path default_logging_dir(const std::filesystem::path& output_dir, std::time_t when) {
  std::tm local{};
  localtime_r(&when, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%b%d_%H-%M-%S", &local);  // datetime.now().strftime, C locale month names
  return output_dir / "runs" / (std::string(stamp) + "_" + hostname());
}

uint32_t crc32c(const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = make_crc_table();
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

uint32_t crc32c_bitwise(const void* data, size_t n) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kCastagnoliReflected : c >> 1;
  }
  return c ^ 0xFFFFFFFFu;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t c = crc32c(data, n);
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::string tfrecord(std::string_view payload) {
  std::string r;
  r.reserve(payload.size() + 16);
  put_little_endian(r, static_cast<uint64_t>(payload.size()));
  put_little_endian(r, masked_crc32c(r.data(), 8));
  r.append(payload);
  put_little_endian(r, masked_crc32c(payload.data(), payload.size()));
  return r;
}

std::string event_file_version(double wall_time, int64_t step) {
  std::string e = event_header(wall_time, step);
  put_bytes(e, kFileVersion, "brain.Event:2");
  return e;
}

std::string event_session_start(double wall_time, int64_t step) {
  std::string session_log;  // SessionLog { status = 1 (enum): START = 1 }
  put_key(session_log, 1, kVarint);
  put_varint(session_log, 1);
  std::string e = event_header(wall_time, step);
  put_bytes(e, kSessionLog, session_log);
  return e;
}

std::string event_scalar(double wall_time, int64_t step, std::string_view tag, float value) {
  std::string v;
  if (!tag.empty()) put_bytes(v, 1, tag);
  put_float(v, 2, value);
  std::string e = event_header(wall_time, step);
  put_bytes(e, kSummary, summary_of(v));
  return e;
}

std::string event_text(double wall_time, int64_t step, std::string_view tag, std::string_view text) {
  // TensorProto { dtype = 1 (DT_STRING = 7), tensor_shape = 2 { dim = 2 { size = 1 } }, string_val = 8 }.
  std::string dim, shape, tensor;
  put_key(dim, 1, kVarint);
  put_varint(dim, 1);
  put_bytes(shape, 2, dim);
  put_key(tensor, 1, kVarint);
  put_varint(tensor, 7);
  put_bytes(tensor, 2, shape);
  put_bytes(tensor, 8, text);
  // SummaryMetadata { plugin_data = 1 { plugin_name = 1: "text" } } (TextPluginData version 0 serializes to nothing).
  std::string plugin, metadata;
  put_bytes(plugin, 1, "text");
  put_bytes(metadata, 1, plugin);
  std::string v;
  put_bytes(v, 1, std::string(tag) + "/text_summary");
  put_bytes(v, 8, tensor);
  put_bytes(v, 9, metadata);
  std::string e = event_header(wall_time, step);
  put_bytes(e, kSummary, summary_of(v));
  return e;
}

std::string tensorboard_tag(std::string_view key) {
  if (key.substr(0, 5) == "eval_") return "eval/" + std::string(key.substr(5));
  if (key.substr(0, 5) == "test_") return "test/" + std::string(key.substr(5));
  return "train/" + std::string(key);
}

std::vector<std::pair<std::string, double>> tensorboard_scalars(const LogRow& row) {
  // The same keys trainer_log.jsonl and trainer_state.json's log_history hold, so the tags follow any key added there.
  const auto j = nlohmann::ordered_json::parse(log_row_json(row));
  std::vector<std::pair<std::string, double>> out;
  for (const auto& [key, value] : j.items()) {
    if (key == "step" || !value.is_number()) continue;
    out.emplace_back(tensorboard_tag(key), value.get<double>());
  }
  return out;
}

TensorBoardWriter::~TensorBoardWriter() {
  try {
    close();
  } catch (const Error&) {
  }
}

void TensorBoardWriter::open(const std::filesystem::path& logging_dir, std::optional<int64_t> resumed_from_step) {
  close();
  make_logging_dir(logging_dir);
  // Sort after every events file already in the folder (TensorBoard reads them in name order).
  int64_t t = static_cast<int64_t>(std::time(nullptr));
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(logging_dir, ec)) {
    const int64_t existing = events_file_time(entry.path().filename().string());
    if (existing >= t) t = existing + 1;
  }
  SFT_CHECK(!ec, logging_dir.string(), ": cannot list the TensorBoard logging dir (", ec.message(), ")");
  const std::string host = hostname();
  for (int n = 0; fd_ < 0; ++n) {
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%010lld", static_cast<long long>(t));
    path_ = logging_dir / (std::string(kEventsPrefix) + stamp + "." + host + "." + std::to_string(::getpid()) + "." +
                           std::to_string(n));
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0 && errno == EEXIST && n < 1000) continue;
    SFT_CHECK(fd_ >= 0, path_.string(), ": cannot create the TensorBoard events file (", std::strerror(errno), ")");
  }
  const double wall = now();
  if (resumed_from_step) {
    // torch's purge_step: the file_version event and a SessionLog START carry the first step this run writes.
    append(event_file_version(wall, *resumed_from_step + 1));
    append(event_session_start(wall, *resumed_from_step + 1));
  } else {
    append(event_file_version(wall, 0));
  }
  flush();
}

void TensorBoardWriter::append(const std::string& event) {
  SFT_CHECK(fd_ >= 0, "TensorBoard writer: write before open()");
  pending_ += tfrecord(event);
}

void TensorBoardWriter::scalar(std::string_view tag, int64_t step, double value, double wall_time) {
  append(event_scalar(wall_time, step, tag, static_cast<float>(value)));
}

void TensorBoardWriter::text(std::string_view tag, int64_t step, std::string_view text, double wall_time) {
  append(event_text(wall_time, step, tag, text));
}

void TensorBoardWriter::log_row(const LogRow& row, double wall_time) {
  for (const auto& [tag, value] : tensorboard_scalars(row)) scalar(tag, row.step, value, wall_time);
  flush();
}

void TensorBoardWriter::flush() {
  if (fd_ < 0 || pending_.empty()) return;
  const std::string data = std::move(pending_);
  pending_.clear();
  write_all(fd_, data.data(), data.size(), path_);
  // Reaches the disk, not only the page cache: a crash (power included) loses at most the rows after this flush.
  SFT_CHECK(::fdatasync(fd_) == 0, path_.string(), ": fdatasync failed (", std::strerror(errno), ")");
}

void TensorBoardWriter::close() {
  if (fd_ < 0) return;
  struct Closer {
    int& fd;
    ~Closer() {
      ::close(fd);
      fd = -1;
    }
  } closer{fd_};
  flush();
}

double TensorBoardWriter::now() {
  using namespace std::chrono;
  const auto us = duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  return static_cast<double>(us) / 1e6;
}

}  // namespace sft::train
