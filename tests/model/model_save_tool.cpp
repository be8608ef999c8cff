// Loads an HF folder with Model::load and writes it back with Model::save (tests/model/test_model_parity.py checks
// that transformers loads the result with identical weights).
// usage: model_save_tool <model_dir> <out_dir> [float32|bfloat16]
#include <iostream>

#include "backend/backend.h"
#include "model/model.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: model_save_tool <model_dir> <out_dir> [float32|bfloat16]\n";
    return 2;
  }
  try {
    auto be = sft::backend::make_cpu_backend();
    auto m = sft::model::Model::load(argv[1], *be, sft::model::Precision::F32);
    m->save(argv[2], argc > 3 ? argv[3] : "float32");
  } catch (const std::exception& e) {
    std::cerr << "model_save_tool: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
