// trainer_state.json of a checkpoint (train/checkpoint.h), as --resume_from_checkpoint reads it: HF's keys, the best
// metric and step, the early-stopping callback state, the log history and sft_resume (loader position, logging window,
// TensorBoard folder). Whatever it parses is written back and parsed again.
#include "fuzz_util.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  sft::fuzz::expect_clean([&] {
    const sft::train::TrainerState s = sft::train::trainer_state_from_json(text, "trainer_state.json");
    (void)sft::train::trainer_state_from_json(sft::train::trainer_state_to_json(s), "round trip");
  });
  return 0;
}
