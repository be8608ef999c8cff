#include "util/file_util.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "util/error.h"
#include "util/input_file.h"

namespace sft {

std::string read_file(const fs::path& path) { return read_input_file(path, input::any_file); }

void write_all(int fd, const void* data, size_t n, const fs::path& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    SFT_CHECK(w > 0, path.string(), ": write failed (", std::strerror(errno), ")");
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void write_file_atomic_fd(const fs::path& path, const std::function<void(int fd)>& writer) {
  fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::random_device rd;
  std::string tmp_name = ".";
  tmp_name += path.filename().string();
  tmp_name += ".tmp";
  tmp_name += std::to_string(rd() % 1000000);
  fs::path tmp = dir / tmp_name;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  SFT_CHECK(fd >= 0, tmp.string(), ": cannot create (", std::strerror(errno), ")");
  try {
    writer(fd);
    SFT_CHECK(::fsync(fd) == 0, tmp.string(), ": fsync failed (", std::strerror(errno), ")");
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) {
    ::unlink(tmp.c_str());
    throw Error(path.string() + ": cannot rename temp file into place (" + ec.message() + ")");
  }
}

void write_file_atomic(const fs::path& path, std::string_view data) {
  write_file_atomic_fd(path, [&](int fd) { write_all(fd, data.data(), data.size(), path); });
}

MappedFile::MappedFile(const fs::path& path, const InputKind& kind) : path_(path) {
  InputFile file(path, kind);  // regular files only (a FIFO named model.safetensors used to block forever), size-bounded
  size_ = static_cast<size_t>(file.size());
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.fd(), 0);
    if (p == MAP_FAILED) throw Error(path.string() + ": mmap failed (" + std::strerror(errno) + ")");
    data_ = static_cast<const uint8_t*>(p);
  }
}

MappedFile::MappedFile(MappedFile&& o) noexcept { *this = std::move(o); }

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = o.data_;
    size_ = o.size_;
    path_ = std::move(o.path_);
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

}  // namespace sft
