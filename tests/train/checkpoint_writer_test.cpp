// train::CheckpointWriter: both saves write complete folders or nothing; a non-writing rank writes nothing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "train/checkpoint_writer.h"
#include "util/error.h"
#include "util/file_util.h"

namespace sft::train {
namespace {

namespace fs = std::filesystem;

struct Tmp {
  fs::path dir = fs::temp_directory_path() / ("sft_ckw_" + std::to_string(::getpid()));
  Tmp() { fs::create_directories(dir); }
  ~Tmp() { fs::remove_all(dir); }
};

SaveParts parts(bool with_optimizer) {
  SaveParts p;
  p.model = [](const fs::path& d) { write_file_atomic(d / "model.safetensors", "weights"); };
  if (with_optimizer) p.optimizer = [](const fs::path& d) { write_file_atomic(d / "optimizer.safetensors", "m+v"); };
  p.files = {{"trainer_state.json", "{}"}, {"training_args.json", "{\"seed\": 1}"}};
  return p;
}

TEST(CheckpointWriter, CheckpointFolderIsCompleteAndReplacesAnOldOne) {
  Tmp t;
  fs::create_directories(t.dir / "checkpoint-2");
  write_file_atomic(t.dir / "checkpoint-2" / "stale.txt", "old");
  const fs::path d = CheckpointWriter().write_folder(t.dir, "checkpoint-2", parts(true));
  EXPECT_EQ(d, t.dir / "checkpoint-2");
  EXPECT_EQ(read_file(d / "model.safetensors"), "weights");
  EXPECT_EQ(read_file(d / "optimizer.safetensors"), "m+v");
  EXPECT_EQ(read_file(d / "training_args.json"), "{\"seed\": 1}");
  EXPECT_FALSE(fs::exists(d / "stale.txt"));
  EXPECT_FALSE(fs::exists(t.dir / ".tmp-checkpoint-2"));
}

TEST(CheckpointWriter, FinalSaveMovesFilesIntoOutputDirAndKeepsCheckpoints) {
  Tmp t;
  fs::create_directories(t.dir / "checkpoint-1");
  write_file_atomic(t.dir / "trainer_log.jsonl", "{}\n");
  SaveParts p = parts(false);
  p.files.emplace_back("loss_curve.svg", "<svg/>");
  CheckpointWriter().write_into(t.dir, p);
  EXPECT_EQ(read_file(t.dir / "model.safetensors"), "weights");
  EXPECT_EQ(read_file(t.dir / "loss_curve.svg"), "<svg/>");
  EXPECT_FALSE(fs::exists(t.dir / "optimizer.safetensors"));
  EXPECT_TRUE(fs::exists(t.dir / "checkpoint-1"));
  EXPECT_TRUE(fs::exists(t.dir / "trainer_log.jsonl"));
  EXPECT_FALSE(fs::exists(t.dir / ".tmp-final"));
}

TEST(CheckpointWriter, AFailingPartLeavesTheOldCheckpointUntouched) {
  Tmp t;
  CheckpointWriter().write_folder(t.dir, "checkpoint-3", parts(true));
  SaveParts bad = parts(true);
  bad.optimizer = [](const fs::path&) { throw Error("disk full"); };
  EXPECT_THROW(CheckpointWriter().write_folder(t.dir, "checkpoint-3", bad), Error);
  EXPECT_EQ(read_file(t.dir / "checkpoint-3" / "optimizer.safetensors"), "m+v");
  EXPECT_FALSE(fs::exists(t.dir / ".tmp-checkpoint-3"));
}

TEST(CheckpointWriter, ANonWritingRankWritesNothing) {
  Tmp t;
  const CheckpointWriter rank1(false);
  rank1.write_folder(t.dir, "checkpoint-4", parts(true));
  rank1.write_into(t.dir, parts(false));
  EXPECT_TRUE(fs::is_empty(t.dir));
}

}  // namespace
}  // namespace sft::train
