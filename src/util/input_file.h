// Opening the files sft reads from model folders, adapters, checkpoints and datasets. They are hostile input, so
// every one of them is opened through this one helper, under one rule (docs/arch/hardening.md, "Untrusted files"):
//
//  - Symlinks are followed (the Hugging Face cache links every file of a snapshot to a blob); the checks below apply
//    to what the link points at, and a dangling link or a loop is an error naming the path.
//  - Only regular files are read. A folder, FIFO, socket or device is an error naming the path; the file is opened
//    with O_NONBLOCK, so a FIFO never blocks the open while it waits for a writer (that used to hang sft forever).
//  - Each kind of file has a size limit, checked on the size fstat reports and again while reading (a /proc file
//    reports 0 bytes and then produces text).
//  - Where the format requires UTF-8 (JSON, Jinja templates), ill-formed UTF-8 is an error naming the line and byte
//    offset, as transformers/tokenizers refuse such files instead of reading them differently.
//
// read_file() (util/file_util.h) is this helper with the generic limit; MappedFile maps through open_input_file().
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

namespace sft {

// What a file is expected to be: bounds its size and says whether it must be UTF-8 text.
struct InputKind {
  const char* what;     // names the kind in errors: "JSON file", "chat template", ...
  uint64_t max_bytes;   // larger files are refused
  bool utf8;            // ill-formed UTF-8 is refused
};

namespace input {
inline constexpr uint64_t MiB = uint64_t{1} << 20;
inline constexpr uint64_t GiB = uint64_t{1} << 30;
// config.json, generation_config.json, tokenizer_config.json, adapter_config.json, model.safetensors.index.json and
// other small JSON files such as a checkpoint's trainer_state.json (real ones are KBs; tokenizer_config.json with a
// large added_tokens_decoder a few MB).
inline constexpr InputKind json_file{"JSON file", 64 * MiB, true};
// tokenizer.json: tens of MB for 250k-token vocabularies.
inline constexpr InputKind tokenizer_json{"tokenizer.json", 1 * GiB, true};
// chat_template.jinja (and a template string inside tokenizer_config.json): real ones are < 100 KB; parsing costs
// ~75x the text (a 1 MB template of small expressions: 76 MB), so the limit also bounds the parser's memory.
inline constexpr InputKind chat_template{"chat template", 1 * MiB, true};
// Dataset files (JSON, JSON lines, CSV), read whole: the readers check UTF-8 per row and name it.
inline constexpr InputKind dataset{"dataset file", 64 * GiB, false};
// safetensors files (memory-mapped, never read whole; the header is validated by io).
inline constexpr InputKind weights{"safetensors file", uint64_t{1} << 40, false};
// GGUF files (memory-mapped; the reader bounds every count and offset, io/gguf.cpp).
inline constexpr InputKind gguf_file{"GGUF file", uint64_t{1} << 40, false};
// Anything else read whole (task files, caches, reports): the generic read_file() limit.
inline constexpr InputKind any_file{"file", 16 * GiB, false};
}  // namespace input

// An open, regular, size-checked file (closed on destruction).
class InputFile {
 public:
  InputFile(const std::filesystem::path& path, const InputKind& kind);  // throws sft::Error naming the path
  InputFile(InputFile&& o) noexcept;
  InputFile& operator=(InputFile&&) = delete;
  InputFile(const InputFile&) = delete;
  InputFile& operator=(const InputFile&) = delete;
  ~InputFile();
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }  // as fstat reported it
  // The whole content, at most kind.max_bytes (checked while reading), UTF-8-validated when the kind requires it.
  std::string read_all();

 private:
  std::filesystem::path path_;
  const InputKind* kind_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

// True when `path` names a directory entry, a dangling symlink included: callers that treat an optional file as
// absent use this, so that a broken link is opened and reported rather than silently ignored.
bool input_present(const std::filesystem::path& path);

// Reads a whole file of the given kind (InputFile + read_all()).
std::string read_input_file(const std::filesystem::path& path, const InputKind& kind);

// Throws sft::Error "<origin>: line L: invalid UTF-8 at byte offset N ..." when text is not UTF-8.
void require_utf8(std::string_view text, const std::string& origin);

}  // namespace sft
