// Driver for test_csv_parity.py: reads a file with util/csv.h and prints the records as JSON, so the test can compare
// them with CPython's csv module on the same bytes.
// usage: csv_tool binary-lines|text-mode|rfc4180-strict FILE
// stdout: {"records": [[field...]...], "errors": [record error...]} or {"exception": "..."}
#include <iostream>

#include <nlohmann/json.hpp>

#include "util/csv.h"
#include "util/error.h"
#include "util/file_util.h"

int main(int argc, char** argv) {
  using nlohmann::json;
  if (argc != 3) {
    std::cerr << "usage: csv_tool binary-lines|text-mode|rfc4180-strict FILE\n";
    return 2;
  }
  const std::string mode = argv[1];
  sft::csv::Options o;
  if (mode == "binary-lines") o.line_ends = sft::csv::LineEnds::PythonBinaryLines;
  else if (mode == "text-mode") o.line_ends = sft::csv::LineEnds::PythonTextMode;
  else o = {sft::csv::LineEnds::Rfc4180, true, true};
  json out;
  try {
    json recs = json::array(), errs = json::array();
    for (const auto& r : sft::csv::read_records(sft::read_file(argv[2]), argv[2], o)) {
      recs.push_back(r.fields);
      errs.push_back(r.error);
    }
    out = {{"records", recs}, {"errors", errs}};
  } catch (const sft::Error& e) {
    out = {{"exception", e.what()}};
  }
  std::cout << out.dump() << "\n";
  return 0;
}
