// A port of CPython's csv reader state machine (Modules/_csv.c, parse_process_char / Reader_iternext), written for
// this project, plus the record-end and strictness options described in csv.h.
#include "util/csv.h"

#include "util/error.h"

namespace sft::csv {
namespace {

enum class State { StartRecord, StartField, InField, InQuotedField, QuoteInQuotedField, EatCrnl };

class Parser {
 public:
  Parser(const std::string& name, const Options& opts) : name_(name), opts_(opts) {}

  void feed_line(std::string_view line, bool last_line_of_text) {
    if (state_ == State::StartRecord && fields_.empty()) rec_.line = line_no_;
    for (size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      bool newline = c == '\n' || c == '\r';
      // RFC 4180: only LF or CRLF end a record; a CR elsewhere is an ordinary character.
      if (c == '\r' && opts_.line_ends == LineEnds::Rfc4180)
        newline = i + 1 < line.size() ? line[i + 1] == '\n' : last_line_of_text;
      process(c, newline);
    }
    end_of_line();
    ++line_no_;
  }

  void finish() {
    if (state_ == State::InQuotedField) {
      SFT_CHECK(!opts_.strict, name_, " record ", records_.size() + 1, " (line ", rec_.line,
                "): malformed CSV: unterminated quoted field opened on line ", quote_line_);
      save_field();  // csv.reader (strict=False) returns what it has
      emit();
    }
  }

  std::vector<Record> take() { return std::move(records_); }

 private:
  void save_field() {
    fields_.push_back(std::move(field_));
    field_.clear();
  }
  void emit() {
    rec_.fields = std::move(fields_);
    fields_.clear();
    records_.push_back(std::move(rec_));
    rec_ = Record{};
    state_ = State::StartRecord;
  }
  void record_error(const char* what) {
    if (opts_.strict && rec_.error.empty()) rec_.error = std::string("malformed CSV: ") + what;
  }

  void process(char c, bool newline) {
    switch (state_) {
      case State::StartRecord:
        if (newline) {  // a blank line: csv.reader yields []
          state_ = State::EatCrnl;
          return;
        }
        state_ = State::StartField;
        [[fallthrough]];
      case State::StartField:
        if (newline) {
          save_field();
          state_ = State::EatCrnl;
        } else if (c == '"') {
          state_ = State::InQuotedField;
          quote_line_ = line_no_;
        } else if (c == ',') {
          save_field();
        } else {
          field_ += c;
          state_ = State::InField;
        }
        return;
      case State::InField:
        if (newline) {
          save_field();
          state_ = State::EatCrnl;
        } else if (c == ',') {
          save_field();
          state_ = State::StartField;
        } else {
          if (c == '"') record_error("a quote inside an unquoted field (quote the whole field and double the quote)");
          field_ += c;
        }
        return;
      case State::InQuotedField:
        if (c == '"') state_ = State::QuoteInQuotedField;
        else field_ += c;  // CR and LF included: inside quotes they are data
        return;
      case State::QuoteInQuotedField:
        if (c == '"') {  // "" is a literal quote
          field_ += c;
          state_ = State::InQuotedField;
        } else if (c == ',') {
          save_field();
          state_ = State::StartField;
        } else if (newline) {
          save_field();
          state_ = State::EatCrnl;
        } else {  // strict=False: the text continues as an unquoted field
          record_error("text after a closing quote");
          field_ += c;
          state_ = State::InField;
        }
        return;
      case State::EatCrnl:
        SFT_CHECK(newline, name_, " line ", line_no_,
                  ": malformed CSV: a line break character followed by more text on the same line outside quotes "
                  "(Python's csv module rejects this: 'new-line character seen in unquoted field')");
        return;
    }
  }

  // The EOL event csv.reader processes after every line it is given.
  void end_of_line() {
    switch (state_) {
      case State::StartRecord:
        emit();  // empty line without a line break character (the last line)
        return;
      case State::StartField:
      case State::InField:
      case State::QuoteInQuotedField:
        save_field();
        emit();
        return;
      case State::InQuotedField:
        return;  // the record continues on the next line
      case State::EatCrnl:
        emit();
        return;
    }
  }

  const std::string& name_;
  const Options& opts_;
  State state_ = State::StartRecord;
  std::vector<Record> records_;
  Record rec_;
  std::vector<std::string> fields_;
  std::string field_;
  int64_t line_no_ = 1, quote_line_ = 0;
};

}  // namespace

std::vector<Record> read_records(std::string_view text, const std::string& name, const Options& opts) {
  if (opts.strip_bom && text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  std::string translated;
  if (opts.line_ends == LineEnds::PythonTextMode) {  // universal newlines: "\r\n" and "\r" read as "\n"
    translated.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      if (text[i] == '\r') {
        translated += '\n';
        if (i + 1 < text.size() && text[i + 1] == '\n') ++i;
      } else {
        translated += text[i];
      }
    }
    text = translated;
  }
  Parser p(name, opts);
  size_t pos = 0;
  while (pos < text.size()) {  // lines as Python iterates a file: each ends after its LF (the last may have none)
    size_t end = text.find('\n', pos);
    end = end == std::string_view::npos ? text.size() : end + 1;
    p.feed_line(text.substr(pos, end - pos), end == text.size());
    pos = end;
  }
  p.finish();
  return p.take();
}

}  // namespace sft::csv
