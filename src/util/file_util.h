// Small file helpers shared by every layer: whole-file reads with clear errors, and atomic writes
// (temp name in the same folder, fsync, rename) so that nothing half-written is ever left behind.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "util/input_file.h"

namespace sft {

namespace fs = std::filesystem;

// Reads a whole regular file (at most input::any_file's limit; util/input_file.h says why and how); throws
// sft::Error naming the path when it cannot. Files of a known kind (JSON, tokenizer.json, templates, datasets) are
// read with read_input_file(path, input::<kind>) for their own limit and UTF-8 rule.
std::string read_file(const fs::path& path);

// Writes `data` to `path` atomically (tmp file + fsync + rename).
void write_file_atomic(const fs::path& path, std::string_view data);

// Calls writer(fd) on a temp file next to `path`, fsyncs and renames it over `path`; on exception the temp is removed.
void write_file_atomic_fd(const fs::path& path, const std::function<void(int fd)>& writer);

// write(2) loop that throws with the path on short writes.
void write_all(int fd, const void* data, size_t n, const fs::path& path_for_errors);

// A read-only memory map of a whole regular file (munmap on destruction), opened by util/input_file.h's rule.
class MappedFile {
 public:
  MappedFile() = default;
  explicit MappedFile(const fs::path& path, const InputKind& kind = input::weights);
  MappedFile(MappedFile&& o) noexcept;
  MappedFile& operator=(MappedFile&& o) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const fs::path& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  fs::path path_;
};

}  // namespace sft
