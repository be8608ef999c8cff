// train/tensorboard.h: CRC-32C against its published check value and a bitwise reference on random data, TFRecord
// framing, the folder/file errors (a logging dir that is a file, a write that fails) and resume naming. That
// tensorboard itself reads the files back (tags, steps, values, purge on resume) is tests/train/test_tensorboard.py.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "train/tensorboard.h"
#include "util/error.h"

namespace fs = std::filesystem;
using namespace sft::train;

namespace {

fs::path fresh_dir(const std::string& name) {
  fs::path d = fs::temp_directory_path() / ("sft_tb_test_" + std::to_string(::getpid()) + "_" + name);
  fs::remove_all(d);
  return d;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

uint32_t le32(const std::string& s, size_t at) {
  uint32_t v;
  std::memcpy(&v, s.data() + at, 4);
  return v;
}

}  // namespace

TEST(Crc32c, PublishedCheckValueAndMasking) {
  // RFC 3720 (iSCSI) / the CRC catalogue: CRC-32C("123456789") = 0xE3069283; 32 zero bytes = 0x8A9136AA.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  const std::string zeros(32, '\0');
  EXPECT_EQ(crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);
  EXPECT_EQ(crc32c("", 0), 0u);
  const uint32_t c = crc32c("123456789", 9);
  EXPECT_EQ(masked_crc32c("123456789", 9), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(Crc32c, TableEqualsBitwiseReferenceOnRandomData) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    std::string s(rng() % 700, '\0');
    for (char& ch : s) ch = static_cast<char>(rng() % 255 + 1);
    ASSERT_EQ(crc32c(s.data(), s.size()), crc32c_bitwise(s.data(), s.size())) << "length " << s.size();
  }
}

TEST(TfRecord, Framing) {
  const std::string payload = "hello events";
  const std::string r = tfrecord(payload);
  ASSERT_EQ(r.size(), payload.size() + 16);
  uint64_t n;
  std::memcpy(&n, r.data(), 8);
  EXPECT_EQ(n, payload.size());
  EXPECT_EQ(le32(r, 8), masked_crc32c(r.data(), 8));
  EXPECT_EQ(r.substr(12, payload.size()), payload);
  EXPECT_EQ(le32(r, 12 + payload.size()), masked_crc32c(payload.data(), payload.size()));
}

TEST(TensorBoardEvents, ScalarEncodingBytes) {
  // Event{wall_time: 1.5, step: 300, summary{value{tag:"t", simple_value: 2.0}}}, written out by hand from the
  // protobuf wire format: 09 <double 1.5> 10 ac 02 2a 0a 0a 08 0a 01 74 15 <float 2.0>.
  const std::string e = event_scalar(1.5, 300, "t", 2.0f);
  const std::string want = std::string("\x09\x00\x00\x00\x00\x00\x00\xf8\x3f\x10\xac\x02\x2a\x0a\x0a\x08\x0a\x01\x74\x15"
                                       "\x00\x00\x00\x40",
                                       24);
  EXPECT_EQ(e, want);
  // Step 0 and wall time 0 are proto3 defaults: not written.
  EXPECT_EQ(event_file_version(0.0, 0), std::string("\x1a\x0d") + "brain.Event:2");
}

TEST(TensorBoardTags, RewriteLogsAsTransformers) {
  EXPECT_EQ(tensorboard_tag("loss"), "train/loss");
  EXPECT_EQ(tensorboard_tag("eval_loss"), "eval/loss");
  EXPECT_EQ(tensorboard_tag("test_accuracy"), "test/accuracy");
  EXPECT_EQ(tensorboard_tag("epoch"), "train/epoch");
  LogRow eval;
  eval.step = 7;
  eval.epoch = 0.5;
  eval.eval_loss = 1.25;
  const auto tags = tensorboard_scalars(eval);
  ASSERT_EQ(tags.size(), 2u);
  EXPECT_EQ(tags[0].first, "train/epoch");
  EXPECT_EQ(tags[1].first, "eval/loss");
  EXPECT_EQ(tags[1].second, 1.25);
}

TEST(TensorBoardWriter, LoggingDirThatIsAFileIsAOneLineError) {
  const fs::path d = fresh_dir("file");
  fs::create_directories(d);
  const fs::path f = d / "logs";
  std::ofstream(f) << "not a folder";
  TensorBoardWriter tb;
  try {
    tb.open(f);
    FAIL() << "expected an error";
  } catch (const sft::Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(f.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("not a folder"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
  EXPECT_EQ(read_all(f), "not a folder");  // untouched
  // A folder below a file cannot be created either: the error names it.
  try {
    tb.open(f / "sub");
    FAIL() << "expected an error";
  } catch (const sft::Error& e) {
    EXPECT_NE(std::string(e.what()).find((f / "sub").string()), std::string::npos) << e.what();
  }
  EXPECT_FALSE(tb.is_open());
  fs::remove_all(d);
}

TEST(TensorBoardWriter, CreatesTheFolderAndNeverOverwrites) {
  const fs::path d = fresh_dir("create") / "a" / "b";
  TensorBoardWriter one, two;
  one.open(d);
  two.open(d);  // same second, same host and pid: a different name, and it sorts after the first
  EXPECT_NE(one.path(), two.path());
  EXPECT_LT(one.path().filename().string(), two.path().filename().string());
  EXPECT_EQ(one.path().filename().string().rfind("events.out.tfevents.", 0), 0u);
  one.scalar("x", 1, 3.0, 1.0);
  one.close();
  // The file holds the file_version record and the scalar, each framed.
  const std::string bytes = read_all(one.path());
  uint64_t n = 0;
  ASSERT_GT(bytes.size(), 12u);
  std::memcpy(&n, bytes.data(), 8);
  ASSERT_LT(n + 16, bytes.size());
  const std::string first = bytes.substr(12, n);
  EXPECT_EQ(first.substr(first.size() - 15), std::string("\x1a\x0d") + "brain.Event:2");
  EXPECT_EQ(bytes.substr(0, n + 16), tfrecord(first));
  const std::string scalar_record = tfrecord(event_scalar(1.0, 1, "x", 3.0f));
  EXPECT_EQ(bytes.substr(bytes.size() - scalar_record.size()), scalar_record);
  fs::remove_all(fresh_dir("create"));
}

TEST(TensorBoardWriter, AFailedWriteNamesTheFile) {
  // RLIMIT_FSIZE makes write(2) fail with EFBIG past the limit (SIGXFSZ ignored), as a full disk would.
  const fs::path d = fresh_dir("full");
  TensorBoardWriter tb;
  tb.open(d);
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* old_handler = ::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string msg;
  try {
    for (int step = 0; step < 1000; ++step) tb.scalar("train/loss", step, 1.0, 1.0);
    tb.flush();
  } catch (const sft::Error& e) {
    msg = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_NE(msg.find(tb.path().string()), std::string::npos) << msg;
  EXPECT_NE(msg.find("write failed"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos);
  tb.close();
  fs::remove_all(d);
}
