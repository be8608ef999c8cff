// util/input_file.h: the one open-for-read helper for model folders, adapters, checkpoints and datasets. Regular
// files only (a FIFO is refused without waiting for a writer), symlinks followed, size limits on fstat and while
// reading, UTF-8 where the kind requires it; every error names the path.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>

#include "util/error.h"
#include "util/file_util.h"
#include "util/input_file.h"

namespace sft {
namespace {

namespace fs = std::filesystem;

class InputFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("sft-input-file-" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path write(const std::string& name, const std::string& bytes) {
    std::ofstream(dir_ / name, std::ios::binary) << bytes;
    return dir_ / name;
  }
  static std::string error_of(const fs::path& p, const InputKind& kind) {
    try {
      read_input_file(p, kind);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
};

TEST_F(InputFileTest, ReadsRegularFilesAndFollowsSymlinks) {
  const fs::path p = write("config.json", "{\"a\": \"é\"}");
  EXPECT_EQ(read_input_file(p, input::json_file), "{\"a\": \"é\"}");
  fs::create_symlink(p, dir_ / "link.json");  // the Hugging Face cache's snapshot -> blob layout
  EXPECT_EQ(read_input_file(dir_ / "link.json", input::json_file), "{\"a\": \"é\"}");
  EXPECT_EQ(read_file(p), "{\"a\": \"é\"}");  // read_file is the same helper
  EXPECT_EQ(read_input_file(write("empty", ""), input::json_file), "");
}

TEST_F(InputFileTest, AFifoIsRefusedAtOnce) {
  ASSERT_EQ(::mkfifo((dir_ / "chat_template.jinja").c_str(), 0600), 0);
  const auto t0 = std::chrono::steady_clock::now();
  const std::string e = error_of(dir_ / "chat_template.jinja", input::chat_template);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);  // no writer awaited
  EXPECT_NE(e.find("chat_template.jinja: is not a regular file but a FIFO"), std::string::npos) << e;
  EXPECT_THROW(MappedFile(dir_ / "chat_template.jinja"), Error);
}

TEST_F(InputFileTest, FoldersDevicesAndDanglingLinksNameThePath) {
  fs::create_directories(dir_ / "tokenizer.json");
  EXPECT_NE(error_of(dir_ / "tokenizer.json", input::tokenizer_json).find("tokenizer.json: is a folder, expected a file"),
            std::string::npos);
  fs::create_symlink("/dev/zero", dir_ / "zero.json");
  EXPECT_NE(error_of(dir_ / "zero.json", input::json_file).find("zero.json: is not a regular file but a character device"),
            std::string::npos);
  fs::create_symlink(dir_ / "nowhere", dir_ / "dangling.json");
  EXPECT_TRUE(input_present(dir_ / "dangling.json"));  // an entry: reported, not silently absent
  EXPECT_FALSE(input_present(dir_ / "absent.json"));
  EXPECT_NE(error_of(dir_ / "dangling.json", input::json_file).find("dangling.json: cannot open (No such file"),
            std::string::npos);
}

TEST_F(InputFileTest, SizeLimitsOnStatAndWhileReading) {
  const InputKind tiny{"tiny file", 4, false};
  EXPECT_NE(error_of(write("five", "12345"), tiny).find("five: 5 bytes, larger than the 4 bytes sft accepts for a tiny file"),
            std::string::npos);
  EXPECT_EQ(read_input_file(write("four", "1234"), tiny), "1234");
  // /proc files report size 0 and then produce text: the limit holds while reading.
  EXPECT_NE(error_of("/proc/self/maps", tiny).find("more than 4 bytes"), std::string::npos);
  EXPECT_FALSE(read_input_file("/proc/self/maps", input::any_file).empty());
}

TEST_F(InputFileTest, Utf8IsRequiredWhereTheFormatSaysSo) {
  const fs::path p = write("chat_template.jinja", "{{ 'ok' }}\n{{ '\xff' }}");
  EXPECT_NE(error_of(p, input::chat_template).find("chat_template.jinja: line 2: invalid UTF-8 at byte offset 15"),
            std::string::npos)
      << error_of(p, input::chat_template);
  EXPECT_EQ(read_input_file(p, input::dataset).size(), 20u);  // datasets check UTF-8 per row, in their readers
}

}  // namespace
}  // namespace sft
