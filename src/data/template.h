// Prompt templates and label masks: Example -> (input_ids, labels) with exact prompt/response alignment.
//
// Templates (byte-exact, see docs/arch/data.md and the brief):
//   alpaca  stanford_alpaca's PROMPT_DICT; with input:
//             "Below is an instruction that describes a task, paired with an input that provides further context. "
//             "Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
//             "### Input:\n{input}\n\n### Response:"
//           without input (input empty): "Below is an instruction that describes a task. Write a response that "
//             "appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Response:"
//           target = output, then the tokenizer's eos_id (as an id, never as text). Chat rows are rejected.
//   chatml  Qwen's ChatML. Each turn is "<|im_start|>{role}\n{content}<|im_end|>\n". System policy: a system block is
//           emitted only when the row has a system message or TemplateOptions::system_prompt is non-empty (no
//           built-in default such as Qwen2.5's "You are Qwen..."; a row's own system message wins). Instruction rows
//           become one user turn (instruction, plus "\n\n" + input when input is non-empty) and one assistant turn.
//           Targets: the content of EVERY assistant turn plus its <|im_end|> token; everything else (system/user
//           turns, the "<|im_start|>assistant\n" header, the "\n" after <|im_end|>) is masked. <|im_end|> is the
//           end-of-target token (Qwen Instruct's eos, what `sft chat` stops on); the tokenizer's eos_id is NOT added
//           (a ChatML transcript never contains <|endoftext|>). Needs <|im_start|> and <|im_end|> in the vocab.
//   plain   instruction, "\n" + input (when non-empty), "\n" (prompt), then output + eos_id (target).
//
// Tokenisation: each prompt piece and each response piece is encoded SEPARATELY and the ids are concatenated.
// Encoding the full text and masking "the prompt's token count" is wrong with BPE: the pre-tokenizer joins the
// boundary. Qwen: "### Response:" alone ends in ':', but "### Response:The car" encodes as ... ':The', 'Ġcar', so the
// merged ':The' sits at the prompt's last position and prompt-length masking silently drops the first response token
// (118 of the 300 bundled demo rows). It also makes training ids differ from inference, where the prompt is encoded
// alone and the model continues it. Separate encoding is exact by construction.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"

namespace sft::tok {
class Tokenizer;
}
namespace sft::jinja {
class ChatTemplate;
}

namespace sft::data {

inline constexpr int32_t kIgnoreIndex = -100;

//   model   the model folder's own Jinja chat template (template/chat_template.h), rendered exactly as transformers'
//           apply_chat_template; instruction rows become [system_prompt?, user, assistant] messages as for chatml.
//           The whole rendered text is encoded at once (as apply_chat_template(tokenize=True) does) and a token is a
//           target when it overlaps an assistant span (ChatTemplate::assistant_spans: from the end of the generation
//           prompt to the end of the assistant content) or is the special token that starts right where the
//           content ends (the end-of-turn token: <|im_end|>, <|eot_id|>, ...). See docs/arch/template.md.
enum class Template { Alpaca, ChatML, Plain, Model };
// "alpaca" | "chatml" | "plain" | "model"; throws listing the valid names ("auto" is resolved by the caller).
Template parse_template(std::string_view name);
const char* template_name(Template t);

struct TemplateOptions {
  Template tmpl = Template::Alpaca;
  bool train_on_inputs = false;  // true: every token is a target (labels = ids, except the first token of a sample)
  std::string system_prompt;     // chatml/model: used when a row has no system message; empty = no system block
  std::shared_ptr<const jinja::ChatTemplate> chat_template;  // Template::Model: the folder's template (required)
  // TRL SFTConfig's masking switches (docs/arch/data.md, "TRL's dataset formats"):
  // completion_only_loss: prompt-completion rows (standard and conversational) train on the completion only
  //   (TRL's default for such datasets); false = every token.
  bool completion_only_loss = true;
  // assistant_only_loss: conversational rows train on the assistant turns only (what --template model / chatml
  //   mask); false = every token (TRL's default). Unset = !train_on_inputs for "messages" rows (sft's default before
  //   TRL's formats: assistant-only) and false for conversational prompt-completion rows (their completion mask
  //   already selects the reply).
  std::optional<bool> assistant_only_loss;
};

// A rendered example: pieces in order, each prompt (masked) or target. A piece is either text (encoded as one unit)
// or one special token given by its vocab string (e.g. "<|im_start|>"), emitted as that token's id and never
// encoded as text, so special tokens cannot be produced by user text. Text between two special tokens is one piece,
// as HF's encode splits on added tokens; a target's text is always a piece of its own (see above).
struct Segment {
  std::string text;
  bool target = false;
  bool special = false;     // text is a token string looked up with token_to_id
  bool append_eos = false;  // alpaca/plain: the tokenizer's eos_id follows this piece (same target flag)
};
std::vector<Segment> render(const Example& ex, const TemplateOptions& opts);
// The rendered text (specials written as their strings; "<EOS>" is NOT written): what the template strings say.
std::string render_text(const std::vector<Segment>& segs);

// The inference prompt for the same template (what `sft generate`/`sft chat` must feed so that inference matches
// training): alpaca/plain -> prompt text up to "### Response:" / the final "\n"; chatml -> the rendered turns
// followed by "<|im_start|>assistant\n".
std::string inference_prompt(const std::string& instruction, const std::string& input, const TemplateOptions& opts);
std::string inference_chat_prompt(const std::vector<Message>& messages, const TemplateOptions& opts);

// What the data layer needs from a tokenizer; TokenizerEncoder adapts sft::tok::Tokenizer, tests may fake it.
// encode() must be thread-safe if prepare_dataset is given more than one thread.
class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;  // no BOS/EOS added
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual std::optional<int32_t> token_to_id(std::string_view token) const = 0;
  // Prepended once at the start of every sample when set (Llama 3 / SmolLM-style BOS); masked.
  virtual std::optional<int32_t> bos_id() const { return std::nullopt; }
  // Template::Model needs token byte offsets: the bytes an id decodes to, and whether it is a special token.
  virtual std::string token_bytes(int32_t id) const;
  virtual bool is_special(int32_t id) const;
  // The eos token's text (TRL appends it to language-modelling texts and completions as text): token_bytes(eos_id).
  virtual std::optional<std::string> eos_token() const;
};

class TokenizerEncoder final : public TextEncoder {
 public:
  // bos_id() is set only when the tokenizer's post-processor adds a BOS (HF encode(add_special_tokens=True)
  // semantics: Llama 3 yes; Qwen and SmolLM2 no), detected by encoding a probe text with and without specials.
  explicit TokenizerEncoder(const tok::Tokenizer& tok);
  std::vector<int32_t> encode(std::string_view text) const override;
  std::optional<int32_t> eos_id() const override;
  std::optional<int32_t> token_to_id(std::string_view token) const override;
  std::optional<int32_t> bos_id() const override;
  std::string token_bytes(int32_t id) const override;
  bool is_special(int32_t id) const override;

 private:
  const tok::Tokenizer& tok_;
  std::optional<int32_t> bos_;
};

// One tokenized training sample, labels in HF convention (same positions as ids; the model shifts by one).
// Invariants: ids.size() == labels.size(); labels[0] == -100 (nothing predicts the first token); every other label
// is either -100 or equal to ids[i]; `targets` == number of labels != -100.
struct Sample {
  std::vector<int32_t> ids, labels;
  int64_t targets = 0;
  int32_t source_index = -1;  // index into the examples it came from (for messages and reports)
};

// Renders and tokenizes one example. Throws sft::Error naming ex.origin when the template cannot apply
// (chat row with alpaca/plain, missing eos_id, chatml without <|im_start|>/<|im_end|>, no target tokens).
// Rows of TRL's formats are tokenised as TRL's SFTTrainer does (trl_formats.cpp, below); the template applies to
// instruction and conversational rows (both kinds of conversational ones).
Sample tokenize_example(const Example& ex, const TemplateOptions& opts, const TextEncoder& enc);

// TRL SFTTrainer's tokenisation (trl 1.16 _prepare_dataset), in trl_formats.cpp:
//  - Text: text + eos_token (as text, unless it already ends with it), encoded whole with the BOS the tokenizer's
//    post-processor adds; every token is a target.
//  - PromptCompletion: completion + eos_token (unless it already ends with it); ids = encode(prompt + completion)
//    (BOS as above); the completion starts where encode(prompt) and those ids first differ (common prefix: a token
//    merged across the boundary belongs to the completion); completion_only_loss masks what comes before.
//  - ConversationalPromptCompletion: prompt rendered with the generation prompt, prompt + completion rendered without
//    it (chat template or ChatML, as conversational rows); completion from the common prefix as above; with
//    assistant_only_loss the assistant mask applies too (a token trains only when both masks allow it).
Sample tokenize_text_row(const Example& ex, const TemplateOptions& opts, const TextEncoder& enc);
Sample tokenize_prompt_completion(const Example& ex, const TemplateOptions& opts, const TextEncoder& enc);
Sample tokenize_conversational_prompt_completion(const Example& ex, const TemplateOptions& opts, const TextEncoder& enc);
// Common-prefix length of two id sequences (TRL's common_prefix_length).
size_t common_prefix_length(const std::vector<int32_t>& a, const std::vector<int32_t>& b);
// ChatML ids and per-token target flags (BOS first when the tokenizer adds one) of a message list, as tokenize_example
// encodes chat rows; with add_generation_prompt the "<|im_start|>assistant\n" header ends it.
std::vector<int32_t> chatml_ids(const std::vector<Message>& msgs, const TemplateOptions& opts, const TextEncoder& enc,
                                bool add_generation_prompt, const std::string& origin,
                                std::vector<char>* target = nullptr);

// Template::Model pieces (model_template.cpp). The inference prompt is the template rendered with
// add_generation_prompt=True; it already contains any BOS the template writes, so it must be encoded WITHOUT
// special tokens (as apply_chat_template(tokenize=True) does).
std::string model_inference_prompt(const std::vector<Message>& messages, const TemplateOptions& opts);
Sample tokenize_with_model_template(const Example& ex, const TemplateOptions& opts, const TextEncoder& enc);
// The messages a row becomes under chatml/model: chat rows as they are, instruction rows as one user turn
// (instruction, "\n\n" + input when non-empty) and one assistant turn; opts.system_prompt first when the row has none.
std::vector<Message> row_messages(const Example& ex, const TemplateOptions& opts);
// The model template's end-of-turn token: the special token right after an assistant reply's content (rendered on a
// probe conversation); what generation must stop on. nullopt when the template ends replies with plain text.
std::optional<int32_t> model_end_of_turn(const TemplateOptions& opts, const TextEncoder& enc);

}  // namespace sft::data
