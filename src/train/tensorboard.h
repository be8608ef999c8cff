// TensorBoard event files written without TensorFlow or protobuf: the TFRecord framing (length, masked CRC-32C of the
// length, payload, masked CRC-32C of the payload) around hand-encoded `Event` protobuf messages (wall_time, step, and
// one of file_version / summary / session_log), as tensorboard's EventAccumulator reads them.
//
// Typical use (the trainer, once per logging interval):
//   train::TensorBoardWriter tb;
//   tb.open(logging_dir, resumed_from_step);   // a new events.out.tfevents.* file in logging_dir
//   tb.log_row(row, TensorBoardWriter::now()); // HF Trainer's tags (train/loss, eval/loss, ...) at row.step; flushed
//   tb.close();
// Tags follow transformers' TensorBoardCallback (rewrite_logs): every numeric key of the logged row but "step" gets
// the prefix "train/", a key starting with "eval_" becomes "eval/<rest>" (eval_loss -> eval/loss). docs/arch/train.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "train/train_log.h"

namespace sft::train {

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven; crc32c_bitwise is its plain reference.
uint32_t crc32c(const void* data, size_t n);
uint32_t crc32c_bitwise(const void* data, size_t n);
// TFRecord's masking: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t masked_crc32c(const void* data, size_t n);
// One TFRecord: u64 length (little endian) | u32 masked crc of those 8 bytes | payload | u32 masked crc of payload.
std::string tfrecord(std::string_view payload);

// Serialized `Event` messages (fields in field-number order, as protobuf's own serializers write them).
std::string event_file_version(double wall_time, int64_t step);                    // file_version "brain.Event:2"
std::string event_session_start(double wall_time, int64_t step);                   // session_log {status: START}
std::string event_scalar(double wall_time, int64_t step, std::string_view tag, float value);  // simple_value
// A text summary as torch's SummaryWriter.add_text writes it: tag + "/text_summary", plugin "text", a DT_STRING
// tensor of shape [1].
std::string event_text(double wall_time, int64_t step, std::string_view tag, std::string_view text);

// HF Trainer's TensorBoard tags for one logged row: rewrite_logs over the numeric keys of log_row_json(row)
// ("step" is the event's step, not a scalar). Train rows: train/loss, train/learning_rate, train/grad_norm,
// train/tokens_per_second, train/model_flops_per_second, train/num_tokens, train/epoch; eval rows: eval/loss,
// train/epoch.
std::vector<std::pair<std::string, double>> tensorboard_scalars(const LogRow& row);
// rewrite_logs for one key: "eval_x" -> "eval/x", "test_x" -> "test/x", anything else -> "train/<key>".
std::string tensorboard_tag(std::string_view log_key);

// The folder for events files: created (with its parents) when missing; anything but a folder is an error naming it.
void make_logging_dir(const std::filesystem::path& dir);
// Transformers 5's default (TensorBoardCallback: output_dir/default_logdir()): <output_dir>/runs/<Mon DD_HH-MM-SS>_<host>
// in local time, e.g. out/runs/Dec03_21-19-05_myhost.
std::filesystem::path default_logging_dir(const std::filesystem::path& output_dir, std::time_t when);

class TensorBoardWriter {
 public:
  TensorBoardWriter() = default;
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;
  ~TensorBoardWriter();  // flushes what is buffered (errors are swallowed here; call close() to see them)

  // Creates logging_dir (and its parents) when missing and a NEW events file in it:
  //   events.out.tfevents.<10-digit unix time>.<host>.<pid>.<n>
  // (the name tensorboard's and torch's writers use; created with O_EXCL, never overwriting). TensorBoard reads the
  // files of a folder in name order, so the time field is raised above every events file already there: a resumed
  // run's file always sorts after the run it continues. The first record is the file_version event.
  // resumed_from_step (the checkpoint's global step S): the file then starts with a SessionLog START event at step
  // S + 1, which makes TensorBoard drop every event of the earlier files at step >= S + 1 — the steps a killed run
  // logged after its last checkpoint, which the resumed run logs again (torch SummaryWriter's purge_step). Steps <= S
  // are kept and never written twice. Errors (one line naming the folder or file): the folder is a file, cannot be
  // created, the file cannot be created.
  void open(const std::filesystem::path& logging_dir, std::optional<int64_t> resumed_from_step = std::nullopt);
  bool is_open() const { return fd_ >= 0; }
  const std::filesystem::path& path() const { return path_; }

  // Buffered until flush(). value is stored as float32 (simple_value), as add_scalar does.
  void scalar(std::string_view tag, int64_t step, double value, double wall_time);
  void text(std::string_view tag, int64_t step, std::string_view text, double wall_time);
  // Every scalar of the row (tensorboard_scalars) at row.step, then flush(): a crash loses at most the rows not yet
  // logged (HF's callback flushes after every on_log too).
  void log_row(const LogRow& row, double wall_time);
  // Writes the buffered records and fdatasyncs the file. A failed write is an sft::Error naming the file.
  void flush();
  void close();  // flush + close; the writer can be opened again

  static double now();  // seconds since the Unix epoch, microsecond resolution (the events' wall_time)

 private:
  void append(const std::string& event);
  int fd_ = -1;
  std::filesystem::path path_;
  std::string pending_;
};

}  // namespace sft::train
