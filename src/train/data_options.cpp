#include "train/data_options.h"

#include "data/dataset.h"
#include "data/template.h"

namespace sft::train {

data::PrepareOptions prepare_options(const TrainConfig& cfg, const data::ResolvedTemplate& tmpl) {
  data::PrepareOptions po;
  po.dataset_path = cfg.dataset_path;
  po.eval_dataset_path = cfg.eval_dataset_path;
  if (cfg.validation_split > 0) {  // HF-style: a fraction below 1, a row count from 1 up
    if (cfg.validation_split < 1) po.validation_split.fraction = cfg.validation_split;
    else po.validation_split.count = static_cast<int64_t>(cfg.validation_split);
  }
  po.read.skip_bad_rows = cfg.skip_bad_rows;
  po.read.keep_empty_responses = cfg.keep_empty_responses;
  po.read.dataset_format = data::parse_dataset_format(cfg.dataset_format);  // the eval file is read the same way
  po.read.dataset_text_field = cfg.dataset_text_field;
  po.templ.tmpl = data::parse_template(tmpl.name);
  po.templ.chat_template = tmpl.chat_template;
  po.templ.train_on_inputs = cfg.train_on_inputs;
  po.templ.completion_only_loss = cfg.completion_only_loss != 0;  // unset (-1) = TRL's default for these rows: true
  if (cfg.assistant_only_loss >= 0) po.templ.assistant_only_loss = cfg.assistant_only_loss == 1;
  po.max_seq_length = cfg.max_seq_length;
  po.truncation = data::parse_truncation(cfg.truncation);
  // Wrapped packing (as TRL's) truncates nothing: a long sample continues in the next row.
  if (cfg.packing && cfg.packing_strategy == "wrapped") po.truncation = data::Truncation::Split;
  po.seed = cfg.seed;
  return po;
}

data::LoaderOptions train_loader_options(const TrainConfig& cfg, int32_t pad_id) {
  data::LoaderOptions lo;
  lo.batch_size = cfg.per_device_train_batch_size;
  lo.max_seq_length = cfg.max_seq_length;
  lo.group_by_length = cfg.group_by_length;
  lo.packing = cfg.packing;
  lo.packing_strategy = data::parse_packing_strategy(cfg.packing_strategy);
  lo.drop_last = cfg.data_loader_drop_last;
  lo.seed = cfg.seed;
  lo.pad_id = pad_id;
  return lo;
}

data::LoaderOptions eval_loader_options(const TrainConfig& cfg, int32_t pad_id) {
  data::LoaderOptions eo = train_loader_options(cfg, pad_id);
  eo.batch_size = cfg.per_device_eval_batch_size;
  eo.shuffle = false;
  eo.group_by_length = false;
  eo.drop_last = false;
  return eo;
}

}  // namespace sft::train
