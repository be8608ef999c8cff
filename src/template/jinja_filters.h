// Jinja filters that need nothing from the renderer (internal to src/template): the input value and the evaluated
// positional / keyword arguments in, the result out. They throw sft::Error without a template line; the renderer
// names the line. The renderer's filter table (jinja_eval.cpp) maps every filter name to one of these or to a
// filter that iterates, looks up attributes or runs tests (those need the renderer's scopes and error context).
#pragma once
#include "template/value.h"

namespace sft::jinja {

Value filter_trim(const Value& v, const List& a, const KwArgs& kw);
Value filter_tojson(const Value& v, const List& a, const KwArgs& kw);
Value filter_length(const Value& v, const List& a, const KwArgs& kw);  // also `count`
Value filter_string(const Value& v, const List& a, const KwArgs& kw);
Value filter_safe(const Value& v, const List& a, const KwArgs& kw);
Value filter_int(const Value& v, const List& a, const KwArgs& kw);
Value filter_float(const Value& v, const List& a, const KwArgs& kw);
Value filter_lower(const Value& v, const List& a, const KwArgs& kw);
Value filter_upper(const Value& v, const List& a, const KwArgs& kw);
Value filter_title(const Value& v, const List& a, const KwArgs& kw);
Value filter_capitalize(const Value& v, const List& a, const KwArgs& kw);
Value filter_replace(const Value& v, const List& a, const KwArgs& kw);
Value filter_items(const Value& v, const List& a, const KwArgs& kw);
Value filter_abs(const Value& v, const List& a, const KwArgs& kw);

}  // namespace sft::jinja
