#include "cli/train_flags.h"

#include <algorithm>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "train/train_settings.h"
#include "util/error.h"
#include "util/file_util.h"
#include "util/input_file.h"

namespace sft::cli {

namespace {

using train::Setting;
using train::SettingType;

// Every name a user may type: settings, their aliases, ignored HF flags, and --config.
std::vector<std::string> all_flag_names() {
  std::vector<std::string> names = {"config"};
  for (const Setting& s : train::train_settings()) {
    names.emplace_back(s.name);
    for (std::string_view a : s.aliases) names.emplace_back(a);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string suggestion(const std::string& name) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const std::string& cand : all_flag_names()) {
    const size_t d = edit_distance(name, cand);
    if (d < best_d) {
      best_d = d;
      best = cand;
    }
  }
  const size_t limit = std::max<size_t>(2, name.size() / 3);
  return best_d <= limit ? " (did you mean --" + best + "?)" : "";
}

void apply(ParsedTrainArgs& out, std::set<std::string_view>& noted, const std::string& name, const std::string& value,
           const std::string& where) {
  const Setting* s = train::find_setting(name);
  if (!s) throw Error("unknown flag --" + name + where + suggestion(name));
  const std::string note = train::apply_setting(out.cfg, *s, name, value);
  if (!note.empty() && noted.insert(s->name).second) out.notes.push_back(note);  // once per setting
}

// A --config value as the text a command-line flag would carry (lists: a JSON array of names, joined by ',').
std::string json_value_text(const nlohmann::json& v, const std::string& key, const std::string& path) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v.get<double>());
    return buf;
  }
  const Setting* s = train::find_setting(key);
  if (v.is_array() && s && s->type == SettingType::List) {
    std::string out;
    for (const auto& e : v) {
      SFT_CHECK(e.is_string(), path, ": \"", key, "\" must be a list of names (strings)");
      if (!out.empty()) out += ',';
      out += e.get<std::string>();
    }
    return out;
  }
  throw Error(path + ": key \"" + key + "\" must be a string, number or boolean");
}

void apply_config_file(ParsedTrainArgs& out, std::set<std::string_view>& noted, const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_input_file(path, input::json_file));
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON (" + e.what() + ")");
  }
  SFT_CHECK(j.is_object(), path, ": --config must hold a JSON object of flag names to values");
  for (const auto& [k, v] : j.items()) {
    std::string key = k;
    if (key.rfind("--", 0) == 0) key = key.substr(2);
    // HF's None (training_args.json writes unset settings so): the setting keeps its default.
    if (v.is_null() && train::find_setting(key)) continue;
    if (v.is_null()) apply(out, noted, key, "", " in " + path);  // unknown: the did-you-mean error
    apply(out, noted, key, json_value_text(v, key, path), " in " + path);
  }
}

}  // namespace

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

ParsedTrainArgs parse_train_args(const std::vector<std::string>& args) {
  // Pass 1: split into (name, value) pairs; pass 2 applies --config first, then the command line.
  std::vector<std::pair<std::string, std::string>> pairs;
  std::string config_path;
  ParsedTrainArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      out.help = true;
      return out;
    }
    SFT_CHECK(a.size() > 2 && a.rfind("--", 0) == 0, "unexpected argument '", a, "' (flags are --name value)");
    std::string name = a.substr(2), value;
    const size_t eq = name.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    std::replace(name.begin(), name.end(), '-', '_');  // --max-steps == --max_steps
    const Setting* s = train::find_setting(name);
    if (!has_value) {
      if (s && s->is_bool()) {
        // Bare bool flag = True, unless a value follows: sft train takes no positional argument, so a word that is
        // not a flag is this flag's value, and one that is not a bool is an error naming the flag.
        value = i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0 ? args[++i] : "true";
      } else {
        if (!s && name != "config") throw Error("unknown flag --" + name + suggestion(name));
        SFT_CHECK(i + 1 < args.size(), "--", name, " needs a value");
        value = args[++i];
        if (s && s->type == SettingType::List)  // TRL: --lora_target_modules q_proj v_proj
          while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) value += "," + args[++i];
      }
    }
    if (name == "config") config_path = value;
    else pairs.emplace_back(name, value);
  }
  std::set<std::string_view> noted;
  if (!config_path.empty()) apply_config_file(out, noted, config_path);
  for (const auto& [name, value] : pairs) apply(out, noted, name, value, "");
  return out;
}

std::vector<std::string> train_flag_names() {
  std::vector<std::string> out;
  for (const Setting& s : train::train_settings()) {
    if (s.ignored()) continue;
    out.emplace_back(s.name);
    for (std::string_view a : s.aliases) out.emplace_back(a);
  }
  return out;
}

namespace {

// "(one of: a, b; default: x; also --alias)" — what the row says beyond its help text.
std::string help_details(const Setting& s) {
  static const train::TrainConfig defaults;
  std::vector<std::string> parts;
  if (!s.choices.empty()) {
    std::string c = "one of:";
    for (std::string_view v : s.choices) c += (c.back() == ':' ? " " : ", ") + std::string(v);
    parts.push_back(c);
  }
  const std::string d = train::setting_value_text(s, defaults);
  if (!d.empty() && d != "false" && d != "unset") parts.push_back("default: " + d);
  for (std::string_view a : s.aliases) parts.push_back("also --" + std::string(a));
  if (parts.empty()) return "";
  std::string out = " (";
  for (size_t i = 0; i < parts.size(); ++i) out += (i ? "; " : "") + parts[i];
  return out + ")";
}

}  // namespace

std::string train_flags_help() {
  std::string s =
      "sft train --model_name_or_path M --dataset_path D --output_dir O [flags]\n"
      "Flags use Hugging Face TrainingArguments names: --name value or --name=value; bool flags take\n"
      "True/False/true/false/1/0 or stand alone. --config file.json holds the same keys (flags override it).\n\n";
  std::string ignored;
  for (const Setting& f : train::train_settings()) {
    if (f.ignored()) {
      ignored += (ignored.empty() ? "--" : ", --") + std::string(f.name);
      continue;
    }
    std::string line = "  --" + std::string(f.name);
    if (line.size() < 34) line.resize(34, ' ');
    s += line + " " + std::string(f.help) + help_details(f) + "\n";
  }
  s += "  --config                         JSON file of flag names to values\n\nAccepted and ignored: ";
  return s + ignored + "\n";
}

}  // namespace sft::cli
