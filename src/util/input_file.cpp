#include "util/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "util/error.h"
#include "util/utf8.h"

namespace sft {

namespace {

std::string file_type_name(mode_t m) {
  if (S_ISDIR(m)) return "a folder";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISSOCK(m)) return "a socket";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  return "not a plain file";
}

std::string size_text(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 30) && bytes % (uint64_t{1} << 30) == 0) return std::to_string(bytes >> 30) + " GiB";
  if (bytes >= (uint64_t{1} << 20) && bytes % (uint64_t{1} << 20) == 0) return std::to_string(bytes >> 20) + " MiB";
  return std::to_string(bytes) + " bytes";
}

[[noreturn]] void too_large(const std::filesystem::path& p, const InputKind& k, const std::string& seen) {
  throw Error(p.string() + ": " + seen + ", larger than the " + size_text(k.max_bytes) + " sft accepts for a " +
              k.what);
}

}  // namespace

InputFile::InputFile(const std::filesystem::path& path, const InputKind& kind) : path_(path), kind_(&kind) {
  // O_NONBLOCK: opening a FIFO for reading would otherwise wait, silently and forever, for a writer.
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) {
    const int err = errno;
    struct stat st {};
    if (err == EISDIR || (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)))
      throw Error(path.string() + ": is a folder, expected a file");
    throw Error(path.string() + ": cannot open (" + std::strerror(err) + ")");
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    throw Error(path.string() + ": cannot stat (" + std::strerror(err) + ")");
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd_);
    if (S_ISDIR(st.st_mode)) throw Error(path.string() + ": is a folder, expected a file");
    throw Error(path.string() + ": is not a regular file but " + file_type_name(st.st_mode) +
                "; sft reads only regular files (write the data to a file first)");
  }
  size_ = static_cast<uint64_t>(st.st_size);
  if (size_ > kind.max_bytes) {
    ::close(fd_);
    too_large(path, kind, size_text(size_));
  }
  // Regular files never block; reads of one with O_NONBLOCK behave as blocking reads.
}

InputFile::InputFile(InputFile&& o) noexcept : path_(std::move(o.path_)), kind_(o.kind_), fd_(o.fd_), size_(o.size_) {
  o.fd_ = -1;
}

InputFile::~InputFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::string InputFile::read_all() {
  auto read_some = [&](char* buf, size_t n) -> size_t {
    while (true) {
      const ssize_t r = ::read(fd_, buf, n);
      if (r >= 0) return static_cast<size_t>(r);
      if (errno != EINTR) throw Error(path_.string() + ": read error (" + std::strerror(errno) + ")");
    }
  };
  std::string out(static_cast<size_t>(size_), '\0');  // size_ <= max_bytes (constructor)
  size_t have = 0;
  while (have < out.size()) {
    const size_t r = read_some(out.data() + have, out.size() - have);
    if (r == 0) break;  // shrank since fstat
    have += r;
  }
  out.resize(have);
  if (have == size_) {
    // More than fstat said (a /proc file reports 0; a file may grow): read on, never past the limit.
    char buf[64 * 1024];
    while (const size_t r = read_some(buf, sizeof buf)) {
      if (out.size() + r > kind_->max_bytes) too_large(path_, *kind_, "more than " + size_text(kind_->max_bytes));
      out.append(buf, r);
    }
  }
  if (kind_->utf8) require_utf8(out, path_.string());
  return out;
}

bool input_present(const std::filesystem::path& path) {
  std::error_code ec;
  return std::filesystem::symlink_status(path, ec).type() != std::filesystem::file_type::not_found && !ec;
}

std::string read_input_file(const std::filesystem::path& path, const InputKind& kind) {
  return InputFile(path, kind).read_all();
}

void require_utf8(std::string_view text, const std::string& origin) {
  const int64_t bad = utf8::find_invalid(text);
  if (bad < 0) return;
  const auto at = static_cast<size_t>(bad);
  const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
  throw Error(origin + ": line " + std::to_string(line) + ": invalid UTF-8 at byte offset " + std::to_string(at) +
              " (the format requires UTF-8 text)");
}

}  // namespace sft
