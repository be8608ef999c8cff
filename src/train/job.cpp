#include "train/job.h"

#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <thread>

#include "backend/device.h"
#include "data/batching.h"
#include "data/prepare.h"
#include "data/template_choice.h"
#include "io/gguf.h"
#include "io/peft_adapter.h"
#include "io/safetensors.h"
#include "model/family.h"
#include "model/gguf_mapping.h"
#include "model/lora.h"
#include "model/memory_plan.h"
#include "model/model.h"
#include "model/weight_check.h"
#include "parallel/communicator.h"
#include "template/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/checkpoint.h"
#include "train/continue_check.h"
#include "train/data_options.h"
#include "train/finite_guard.h"
#include "train/tensorboard.h"
#include "train/train_settings.h"
#include "util/error.h"
#include "util/checked_math.h"
#include "util/file_util.h"
#include "util/machine_memory.h"

namespace sft::train {

namespace fs = std::filesystem;

namespace {

// A multi-line report (each line ends in '\n') as one note; nothing when empty.
void note_block(TrainObserver& obs, std::string text) {
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (!text.empty()) obs.on_note(text);
}

}  // namespace

std::unique_ptr<Job> Job::open(const TrainConfig& cfg, std::unique_ptr<parallel::Communicator>& comm,
                               TrainObserver& obs) {
  std::unique_ptr<Job> job(new Job(cfg, *comm));
  job->note_ignored_settings(obs);
  job->set_threads();
  job->resolve_resume(obs);
  job->check_lora(obs);  // bad LoRA settings fail before anything is written
  job->check_save_gguf();  // a family without a GGUF mapping fails before training, not after
  job->check_memory(obs);
  if (comm->rank() == 0) {
    job->check_logging_dir();
    prepare_output_dir(cfg, !job->resume_dir_.empty());
    job->make_logging_dir_now();
  }
  comm->barrier();  // nobody writes into output_dir before rank 0 has cleaned it
  job->open_device(comm);
  job->prepare_data(obs);
  job->load_model(obs);
  return job;
}

Job::Job(const TrainConfig& cfg, parallel::Communicator& comm) : cfg_(cfg), comm_(&comm) {}
Job::~Job() = default;

void Job::note_ignored_settings(TrainObserver& obs) const {
  if (cfg_.eval_strategy == "no" && cfg_.load_best_model_at_end)
    obs.on_note("note: --load_best_model_at_end ignored: no evaluation (--eval_strategy no)");
  if (cfg_.early_stopping_patience > 0 && !cfg_.load_best_model_at_end)  // transformers warns the same
    obs.on_note("note: --early_stopping_patience without --load_best_model_at_end True: the final model is the last "
                "step's weights, not the best checkpoint's");
  if (cfg_.early_stopping_patience == 0 && cfg_.early_stopping_threshold != 0)
    obs.on_note("note: --early_stopping_threshold ignored: no early stopping (--early_stopping_patience 0)");
  if (!cfg_.logging_dir.empty() && !cfg_.reports_to("tensorboard"))
    obs.on_note("note: --logging_dir ignored: only --report_to tensorboard writes there");
  std::string offline;  // trackers that would send the run somewhere: noted once, all together
  for (const char* t : {"azure_ml", "comet_ml", "mlflow", "neptune", "trackio", "wandb", "codecarbon", "clearml",
                        "dagshub", "flyte", "dvclive", "swanlab", "kubeflow"})
    if (cfg_.reports_to(t)) offline += std::string(offline.empty() ? "" : ", ") + t;
  if (!offline.empty())
    obs.on_note("note: --report_to " + offline + " ignored: no network here, nothing is sent (trainer_log.jsonl" +
                (cfg_.reports_to("tensorboard") ? " and TensorBoard events are" : " is") + " written)");
  if (!cfg_.packing && cfg_.packing_strategy != TrainConfig{}.packing_strategy)
    obs.on_note("note: --packing_strategy ignored without --packing True");
  if (!cfg_.use_peft && lora_settings_changed(cfg_))
    obs.on_note("note: --lora_* flags ignored: full fine-tuning (add --use_peft for LoRA)");
}

// An explicit --logging_dir that is not a folder fails before anything is written.
void Job::check_logging_dir() const {
  if (!cfg_.reports_to("tensorboard") || cfg_.logging_dir.empty()) return;
  std::error_code ec;
  SFT_CHECK(!fs::exists(cfg_.logging_dir, ec) || fs::is_directory(cfg_.logging_dir, ec), "--logging_dir ",
            cfg_.logging_dir, ": exists and is not a folder (TensorBoard writes events files into a folder)");
}

// --report_to tensorboard: --logging_dir, else $TENSORBOARD_LOGGING_DIR (transformers 5), else the folder of the run
// being resumed, else transformers 5's default <output_dir>/runs/<date>_<host>. Created now, so that a bad path stops
// the run before the data and the model are loaded.
void Job::make_logging_dir_now() {
  if (!cfg_.reports_to("tensorboard")) return;
  if (cfg_.logging_dir.empty()) {
    if (const char* env = std::getenv("TENSORBOARD_LOGGING_DIR"); env && *env) {
      cfg_.logging_dir = env;
      const char* home = std::getenv("HOME");  // os.path.expanduser, as transformers applies to the variable
      if (home && *home && cfg_.logging_dir[0] == '~' && (cfg_.logging_dir.size() == 1 || cfg_.logging_dir[1] == '/'))
        cfg_.logging_dir = home + cfg_.logging_dir.substr(1);
    }
  }
  if (cfg_.logging_dir.empty() && !resume_dir_.empty()) {
    const fs::path state = resume_dir_ / "trainer_state.json";
    cfg_.logging_dir = trainer_state_from_json(read_file(state), state.string()).logging_dir;
  }
  if (cfg_.logging_dir.empty()) cfg_.logging_dir = default_logging_dir(cfg_.output_dir, std::time(nullptr)).string();
  try {
    make_logging_dir(cfg_.logging_dir);
  } catch (const Error& e) {
    throw Error(std::string("--logging_dir: ") + e.what());
  }
}

void Job::set_threads() const {
  if (cfg_.threads > 0) {
    omp_set_num_threads(static_cast<int>(cfg_.threads));
  } else if (comm_->local_size() > 1) {  // ranks sharing a machine split its cores (a bound rank sees only its own)
    const int hw = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    omp_set_num_threads(std::max(1, std::min(omp_get_num_procs(), hw / comm_->local_size())));
  }
}

// The weights come from the checkpoint, everything else from the base model folder: so the checkpoint must be one of
// this base model (train/continue_check.h).
void Job::resolve_resume(TrainObserver& obs) {
  base_ = cfg_.model_name_or_path;
  if (cfg_.resume_from_checkpoint.empty()) return;
  resume_dir_ = cfg_.resume_from_checkpoint == "last" ? last_checkpoint(cfg_.output_dir)
                                                      : fs::path(cfg_.resume_from_checkpoint);
  SFT_CHECK(fs::exists(resume_dir_ / "trainer_state.json"), "--resume_from_checkpoint: ", resume_dir_.string(),
            " is not a checkpoint folder (no trainer_state.json)");
  const bool lora_checkpoint = fs::exists(resume_dir_ / "adapter_config.json");
  SFT_CHECK(!cfg_.use_peft || lora_checkpoint, "--resume_from_checkpoint: ", resume_dir_.string(),
            " holds no adapter (a full fine-tuning checkpoint): resume it without --use_peft");
  SFT_CHECK(cfg_.use_peft || !lora_checkpoint, "--resume_from_checkpoint: ", resume_dir_.string(),
            " is a LoRA checkpoint: resume it with --use_peft");
  for (const std::string& note : check_checkpoint_matches_base(resume_dir_, base_, lora_checkpoint)) obs.on_note(note);
}

// The adapter continued (a LoRA checkpoint, or --adapter_name_or_path) decides the LoRA settings, as in peft; the
// --lora_* flags that differ are named in a note. A new adapter's settings are resolved against config.json here.
void Job::check_lora(TrainObserver& obs) const {
  if (!cfg_.use_peft) return;
  const io::ModelConfig mc = model::load_config(base_ / "config.json");
  if (!resume_dir_.empty() && !cfg_.adapter_name_or_path.empty())
    obs.on_note("note: --adapter_name_or_path ignored: resuming continues the adapter of " + resume_dir_.string());
  const fs::path adapter = !resume_dir_.empty() ? resume_dir_ : fs::path(cfg_.adapter_name_or_path);
  if (adapter.empty()) {
    model::plan_lora(mc, cfg_.lora_config(), 1);  // resolves target_modules / modules_to_save or throws
    note_block(obs, zero_alpha_warning(cfg_.lora_config(), "--lora_alpha 0"));
    return;
  }
  std::unique_ptr<io::SafetensorsFile> f;
  const io::LoraAdapterConfig used = model::check_adapter(adapter, mc, f);
  note_block(obs, adapter_settings_note(cfg_, used, adapter, mc));
  note_block(obs, zero_alpha_warning(used, (adapter / "adapter_config.json").string() + ": lora_alpha 0"));
}

void Job::check_save_gguf() const {
  if (cfg_.save_gguf.empty()) return;
  try {
    model::check_gguf_mapping(model::load_config(base_ / "config.json"));
  } catch (const Error& e) {
    throw Error(std::string("--save_gguf: ") + e.what());
  }
}

// --save_gguf: the final model (LoRA: the base with the trained adapter merged in) as <output_dir>/<name>-<type>.gguf,
// written by rank 0 after the HF folder, through the same code as `sft export`.
void Job::save_gguf(const fs::path& output_dir, TrainObserver& obs) const {
  if (cfg_.save_gguf.empty() || comm_->rank() != 0) return;
  fs::path dir = fs::absolute(output_dir).lexically_normal();
  if (dir.filename().empty()) dir = dir.parent_path();
  const fs::path out = dir / (dir.filename().string() + "-" + cfg_.save_gguf + ".gguf");
  const bool lora = io::is_adapter_dir(output_dir);
  obs.on_note("--save_gguf " + cfg_.save_gguf + ": exporting " + (lora ? "the merged model" : "the model") + " ...");
  const model::GgufExportResult r =
      model::export_gguf(lora ? base_ : output_dir, lora ? output_dir : fs::path(), out,
                         model::parse_gguf_outtype(cfg_.save_gguf, "--save_gguf"), /*overwrite=*/true);
  obs.on_note(model::describe_gguf_export(r, cfg_.save_gguf));
}

// Data parallel: plain "cuda" means the GPU of the rank's local rank (one rank per GPU); "cuda:N" is kept.
void Job::open_device(std::unique_ptr<parallel::Communicator>& comm) {
  backend::DeviceSpec device = backend::parse_device(cfg_.device);
  if (comm->world_size() > 1 && cfg_.device == "cuda") device.index = comm->local_rank();
  be_ = backend::make_backend(device);
  const bool cuda = device.kind == backend::DeviceSpec::Kind::Cuda;
  comm = parallel::make_device_communicator(std::move(comm), cuda ? device.index : -1);
  comm_ = comm.get();
}

void Job::prepare_data(TrainObserver& obs) {
  tokenizer_ = std::make_unique<tok::Tokenizer>(tok::Tokenizer::load(base_));
  const data::TokenizerEncoder encoder(*tokenizer_);
  const data::ResolvedTemplate tmpl = data::resolve_template(cfg_.template_name, base_, "alpaca");
  if (tmpl.chat_template)
    obs.on_note("template: the model's chat template (" + tmpl.chat_template->origin() +
                "); loss on assistant turns + end-of-turn token");
  else if (tmpl.fell_back)
    obs.on_note("template: " + base_.string() + " has no chat template; --template auto uses alpaca");

  const data::PrepareOptions po = prepare_options(cfg_, tmpl);
  const data::PreparedData prepared = data::prepare_dataset(po, encoder);
  note_block(obs, data::format_read_report(prepared.train_read, cfg_.dataset_path));
  if (!cfg_.eval_dataset_path.empty())
    note_block(obs, data::format_read_report(prepared.eval_read, cfg_.eval_dataset_path));
  note_block(obs, "training data: " + cfg_.dataset_path + "\n" + data::format_report(prepared.train_report, po.truncation));
  const bool have_eval = prepared.eval && !prepared.eval->empty();
  if (have_eval) note_block(obs, "evaluation data:\n" + data::format_report(prepared.eval_report, po.truncation));

  const int32_t pad = tokenizer_->pad_id().value_or(tokenizer_->eos_id().value_or(0));
  data::LoaderOptions lo = train_loader_options(cfg_, pad);
  lo.batch_size *= comm_->world_size();  // data parallel: the global micro-batch; each rank trains on its slice
  train_ = std::make_unique<data::DataLoader>(prepared.train, lo);
  if (have_eval) eval_ = std::make_unique<data::DataLoader>(prepared.eval, eval_loader_options(cfg_, pad));
}

static std::string fmt_gib(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

// The gemms' dtype: --bf16 / --torch_dtype, or with --load_in_4bit --bnb_4bit_compute_dtype (bitsandbytes' rule).
static model::Precision train_precision(const TrainConfig& c) {
  if (c.load_in_4bit) return c.bnb_4bit_compute_dtype == "bfloat16" ? model::Precision::BF16 : model::Precision::F32;
  return c.use_bf16() ? model::Precision::BF16 : model::Precision::F32;
}

static void set_base_storage(const TrainConfig& c, model::LoraOptions& lora) {
  lora.store_dtype_bf16 = c.use_bf16() || (c.load_in_4bit && c.bnb_4bit_compute_dtype == "bfloat16");
  lora.load_in_4bit = c.load_in_4bit;
  lora.bnb_4bit_quant_type = c.bnb_4bit_quant_type;
  lora.bnb_4bit_use_double_quant = c.bnb_4bit_use_double_quant;
}

void Job::check_memory(TrainObserver& obs) const {
  if (!cfg_.use_peft || cfg_.device != "cpu" || !fs::is_directory(base_)) return;
  model::LoraOptions lora;
  lora.config = cfg_.lora_config();
  set_base_storage(cfg_, lora);
  const model::Precision p = train_precision(cfg_);
  const io::ModelConfig mc = model::load_config(base_ / "config.json");
  const bool fast_bf16 = backend::make_backend(backend::DeviceSpec{})->fast_bf16_gemm();
  const int64_t n = cfg_.per_device_train_batch_size * cfg_.max_seq_length;
  // an upper bound of every byte count the plan adds, in checked arithmetic (as sft info): never a wrapped figure
  const std::string what = "the memory plan of --per_device_train_batch_size x --max_seq_length";
  const int64_t width = 8 + 4 * mc.hidden_size + 3 * mc.q_dim() + 3 * mc.kv_dim() + 3 * mc.intermediate_size +
                        mc.num_attention_heads + 4 * std::max<int64_t>(lora.config.r, 0);
  (void)checked_mul(checked_mul(checked_mul(mc.num_hidden_layers + 2, n, what), width, what), 64, what);
  const auto storage = model::frozen_storage_for(p, lora);
  const model::LoraMemoryPlan plan =
      model::plan_lora_memory(mc, lora.config, n, p, fast_bf16, cfg_.gradient_checkpointing, storage.get());
  auto gib = [](int64_t b) { return fmt_gib(b); };
  const std::string form = !storage ? "fp32" : storage->load_in_4bit ? std::string(weight_format_name(storage->quant_type)) +
                           (storage->double_quant ? " + double quant" : "") : "bf16";
  const MachineMemory avail = available_memory();
  // The peak the run will reach: what the process holds now (libraries, tokenizer, tokenized data) plus the plan.
  const int64_t held = resident_bytes().value_or(0);
  obs.on_note("memory plan: " + gib(plan.plan.total()) + " (frozen base " + form + " " +
              gib(storage ? plan.frozen : 4 * model::num_parameters(mc)) + ", activations " +
              gib(plan.plan.activations) + ")" + (held ? "; peak with this process's " + gib(held) + " so far: " +
              gib(held + plan.plan.total()) : "") +
              (avail.bytes ? "; available " + gib(*avail.bytes) + " (" + avail.source + ")" : ""));
  SFT_CHECK(!avail.bytes || plan.plan.total() <= *avail.bytes, "not enough memory: the run's plan needs ",
            gib(plan.plan.total()), " but the machine has ", gib(*avail.bytes), " left (", avail.source,
            "); try --load_in_4bit, --bf16, --gradient_checkpointing True or a smaller --per_device_train_batch_size / "
            "--max_seq_length");
}

// LoRA: the base stays the base folder; the adapter is new, continued (--adapter_name_or_path) or the checkpoint's.
// Full fine-tuning: the base folder, or the checkpoint when resuming.
void Job::load_model(TrainObserver& obs) {
  const auto precision = train_precision(cfg_);
  if (cfg_.use_peft) {
    model::LoraOptions lora;
    lora.config = cfg_.lora_config();
    lora.seed = cfg_.seed;
    set_base_storage(cfg_, lora);  // bf16-only or 4-bit frozen base
    lora.adapter_dir = !resume_dir_.empty() ? resume_dir_ : fs::path(cfg_.adapter_name_or_path);
    model_ = model::Model::load(base_, *be_, precision, &lora);
  } else {
    model_ = model::Model::load(resume_dir_.empty() ? base_ : resume_dir_, *be_, precision);
  }
  // After the load, so that a structural error is reported first; the files are mapped again, their pages cached.
  if (!cfg_.allow_nonfinite_weights) {
    const fs::path weights = cfg_.use_peft || resume_dir_.empty() ? base_ : resume_dir_;
    if (!io::is_gguf_file(weights)) {
      model::check_finite_weights(io::WeightStore::open(weights));
    } else {  // no safetensors to map: the decoded values on the backend (LoRA: the adapter's; the frozen base is not)
      const std::string bad = first_nonfinite_parameter(*be_, model_->parameters());
      SFT_CHECK(bad.empty(), weights.string(), ": ", bad, "; refusing to train from non-finite weights (pass ",
                model::kAllowNonfiniteFlag, " to load them anyway, for debugging)");
    }
    const fs::path adapter = cfg_.use_peft && !resume_dir_.empty() ? resume_dir_ : fs::path(cfg_.adapter_name_or_path);
    if (cfg_.use_peft && !adapter.empty())
      model::check_finite_tensors(io::SafetensorsFile(adapter / "adapter_model.safetensors"));
  }
  model_->set_gradient_checkpointing(cfg_.gradient_checkpointing);
  if (cfg_.gradient_checkpointing)
    obs.on_note("gradient checkpointing: each layer's forward runs again in the backward (activations of one layer "
                "kept instead of " + std::to_string(model_->config().num_hidden_layers) + ")");
}

TrainSummary Job::run(TrainObserver& obs) {
  TrainerInputs in;
  in.cfg = cfg_;
  in.model = model_.get();
  in.train = train_.get();
  in.eval = eval_.get();
  in.base_model_dir = base_;
  in.resume_dir = resume_dir_;
  in.comm = comm_;
  TrainSummary summary = run_training(in, obs);
  save_gguf(summary.output_dir, obs);
  return summary;
}

}  // namespace sft::train
