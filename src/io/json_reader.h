// Typed getters over one JSON object that name the file and key on a type error. A JSON null counts as absent
// (transformers does the same). Used by the config readers of model families (model/families) and anything else
// that reads a small JSON file with defaults.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace sft::io {

struct JsonReader {
  const nlohmann::json& j;
  std::string where;

  bool present(const char* key) const { return j.contains(key) && !j[key].is_null(); }
  int64_t get_int(const char* key, std::optional<int64_t> dflt) const {
    if (!present(key)) {
      SFT_CHECK(dflt.has_value(), where, ": required key \"", key, "\" is missing");
      return *dflt;
    }
    const nlohmann::json& v = j[key];
    SFT_CHECK(v.is_number_integer(), where, ": \"", key, "\" must be an integer, got ", v.dump());
    return v.get<int64_t>();
  }
  double get_double(const char* key, double dflt) const {
    if (!present(key)) return dflt;
    const nlohmann::json& v = j[key];
    SFT_CHECK(v.is_number(), where, ": \"", key, "\" must be a number, got ", v.dump());
    return v.get<double>();
  }
  bool get_bool(const char* key, bool dflt) const {
    if (!present(key)) return dflt;
    const nlohmann::json& v = j[key];
    SFT_CHECK(v.is_boolean(), where, ": \"", key, "\" must be true or false, got ", v.dump());
    return v.get<bool>();
  }
  std::string get_string(const char* key, const std::string& dflt) const {
    if (!present(key)) return dflt;
    const nlohmann::json& v = j[key];
    SFT_CHECK(v.is_string(), where, ": \"", key, "\" must be a string, got ", v.dump());
    return v.get<std::string>();
  }
  // Absent key -> dflt; explicit null -> nullopt.
  std::optional<int64_t> get_opt_int(const char* key, std::optional<int64_t> dflt) const {
    if (!j.contains(key)) return dflt;
    if (j[key].is_null()) return std::nullopt;
    return get_int(key, std::nullopt);
  }
};

}  // namespace sft::io
