// The settings table of `sft train`: one row per setting (flag name = training_args.json key, the TrainConfig field
// it writes, its type, help, accepted range or values, other spellings, HF flags accepted and ignored). Everything
// that handles a setting reads this table: flag and --config parsing (cli/train_flags.cpp), TrainConfig::validate,
// TrainConfig::to_json (training_args.json) and the --help text. The default is the field's initializer in
// train_config.h (help and training_args.json read it from TrainConfig{}), so it is written once.
//
// Adding a flag = the field in train_config.h + one row in train_settings.cpp + the code that uses the value. E.g.
//   row("neftune_noise_alpha", &C::neftune_noise_alpha, "NEFTune embedding noise").in(0, 1e3),
//   row("packing_strategy", &C::packing_strategy, "how rows are packed").one_of({"bfd", "wrapped"}),
//   row("padding_free", &C::padding_free, "no padding: rows concatenated with position ids"),   // a bool field
//   ignored("run_name", "no experiment tracker"),             // accepted (any value) and noted once
// A bool takes True/False/true/false/1/0 or stands bare; an enum's error lists its values; a range's error states it.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "train/train_config.h"

namespace sft::train {

enum class SettingType {
  String,
  Int,
  Float,
  Bool,  // an `int` field is a tri-state bool: -1 unset (JSON null), 0, 1
  Enum,  // a string limited to `choices`
  List,  // comma-separated names; several command-line words or a JSON array are joined with ','
};

// The TrainConfig member a row writes; std::monostate for HF flags accepted and ignored.
using SettingField = std::variant<std::monostate, std::string TrainConfig::*, int64_t TrainConfig::*,
                                  uint64_t TrainConfig::*, double TrainConfig::*, bool TrainConfig::*, int TrainConfig::*>;

struct SettingRange {  // accepted interval of an Int / Float row (checked by validate, with the flag named)
  double lo = 0, hi = 0;
  bool lo_open = false, hi_open = false;
};

struct Setting {
  std::string_view name;  // --name and the training_args.json key
  SettingType type = SettingType::String;
  SettingField field;
  std::string_view help;  // an ignored flag: why it changes nothing here
  std::vector<std::string_view> aliases;  // other spellings of the same setting (HF's older names)
  std::vector<std::string_view> choices;  // Enum; a List's items; an ignored flag that still restricts its value
  std::string_view choices_note;          // added to the enum's error, e.g. "float16 is not supported: use bfloat16"
  std::optional<SettingRange> range;
  bool required = false;   // an empty value is an error ("--name is required")
  // Non-empty: a value given empty (flag or --config) is refused with this reason, while leaving the setting out
  // keeps its default (--lora_target_modules '' is peft's error, not its default list). training_args.json writes
  // such a list as null when unset, and --config reads null as "not given".
  std::string_view empty_error;
  bool lora_only = false;  // means something only with --use_peft (noted as ignored without it)
  // A rule beyond range / choices (the device syntax, a cross-field condition); throws naming the flag.
  void (*check)(const TrainConfig&) = nullptr;
  // An ignored flag that still acts (--fp16 True computes in bf16): applies the value, returns the note ("" = none).
  std::string (*act)(const Setting&, const std::string& value, TrainConfig&) = nullptr;

  bool ignored() const { return std::holds_alternative<std::monostate>(field); }
  bool is_bool() const { return type == SettingType::Bool; }

  // Row modifiers (the table in train_settings.cpp is written with them).
  Setting in(double lo, double hi) &&;                // closed interval
  Setting in_open_hi(double lo, double hi) &&;        // [lo, hi)
  Setting in_open_lo(double lo, double hi) &&;        // (lo, hi]
  Setting one_of(std::initializer_list<std::string_view> values, std::string_view note = {}) &&;
  Setting also(std::string_view alias) &&;
  Setting list() &&;
  Setting needed() &&;
  Setting non_empty(std::string_view why) &&;
  Setting lora() &&;
  Setting checked(void (*rule)(const TrainConfig&)) &&;
  Setting acting(std::string (*effect)(const Setting&, const std::string& value, TrainConfig&)) &&;
};

// Every row, in training_args.json order; the accepted-and-ignored HF flags last.
const std::vector<Setting>& train_settings();
// The row of a flag name or alias; nullptr when none.
const Setting* find_setting(std::string_view name);

// Applies one value (command line or --config) typed as the row says; `spelled` is the name the user wrote (errors
// name it). Returns the note to show once ("" = none): ignored flags say why. Throws "--name: expected ..." on a
// value of the wrong type or an empty value of a non_empty row (ranges and choices of fields are checked later, by
// validate).
std::string apply_setting(TrainConfig& cfg, const Setting& s, std::string_view spelled, const std::string& value);

// TrainConfig::validate and to_json, from the table. check_setting: one row's rules (required, range, values — each
// item of a list —, its extra rule); validate_settings runs it for every row in table order.
void check_setting(const Setting& s, const TrainConfig& cfg);
void validate_settings(const TrainConfig& cfg);
std::string settings_to_json(const TrainConfig& cfg);

// The row's field of cfg as text ("" for an empty string, "true"/"false", numbers as %g, "unset" for a tri-state -1).
std::string setting_value_text(const Setting& s, const TrainConfig& cfg);
// Some LoRA-only setting differs from its default (what a full fine-tuning run notes as ignored).
bool lora_settings_changed(const TrainConfig& cfg);

}  // namespace sft::train
