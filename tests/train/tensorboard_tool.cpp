// Driver for tests/train/test_tensorboard.py: runs a script of TensorBoardWriter calls, one JSON object per line.
//   tensorboard_tool <logging_dir> <script.jsonl>
// Ops: {"op":"open"} | {"op":"open","resumed_from_step":S}
//      {"op":"scalar","tag":T,"step":N,"value":V,"wall":W} | {"op":"text","tag":T,"step":N,"text":S,"wall":W}
//      {"op":"row","row":{<trainer_log.jsonl row>},"wall":W}   (TensorBoardWriter::log_row: HF's tags, then flush)
//      {"op":"flush"} | {"op":"close"}
//      {"op":"crash"}   flush, then _exit(0) without closing (a killed run: the file ends where the last flush left it)
// Prints the events file path after every open. Errors: "tensorboard_tool: error: <message>", exit 1.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "train/tensorboard.h"
#include "train/train_log.h"
#include "util/error.h"

int main(int argc, char** argv) {
  using sft::train::TensorBoardWriter;
  if (argc != 3) {
    std::fprintf(stderr, "usage: tensorboard_tool <logging_dir> <script.jsonl>\n");
    return 2;
  }
  try {
    TensorBoardWriter tb;
    std::ifstream script(argv[2]);
    std::string line;
    while (std::getline(script, line)) {
      if (line.empty()) continue;
      const auto cmd = nlohmann::json::parse(line);
      const std::string op = cmd.at("op");
      if (op == "open") {
        if (cmd.contains("resumed_from_step")) tb.open(argv[1], cmd["resumed_from_step"].get<int64_t>());
        else tb.open(argv[1]);
        std::cout << tb.path().string() << std::endl;
      } else if (op == "scalar") {
        tb.scalar(cmd.at("tag").get<std::string>(), cmd.at("step"), cmd.at("value"), cmd.at("wall"));
      } else if (op == "text") {
        tb.text(cmd.at("tag").get<std::string>(), cmd.at("step"), cmd.at("text").get<std::string>(), cmd.at("wall"));
      } else if (op == "row") {
        tb.log_row(sft::train::log_row_from_json(cmd.at("row").dump()), cmd.at("wall"));
      } else if (op == "flush") {
        tb.flush();
      } else if (op == "close") {
        tb.close();
      } else if (op == "crash") {
        tb.flush();
        std::cout.flush();
        ::_exit(0);
      } else {
        std::fprintf(stderr, "tensorboard_tool: unknown op %s\n", op.c_str());
        return 2;
      }
    }
    tb.close();
    return 0;
  } catch (const sft::Error& e) {
    std::fprintf(stderr, "tensorboard_tool: error: %s\n", e.what());
    return 1;
  }
}
