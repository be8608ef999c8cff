// Text pieces of reports: escaping for HTML/XML and Markdown, fixed-point numbers, Markdown tables padded as lm-eval
// prints them (pytablewriter), and those tables rendered as HTML. Layer `report` (depends on util only), used by train
// and eval.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace sft::report {

// & < > " as entities: safe inside HTML/SVG text and double-quoted attributes.
std::string xml_escape(std::string_view s);
// s as one Markdown inline code span: `s`, or a longer backtick fence (padded with spaces) when s itself holds
// backticks (CommonMark's rule), so a name can never end the span early.
std::string markdown_code(std::string_view s);

// printf("%.*f") and printf("%+.*f").
std::string fixed(double v, int decimals);
std::string signed_fixed(double v, int decimals);

// A Markdown table with pytablewriter's padding (what lm-eval's make_table prints): every column as wide as its widest
// cell (Python len, i.e. code points; at least 3), headers centred, right_align[i] for numeric columns. Cells are
// written as given (no escaping: lm-eval's tables must stay byte-identical).
std::string markdown_table(const std::vector<std::string>& headers, const std::vector<std::vector<std::string>>& rows,
                           const std::vector<bool>& right_align);
// Markdown as markdown_table writes it -> HTML: each run of table lines becomes <table class="table_class"> (header
// row <th>, the |---| line dropped, cells trimmed and escaped); every other non-empty line becomes a <p>.
std::string markdown_tables_to_html(const std::string& md, std::string_view table_class);

}  // namespace sft::report
