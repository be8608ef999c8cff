// TrainConfig -> the data layer's options: how `sft train`'s flags map onto dataset preparation and the loaders.
// One place (train::Job calls it), so a new data flag is wired here (and in the settings table).
#pragma once
#include <cstdint>

#include "data/batching.h"
#include "data/prepare.h"
#include "data/template_choice.h"
#include "train/train_config.h"

namespace sft::train {

// tmpl: cfg.template_name resolved against the model folder (data::resolve_template; "auto" falls back to alpaca).
data::PrepareOptions prepare_options(const TrainConfig& cfg, const data::ResolvedTemplate& tmpl);
// Training batches: seeded shuffle, group_by_length / packing / drop_last as configured.
data::LoaderOptions train_loader_options(const TrainConfig& cfg, int32_t pad_id);
// Evaluation batches: dataset order, per_device_eval_batch_size, every row kept.
data::LoaderOptions eval_loader_options(const TrainConfig& cfg, int32_t pad_id);

}  // namespace sft::train
