"""Token lengths of examples as the recipe will see them, without importing torch.

The base's chat template is rendered with a sandboxed Jinja environment (as transformers
does) and tokenised with the `tokenizers` library from the checkpoint's tokenizer.json.
"""

import json
from functools import lru_cache
from pathlib import Path

from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

from api.finetune.data import Messages

# Used when the base has no chat template, by the recipe as well.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def chat_template(hf_dir: Path) -> str:
    jinja = hf_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    config = hf_dir / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text()).get("chat_template")
        if isinstance(template, str):
            return template
    return CHATML_TEMPLATE


@lru_cache(maxsize=4)
def _load(hf_dir: Path, template: str | None = None) -> tuple[Tokenizer, object]:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    env.globals["raise_exception"] = raise_exception
    return Tokenizer.from_file(str(hf_dir / "tokenizer.json")), env.from_string(
        template or chat_template(hf_dir)
    )


def too_long(
    examples: list[Messages], *, hf_dir: Path, max_len: int, template: str | None = None
) -> list[str]:
    """Problems for examples whose formatted length exceeds max_len tokens (1-based rows);
    `template` replaces the base's chat template (prompt_format alpaca or raw)."""
    tokenizer, compiled = _load(hf_dir, template)
    texts = [
        compiled.render(  # type: ignore[attr-defined]
            messages=m,
            add_generation_prompt=False,
            bos_token="",
            eos_token="",
        )
        for m in examples
    ]
    problems = []
    for row, encoding in enumerate(tokenizer.encode_batch(texts, add_special_tokens=False), 1):
        if len(encoding.ids) > max_len:
            problems.append(
                f"row {row}: {len(encoding.ids)} tokens after formatting, over "
                f"max_len={max_len}; shorten it or raise max_len"
            )
    return problems
