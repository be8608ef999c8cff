// Internal to the data layer, and only compiled with Apache Arrow (SFT_HAVE_ARROW): the error plumbing that
// parquet_reader.cpp and parquet_rows.cpp share. Arrow reports failures as exceptions or failed Status objects whose
// text may span lines; every one becomes a one-line sft::Error naming the file.
#pragma once
#include <arrow/api.h>

#include <algorithm>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "util/error.h"

namespace sft::data::detail {

// One line, whatever Arrow's message holds (some span lines).
inline std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  std::replace(s.begin(), s.end(), '\r', ' ');
  return s;
}

// Runs fn, turning Arrow's and Parquet's exceptions into one-line sft::Errors naming `what`.
template <class F>
void guarded(const std::string& what, F&& fn) {
  try {
    fn();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(what + ": " + one_line(e.what()));
  }
}

template <class T>
T value_or_throw(arrow::Result<T> r, const std::string& what) {
  if (!r.ok()) throw Error(what + ": " + one_line(r.status().ToString()));
  return std::move(r).ValueOrDie();
}

// Value i of an array as JSON, as `datasets`' to_json writes it (parquet_rows.cpp): null, bool, numbers, strings
// (checked for UTF-8: Arrow does not validate what a file holds), dictionaries decoded, lists as arrays, structs as
// objects -- with every field, or only struct_keys when given (the training reader's messages: role, content).
// The array's type must have passed the caller's type check (which also bounds the recursion); `err` is set (and
// null returned) on invalid UTF-8 or a bad dictionary index.
nlohmann::json arrow_value_to_json(const arrow::Array& a, int64_t i, std::string& err,
                                   const std::vector<std::string>* struct_keys = nullptr);

}  // namespace sft::data::detail
