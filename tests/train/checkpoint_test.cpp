// trainer_state.json round trip, checkpoint listing and rotation, log rows and the loss-curve SVG.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <regex>

#include "train/checkpoint.h"
#include "train/train_log.h"
#include "util/error.h"
#include "util/file_util.h"

namespace sft::train {
namespace {

namespace fs = std::filesystem;

fs::path temp_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("sft_train_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(TrainerState, RoundTripKeepsEveryFieldExactly) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> u(0.1, 5.0);
  TrainerState s;
  s.global_step = 123;
  s.epoch = 1.5;
  s.max_steps = 400;
  s.logging_steps = 10;
  s.save_steps = 50;
  s.eval_steps = 25;
  s.train_batch_size = 4;
  s.num_train_epochs = 3;
  for (int i = 0; i < 5; ++i) {
    LogRow r;
    r.step = 10 * (i + 1);
    r.epoch = 0.1 * i;
    r.loss = u(rng);
    r.learning_rate = u(rng) * 1e-5;
    r.grad_norm = u(rng);
    r.tokens = 1000 + i;
    s.log_history.push_back(r);
  }
  LogRow ev;
  ev.step = 25;
  ev.eval_loss = u(rng);
  s.log_history.push_back(ev);
  s.best_metric = 1.25;
  s.best_global_step = 100;
  s.best_model_checkpoint = "/x/checkpoint-100";
  s.early_stopping = TrainerState::EarlyStoppingState{3, 0.125, 2};
  s.logging_dir = "/x/runs/Dec03_21-19-05_host";
  s.loader_epoch = 1;
  s.loader_index = 17;
  s.window.loss_sum = u(rng) * 1e4;  // an arbitrary double: must survive the text round trip bit for bit
  s.window.targets = 4567;
  s.window.tokens = 8910;
  s.window.steps = 3;
  s.seed = 1234567890123ull;

  const std::string text = trainer_state_to_json(s);
  const TrainerState t = trainer_state_from_json(text, "state");
  EXPECT_EQ(t.global_step, s.global_step);
  EXPECT_EQ(t.max_steps, s.max_steps);
  EXPECT_EQ(t.loader_epoch, 1);
  EXPECT_EQ(t.loader_index, 17);
  EXPECT_EQ(t.window.loss_sum, s.window.loss_sum);  // exact
  EXPECT_EQ(t.window.targets, 4567);
  EXPECT_EQ(t.window.tokens, 8910);
  EXPECT_EQ(t.window.steps, 3);
  EXPECT_EQ(t.seed, s.seed);
  ASSERT_TRUE(t.best_metric.has_value());
  EXPECT_EQ(*t.best_metric, 1.25);
  EXPECT_EQ(t.best_model_checkpoint, s.best_model_checkpoint);
  EXPECT_EQ(t.best_global_step, std::optional<int64_t>(100));
  ASSERT_TRUE(t.early_stopping.has_value());
  EXPECT_EQ(t.early_stopping->patience, 3);
  EXPECT_EQ(t.early_stopping->threshold, 0.125);
  EXPECT_EQ(t.early_stopping->counter, 2);
  EXPECT_EQ(t.logging_dir, s.logging_dir);
  ASSERT_EQ(t.log_history.size(), s.log_history.size());
  for (size_t i = 0; i < s.log_history.size(); ++i) {
    EXPECT_EQ(t.log_history[i].step, s.log_history[i].step);
    EXPECT_EQ(t.log_history[i].loss, s.log_history[i].loss);
    EXPECT_EQ(t.log_history[i].eval_loss.has_value(), s.log_history[i].eval_loss.has_value());
  }
  // HF-like keys are present for tools that read trainer_state.json.
  for (const char* key : {"\"global_step\"", "\"log_history\"", "\"best_metric\"", "\"best_model_checkpoint\"",
                          "\"best_global_step\"", "\"stateful_callbacks\"", "\"early_stopping_patience_counter\""})
    EXPECT_NE(text.find(key), std::string::npos) << key;
  EXPECT_THROW(trainer_state_from_json("{\"global_step\": 1}", "bad.json"), Error);
  // Without them (a run with no best, no early stopping, no TensorBoard): absent, and null in the file as HF writes.
  TrainerState plain = s;
  plain.best_metric.reset();
  plain.best_global_step.reset();
  plain.early_stopping.reset();
  plain.logging_dir.clear();
  const std::string plain_text = trainer_state_to_json(plain);
  EXPECT_NE(plain_text.find("\"best_global_step\": null"), std::string::npos);
  EXPECT_EQ(plain_text.find("stateful_callbacks"), std::string::npos);
  const TrainerState back = trainer_state_from_json(plain_text, "state");
  EXPECT_FALSE(back.best_global_step || back.early_stopping || back.best_metric);
  EXPECT_EQ(back.logging_dir, "");
}

TEST(Checkpoints, ListLastAndRotate) {
  const fs::path out = temp_dir("rotate");
  EXPECT_THROW(last_checkpoint(out), Error);
  for (int step : {30, 10, 20, 40}) fs::create_directories(out / ("checkpoint-" + std::to_string(step)));
  fs::create_directories(out / "checkpoint-x");  // not a checkpoint
  fs::create_directories(out / ".tmp-checkpoint-50");
  auto all = list_checkpoints(out);
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all.front().first, 10);
  EXPECT_EQ(last_checkpoint(out).filename(), "checkpoint-40");

  // Limit 2 keeping checkpoint-10 (the "best"): 20 and 30 go.
  auto deleted = rotate_checkpoints(out, 2, out / "checkpoint-10");
  ASSERT_EQ(deleted.size(), 2u);
  EXPECT_FALSE(fs::exists(out / "checkpoint-20"));
  EXPECT_FALSE(fs::exists(out / "checkpoint-30"));
  EXPECT_TRUE(fs::exists(out / "checkpoint-10"));
  EXPECT_TRUE(fs::exists(out / "checkpoint-40"));
  EXPECT_TRUE(rotate_checkpoints(out, 0, {}).empty());  // <= 0 keeps all
  rotate_checkpoints(out, 1, {});
  EXPECT_TRUE(fs::exists(out / "checkpoint-40"));
  EXPECT_FALSE(fs::exists(out / "checkpoint-10"));
  fs::remove_all(out);
}

TEST(Checkpoints, SideFilesAndMove) {
  const fs::path base = temp_dir("base"), dst = temp_dir("dst");
  EXPECT_THROW(copy_model_side_files(base, dst), Error);  // no tokenizer.json
  write_file_atomic(base / "tokenizer.json", "{}");
  write_file_atomic(base / "generation_config.json", "{\"eos_token_id\": 2}");
  write_file_atomic(base / "model.safetensors", "weights are not side files");
  copy_model_side_files(base, dst);
  EXPECT_TRUE(fs::exists(dst / "tokenizer.json"));
  EXPECT_EQ(read_file(dst / "generation_config.json"), "{\"eos_token_id\": 2}");
  EXPECT_FALSE(fs::exists(dst / "model.safetensors"));
  const fs::path tmp = dst / ".tmp-final";
  fs::create_directories(tmp);
  write_file_atomic(tmp / "a.txt", "new");
  write_file_atomic(dst / "a.txt", "old");
  move_files_into(tmp, dst);
  EXPECT_EQ(read_file(dst / "a.txt"), "new");
  EXPECT_FALSE(fs::exists(tmp));
  fs::remove_all(base);
  fs::remove_all(dst);
}

TEST(TrainLog, RowJsonRoundTripAndSvg) {
  std::vector<LogRow> rows;
  for (int i = 1; i <= 7; ++i) {
    LogRow r;
    r.step = 40 * i;
    r.loss = 2.0 / i + 0.37;
    r.learning_rate = 5e-5 * (1 - i / 8.0);
    r.grad_norm = 0.5 + i;
    rows.push_back(r);
    const LogRow back = log_row_from_json(log_row_json(r));
    EXPECT_EQ(back.step, r.step);
    EXPECT_EQ(back.loss, r.loss);
    EXPECT_EQ(back.learning_rate, r.learning_rate);
  }
  LogRow ev;
  ev.step = 120;
  ev.eval_loss = 1.1;
  rows.push_back(ev);
  const std::string svg = loss_curve_svg(rows, "t<&>");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("</svg>"), std::string::npos);
  EXPECT_NE(svg.find("t&lt;&amp;&gt;"), std::string::npos);
  // One polyline per series; the training one has 7 points.
  std::smatch m;
  const std::regex poly("<polyline[^>]*points=\"([^\"]*)\"");
  auto it = std::sregex_iterator(svg.begin(), svg.end(), poly);
  ASSERT_NE(it, std::sregex_iterator());
  const std::string pts = (*it)[1].str();
  EXPECT_EQ(std::count(pts.begin(), pts.end(), ','), 7);
  EXPECT_EQ(std::distance(it, std::sregex_iterator()), 2);
  // Loss decreases, so the training points' y coordinates increase (SVG y grows downwards).
  std::vector<double> ys;
  const std::regex pt("[0-9.]+,([0-9.]+)");
  for (auto p = std::sregex_iterator(pts.begin(), pts.end(), pt); p != std::sregex_iterator(); ++p)
    ys.push_back(std::stod((*p)[1].str()));
  ASSERT_EQ(ys.size(), 7u);
  for (size_t i = 1; i < ys.size(); ++i) EXPECT_GT(ys[i], ys[i - 1]);
  // Empty history still gives a valid document.
  EXPECT_NE(loss_curve_svg({}, "empty").find("</svg>"), std::string::npos);
}


// issue 17: rotation renames before deleting; leftovers of a killed run are cleared; out-of-range step numbers and
// non-numeric metadata are errors naming the folder / file instead of "internal error: stoll/stod".
TEST(Checkpoints, SafeDeleteStaleTemporariesAndBadNames) {
  const fs::path out = temp_dir("safe_delete");
  fs::create_directories(out / "checkpoint-1");
  write_file_atomic(out / "checkpoint-1" / "model.safetensors", "x");
  remove_dir_safely(out / "checkpoint-1");
  EXPECT_FALSE(fs::exists(out / "checkpoint-1"));
  EXPECT_FALSE(fs::exists(out / ".deleting-checkpoint-1"));
  for (const char* d : {".tmp-checkpoint-3", ".tmp-final", ".deleting-checkpoint-2", "checkpoint-4", "keep"})
    fs::create_directories(out / d);
  auto removed = remove_stale_temporaries(out);
  EXPECT_EQ(removed.size(), 3u);
  EXPECT_TRUE(fs::exists(out / "checkpoint-4"));
  EXPECT_TRUE(fs::exists(out / "keep"));
  EXPECT_FALSE(fs::exists(out / ".tmp-final"));
  fs::create_directories(out / "checkpoint-99999999999999999999");
  try {
    list_checkpoints(out);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("checkpoint-99999999999999999999: the step number"), std::string::npos);
  }
  fs::remove_all(out);
}

TEST(TrainerState, NonNumericOrNegativeFieldsAreErrorsNamingTheFile) {
  TrainerState s;
  s.global_step = 2;
  s.max_steps = 4;
  const std::string good = trainer_state_to_json(s);
  EXPECT_NO_THROW(trainer_state_from_json(good, "ts.json"));
  auto expect_msg = [](const std::string& text, const std::string& want) {
    try {
      trainer_state_from_json(text, "ck/trainer_state.json");
      ADD_FAILURE() << "no error for " << want;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
    }
  };
  std::string t = good;
  t.replace(t.find("\"window_loss_sum\": \"0\""), 22, "\"window_loss_sum\": \"abc\"");
  expect_msg(t, "ck/trainer_state.json: sft_resume.window_loss_sum: expected a finite number");
  t = good;
  t.replace(t.find("\"global_step\": 2"), 16, "\"global_step\": -2");
  expect_msg(t, "ck/trainer_state.json: global_step");
  t = good;
  t.replace(t.find("\"global_step\": 2"), 16, "\"global_step\": 9");
  expect_msg(t, "is past max_steps");
}


// issue 17: --overwrite_output_dir removes the previous run's model files (not the user's other files), so a failed
// final save cannot leave the old model beside the new run's log.
TEST(Checkpoints, RemovePreviousOutputsKeepsForeignFiles) {
  const fs::path out = temp_dir("overwrite");
  for (const char* f : {"model.safetensors", "model-00001-of-00002.safetensors", "model.safetensors.index.json",
                        "config.json", "trainer_state.json", "trainer_log.jsonl", "tokenizer.json", "notes.txt"})
    write_file_atomic(out / f, "x");
  fs::create_directories(out / "checkpoint-3");
  remove_previous_outputs(out);
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(out)) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"notes.txt"});
  fs::remove_all(out);
}

}  // namespace
}  // namespace sft::train
