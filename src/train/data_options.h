// TrainConfig -> the data layer's options: how `sft train`'s flags map onto dataset preparation and the loaders.
// One place, so the CLI only parses flags and a new data flag is wired here (and in the flag table).
#pragma once
#include <cstdint>

#include "data/batching.h"
#include "data/prepare.h"
#include "train/train_config.h"

namespace sft::train {

data::PrepareOptions prepare_options(const TrainConfig& cfg);
// Training batches: seeded shuffle, group_by_length / packing / drop_last as configured.
data::LoaderOptions train_loader_options(const TrainConfig& cfg, int32_t pad_id);
// Evaluation batches: dataset order, per_device_eval_batch_size, every row kept.
data::LoaderOptions eval_loader_options(const TrainConfig& cfg, int32_t pad_id);

}  // namespace sft::train
