// Flag parsing of `sft train` (src/cli/train_flags.cpp). cli/ is an executable, not a library, so the one source
// file under test is compiled into this test directly.
#include "cli/train_flags.cpp"  // NOLINT(bugprone-suspicious-include)

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

namespace sft::cli {
namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == '\n') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

// The seed report's argument list, verbatim (brief section 1).
const char* kSeedArgs =
    "--model_name_or_path m --dataset_path train.csv --output_dir out --logging_dir out/logs "
    "--logging_steps 40 --logging_strategy steps --save_steps 4000 --save_total_limit 1 --report_to none "
    "--torch_dtype bfloat16 --remove_unused_columns False --per_device_train_batch_size 4 --per_device_eval_batch_size 4 "
    "--gradient_accumulation_steps 8 --lr_scheduler_type linear --learning_rate 5e-5 --num_train_epochs 3 "
    "--adam_epsilon 1e-8 --evaluation_strategy no --load_best_model_at_end True --eval_steps 4000 "
    "--greater_is_better False --data_loader_drop_last True --metric_for_best_model eval_loss";

TEST(TrainFlags, SeedArgumentListParsesVerbatim) {
  auto p = parse_train_args(split(kSeedArgs));
  const auto& c = p.cfg;
  EXPECT_EQ(c.model_name_or_path, "m");
  EXPECT_EQ(c.dataset_path, "train.csv");
  EXPECT_EQ(c.logging_steps, 40);
  EXPECT_EQ(c.save_steps, 4000);
  EXPECT_EQ(c.save_total_limit, 1);
  EXPECT_TRUE(c.use_bf16());
  EXPECT_EQ(c.per_device_train_batch_size, 4);
  EXPECT_EQ(c.per_device_eval_batch_size, 4);
  EXPECT_EQ(c.gradient_accumulation_steps, 8);
  EXPECT_DOUBLE_EQ(c.learning_rate, 5e-5);
  EXPECT_DOUBLE_EQ(c.num_train_epochs, 3.0);
  EXPECT_DOUBLE_EQ(c.adam_epsilon, 1e-8);
  EXPECT_EQ(c.eval_strategy, "no");
  EXPECT_TRUE(c.load_best_model_at_end);
  EXPECT_EQ(c.eval_steps, 4000);
  EXPECT_EQ(c.greater_is_better, 0);
  EXPECT_TRUE(c.data_loader_drop_last);
  EXPECT_EQ(c.metric_for_best_model, "eval_loss");
  // remove_unused_columns: noted (report_to, logging_dir and logging_strategy are real flags now; --logging_dir without
  // --report_to tensorboard is noted by the job, which knows what is written).
  EXPECT_EQ(p.notes.size(), 1u);
  EXPECT_EQ(c.report_to, "none");
  EXPECT_EQ(c.logging_dir, "out/logs");
  EXPECT_EQ(c.logging_strategy, "steps");
  EXPECT_NO_THROW(c.validate());
}

TEST(TrainFlags, BoolForms) {
  for (const char* v : {"True", "true", "1"}) {
    auto p = parse_train_args({"--packing", v});
    EXPECT_TRUE(p.cfg.packing) << v;
  }
  for (const char* v : {"False", "false", "0"}) {
    auto p = parse_train_args({"--packing", v});
    EXPECT_FALSE(p.cfg.packing) << v;
  }
  auto bare = parse_train_args({"--bf16", "--max_steps", "3"});
  EXPECT_TRUE(bare.cfg.bf16);
  EXPECT_EQ(bare.cfg.max_steps, 3);
  auto last = parse_train_args({"--max_steps", "3", "--bf16"});
  EXPECT_TRUE(last.cfg.bf16);
  auto eq = parse_train_args({"--bf16=False", "--max-steps=-1"});
  EXPECT_FALSE(eq.cfg.bf16);
  EXPECT_EQ(eq.cfg.max_steps, -1);
  for (const char* flag : {"--packing", "--padding_free"}) {  // a bool flag's word that is no bool names the flag
    try {
      parse_train_args({flag, "yes"});
      FAIL() << flag;
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), std::string(flag) + ": expected True/False/true/false/1/0, got 'yes'");
    }
  }
}

TEST(TrainFlags, UnknownFlagSuggestsClosest) {
  try {
    parse_train_args({"--learnig_rate", "1e-4"});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean --learning_rate"), std::string::npos) << e.what();
  }
  try {
    parse_train_args({"--completely_unrelated_option", "1"});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("did you mean"), std::string::npos) << e.what();
  }
}

TEST(TrainFlags, BadValuesAreErrors) {
  EXPECT_THROW(parse_train_args({"--max_steps", "ten"}), Error);
  EXPECT_THROW(parse_train_args({"--learning_rate", "1e-4x"}), Error);
  EXPECT_THROW(parse_train_args({"--learning_rate"}), Error);
  EXPECT_THROW(parse_train_args({"--optim", "sgd"}), Error);
  EXPECT_THROW(parse_train_args({"--optim", "adamw_8bit"}), Error);
  EXPECT_THROW(parse_train_args({"--logging_strategy", "sometimes"}).cfg.validate(), Error);
}

TEST(TrainFlags, HfFlagsThatChangeWhatUsersGet) {
  // --fp16 True maps to bf16 compute (with a note saying so); False changes nothing.
  auto fp16 = parse_train_args({"--fp16", "True"});
  EXPECT_TRUE(fp16.cfg.bf16);
  ASSERT_EQ(fp16.notes.size(), 1u);
  EXPECT_NE(fp16.notes[0].find("bf16"), std::string::npos) << fp16.notes[0];
  auto no16 = parse_train_args({"--fp16", "False"});
  EXPECT_FALSE(no16.cfg.bf16);
  EXPECT_TRUE(no16.notes.empty());
  // --optim: the three AdamW spellings are accepted; the error for others lists them.
  for (const char* o : {"adamw_torch", "adamw_torch_fused", "adamw_hf"})
    EXPECT_NO_THROW(parse_train_args({"--optim", o})) << o;
  try {
    parse_train_args({"--optim", "adafactor"});
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("adamw_torch, adamw_torch_fused, adamw_hf"), std::string::npos) << m;
  }
  // --gradient_checkpointing is a real setting (model/decoder.h), with HF's boolean spellings.
  auto gc = parse_train_args({"--gradient_checkpointing", "True"});
  EXPECT_TRUE(gc.cfg.gradient_checkpointing);
  EXPECT_TRUE(gc.notes.empty());
  EXPECT_FALSE(parse_train_args({"--gradient_checkpointing", "false"}).cfg.gradient_checkpointing);
  EXPECT_FALSE(parse_train_args({}).cfg.gradient_checkpointing);
  // --logging_strategy / --disable_tqdm are real settings.
  auto ls = parse_train_args({"--logging_strategy", "epoch", "--disable_tqdm", "True"});
  EXPECT_EQ(ls.cfg.logging_strategy, "epoch");
  EXPECT_TRUE(ls.cfg.disable_tqdm);
  EXPECT_TRUE(ls.notes.empty());
}

TEST(TrainFlags, ConfigFileThenCommandLineOverrides) {
  const auto path = std::filesystem::temp_directory_path() / ("sft_train_flags_" + std::to_string(::getpid()) + ".json");
  {
    std::ofstream f(path);
    f << R"({"learning_rate": 1e-4, "max_steps": 7, "bf16": true, "run_name": "x", "template": "chatml",
             "report_to": ["tensorboard", "wandb"], "--seed": 3})";
  }
  auto p = parse_train_args({"--config", path.string(), "--max_steps", "9"});
  EXPECT_DOUBLE_EQ(p.cfg.learning_rate, 1e-4);
  EXPECT_EQ(p.cfg.max_steps, 9);  // command line wins
  EXPECT_TRUE(p.cfg.bf16);
  EXPECT_EQ(p.cfg.template_name, "chatml");
  EXPECT_EQ(p.cfg.seed, 3u);
  EXPECT_EQ(p.cfg.report_to, "tensorboard,wandb");  // a JSON array for a list flag
  EXPECT_EQ(p.notes.size(), 1u);                     // run_name: accepted and ignored
  {
    std::ofstream f(path);
    f << R"({"learnin_rate": 1e-4})";
  }
  try {
    parse_train_args({"--config", path.string()});
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find("did you mean --learning_rate"), std::string::npos) << msg;
  }
  std::filesystem::remove(path);
}

TEST(TrainFlags, IgnoredFlagNotedOnce) {
  auto p = parse_train_args({"--run_name", "a", "--run_name", "b"});
  EXPECT_EQ(p.notes.size(), 1u);
}

TEST(TrainFlags, EditDistance) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("same", "same"), 0u);
}

TEST(TrainFlags, ValidateRejectsBadCombinations) {
  auto p = parse_train_args(split("--model_name_or_path m --dataset_path d --output_dir o"));
  EXPECT_NO_THROW(p.cfg.validate());
  auto bad = p.cfg;
  bad.lr_scheduler_type = "polynomial_x";
  EXPECT_THROW(bad.validate(), Error);
  bad = p.cfg;
  bad.gradient_accumulation_steps = 0;
  EXPECT_THROW(bad.validate(), Error);
  bad = p.cfg;
  bad.torch_dtype = "float16";
  EXPECT_THROW(bad.validate(), Error);
  bad = p.cfg;
  bad.output_dir.clear();
  EXPECT_THROW(bad.validate(), Error);
}


// issue 17: numbers are finite and in range, named by their flag.
TEST(TrainFlags, NumbersAreFiniteInRangeAndNamed) {
  auto msg = [](const std::vector<std::string>& extra) -> std::string {
    try {
      std::vector<std::string> all = split("--model_name_or_path m --dataset_path d --output_dir o");
      all.insert(all.end(), extra.begin(), extra.end());
      parse_train_args(all).cfg.validate();
      return "";
    } catch (const Error& e) {
      return e.what();
    }
  };
  EXPECT_NE(msg({"--learning_rate", "inf"}).find("--learning_rate: expected a finite number"), std::string::npos);
  EXPECT_NE(msg({"--learning_rate", "nan"}).find("--learning_rate"), std::string::npos);
  EXPECT_NE(msg({"--num_train_epochs", "1e400"}).find("--num_train_epochs"), std::string::npos);
  EXPECT_NE(msg({"--max_steps", "99999999999999999999"}).find("--max_steps: 99999999999999999999 is out of"),
            std::string::npos);
  EXPECT_NE(msg({"--threads", "100000"}).find("--threads: expected an integer in [0, 1024]"), std::string::npos);
  EXPECT_NE(msg({"--validation_split", "1.5"}).find("--validation_split"), std::string::npos);
  EXPECT_EQ(msg({"--validation_split", "0.25"}), "");
  EXPECT_EQ(msg({"--validation_split", "3"}), "");
  EXPECT_NE(msg({"--device", "cuda:abc"}).find("--device"), std::string::npos);
  EXPECT_EQ(msg({"--device", "cuda:1"}), "");
  EXPECT_NE(msg({"--warmup_ratio", "2"}).find("--warmup_ratio"), std::string::npos);
  EXPECT_NE(msg({"--max_grad_norm", "inf"}).find("--max_grad_norm"), std::string::npos);
  EXPECT_EQ(msg({"--skip_nonfinite_steps", "True", "--keep_empty_responses"}), "");
  // Step count from epochs: checked against 2^40.
  auto p = parse_train_args(split("--model_name_or_path m --dataset_path d --output_dir o --num_train_epochs 1e9"));
  EXPECT_THROW(p.cfg.total_steps(int64_t{1} << 40), Error);
  EXPECT_EQ(p.cfg.total_steps(3), 3000000000);
}

}  // namespace
}  // namespace sft::cli
