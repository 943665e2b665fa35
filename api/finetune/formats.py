"""Prompt formats and the system role: how rows become text for training, evaluation and the
served model.

`prompt_format`:
- `chat`: the base's own chat template (ChatML when it has none);
- `alpaca`: seed 002's two Alpaca templates, byte for byte (the with-input one when an Alpaca
  row has a non-empty `input`); a system message replaces the opening sentence;
- `raw`: no markup: each turn's text on its own line, the answer followed by EOS.

The chosen template is set as the tokenizer's chat template in the recipe, so TRL's
formatting, the loss mask, the ROUGE evaluation, the length check here and the exported
GGUF's metadata all use the same text. The served model gets it as its variant template
(Jinja for llama.cpp, a Go template for Ollama).

`system_role`: `native` keeps system messages; `merge` folds the system text into the first
user turn (`system + "\\n\\n" + user`) for templates without a system role; `auto` (resolved
at submission and recorded) renders the template with a system message and picks `merge` when
it raises or drops the system text.
"""

from typing import Any, Literal

from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

Messages = list[dict[str, str]]
PromptFormat = Literal["chat", "alpaca", "raw"]
SystemRole = Literal["auto", "native", "merge"]

ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
)
ALPACA_INPUT_PREAMBLE = (
    "Below is an instruction that describes a task, paired with an input that provides "
    "further context. Write a response that appropriately completes the request.\n\n"
)
ALPACA_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' -%}"
    "{{- messages[0]['content'] + '\\n\\n' -}}{%- set turns = messages[1:] -%}"
    "{%- else -%}{%- set turns = messages -%}"
    "{%- if messages[0].input -%}{{- '" + ALPACA_INPUT_PREAMBLE.replace("\n", "\\n") + "' -}}"
    "{%- else -%}{{- '" + ALPACA_PREAMBLE.replace("\n", "\\n") + "' -}}{%- endif -%}"
    "{%- endif -%}"
    "{%- for message in turns -%}"
    "{%- if message['role'] == 'user' -%}"
    "{%- if message.input -%}"
    "{{- '### Instruction:\\n' + message.instruction + '\\n\\n### Input:\\n' + message.input"
    " + '\\n\\n### Response:\\n' -}}"
    "{%- else -%}{{- '### Instruction:\\n' + message['content'] + '\\n\\n### Response:\\n' -}}"
    "{%- endif -%}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{- message['content'] + eos_token -}}{%- if not loop.last -%}{{- '\\n\\n' -}}{%- endif -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
)
RAW_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}{{- message['content'] + eos_token -}}"
    "{%- if not loop.last -%}{{- '\\n' -}}{%- endif -%}"
    "{%- else -%}{{- message['content'] + '\\n' -}}{%- endif -%}"
    "{%- endfor -%}"
)
# The same formats for Ollama, whose templates are Go templates.
ALPACA_GO_TEMPLATE = (
    "{{- if .System }}{{ .System }}\n\n{{ else }}" + ALPACA_PREAMBLE + "{{ end }}"
    '{{- range .Messages }}{{ if eq .Role "user" }}### Instruction:\n{{ .Content }}\n\n'
    '### Response:\n{{ else if eq .Role "assistant" }}{{ .Content }}\n\n{{ end }}{{ end }}'
)
RAW_GO_TEMPLATE = (
    "{{- if .System }}{{ .System }}\n{{ end }}"
    '{{- range .Messages }}{{ if ne .Role "system" }}{{ .Content }}\n{{ end }}{{ end }}'
)
# Put before a chat template that has no system role: the served model folds a system
# message into the first user turn exactly as the training rows were.
MERGE_PREFIX = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{%- if messages | length > 1 and messages[1]['role'] == 'user' -%}"
    "{%- set messages = [{'role': 'user', 'content': messages[0]['content'] + '\\n\\n'"
    " + messages[1]['content']}] + messages[2:] -%}"
    "{%- else -%}{%- set messages = [{'role': 'user', 'content': messages[0]['content']}]"
    " + messages[1:] -%}{%- endif -%}{%- endif -%}"
)
_PROBE = "SYSTEM-ROLE-PROBE"


def environment() -> ImmutableSandboxedEnvironment:
    """A sandbox like transformers' for chat templates (raise_exception included)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env.globals["raise_exception"] = raise_exception
    return env


def template_for(prompt_format: str, base_template: str) -> str:
    """The Jinja template rows are rendered with in this format."""
    return {"alpaca": ALPACA_TEMPLATE, "raw": RAW_TEMPLATE}.get(prompt_format, base_template)


def accepts_system(template: str) -> bool:
    """Whether `template` renders a system message (rather than raising or dropping it)."""
    messages = [
        {"role": "system", "content": _PROBE},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
    ]
    try:
        text = (
            environment()
            .from_string(template)
            .render(messages=messages, add_generation_prompt=False, bos_token="", eos_token="")
        )
    except Exception:  # the template's raise_exception, or any failure with a system turn
        return False
    return _PROBE in text


def resolve_system_role(system_role: str, template: str) -> str:
    """`native` or `merge`: `auto` decided from the template."""
    if system_role != "auto":
        return system_role
    return "native" if accepts_system(template) else "merge"


def merge_system(messages: Messages) -> Messages:
    """The system text folded into the first user turn (as MERGE_PREFIX does when serving)."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], messages[1:]
    if rest and rest[0]["role"] == "user":
        first: dict[str, Any] = dict(rest[0])
        first["content"] = f"{system}\n\n{first['content']}"
        if first.get("input"):  # an Alpaca row: the instruction carries it
            first["instruction"] = f"{system}\n\n{first['instruction']}"
        return [first, *rest[1:]]
    return [{"role": "user", "content": system}, *rest]


def prepare(messages: Messages, system_prompt: str | None, system_role: str) -> Messages:
    """A row as it is trained: the job's system prompt added where it has none, then merged
    into the first user turn when the system role is `merge`."""
    if system_prompt and messages[0]["role"] != "system":
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return merge_system(messages) if system_role == "merge" else messages


def recipe_system_prompt(spec: Any) -> str | None:
    """The system prompt the recipe adds to rows that have none: none when the rows were
    merged at submission (adding it again would put a system turn back)."""
    return None if getattr(spec, "system_role", "native") == "merge" else spec.system_prompt


def served_template(spec: dict[str, Any], base_template: str, backend: str) -> str | None:
    """The variant template of the exported model; None keeps the GGUF's own."""
    prompt_format = spec.get("prompt_format", "chat")
    merge = spec.get("system_role") == "merge"
    if backend == "ollama":  # Go templates: Ollama folds nothing itself
        return {"alpaca": ALPACA_GO_TEMPLATE, "raw": RAW_GO_TEMPLATE}.get(prompt_format)
    if prompt_format == "chat" and not merge:
        return None
    template = template_for(prompt_format, base_template)
    return MERGE_PREFIX + template if merge else template
