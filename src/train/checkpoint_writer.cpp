#include "train/checkpoint_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include "train/checkpoint.h"
#include "util/error.h"
#include "util/file_util.h"

namespace sft::train {

namespace fs = std::filesystem;

namespace {

// Makes the entries of a folder (new files, renames) durable.
void fsync_dir(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  SFT_CHECK(fd >= 0, dir.string(), ": cannot open the folder to sync it");
  const int rc = ::fsync(fd);
  ::close(fd);
  SFT_CHECK(rc == 0, dir.string(), ": fsync of the folder failed");
}

}  // namespace

void CheckpointWriter::fill(const fs::path& tmp, const SaveParts& parts) const {
  SFT_CHECK(static_cast<bool>(parts.model), "internal: a save needs the model's files");
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    parts.model(tmp);  // every writer below goes through util's temp + fsync + rename
    if (!parts.base_model_dir.empty()) copy_model_side_files(parts.base_model_dir, tmp);
    if (parts.optimizer) parts.optimizer(tmp);
    for (const auto& [name, text] : parts.files) write_file_atomic(tmp / name, text);
    fsync_dir(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);  // nothing half-written stays behind; the previous save is untouched
    throw;
  }
}

fs::path CheckpointWriter::write_folder(const fs::path& output_dir, const std::string& name,
                                        const SaveParts& parts) const {
  const fs::path final_dir = output_dir / name;
  if (!writes_) return final_dir;
  const fs::path tmp = output_dir / (".tmp-" + name);
  fill(tmp, parts);
  fs::remove_all(final_dir);
  fs::rename(tmp, final_dir);
  fsync_dir(output_dir);
  return final_dir;
}

void CheckpointWriter::write_into(const fs::path& output_dir, const SaveParts& parts) const {
  if (!writes_) return;
  const fs::path tmp = output_dir / ".tmp-final";
  fill(tmp, parts);
  move_files_into(tmp, output_dir);
  fsync_dir(output_dir);
}

}  // namespace sft::train
