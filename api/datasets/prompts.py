"""Self-instruct prompt files: one template per topic, placeholders {seed_examples}, {count}
and {guidance}; a job rotates through them, one per round."""

import string

from api.errors import InvalidInput
from api.finetune.data import Upload

PLACEHOLDERS = ("seed_examples", "count", "guidance")
MAX_FILES = 32
MAX_CHARS = 20_000


def check_template(upload: Upload) -> dict[str, str]:
    """{name, template} of one prompt file; 422 naming what to fix."""
    label = f"prompt_file {upload.filename!r}"
    try:
        text = upload.content.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{label} is not UTF-8 text.") from exc
    if not text:
        raise InvalidInput(f"{label} is empty: write the prompt, with {{seed_examples}}.")
    if len(text) > MAX_CHARS:
        raise InvalidInput(f"{label} is longer than {MAX_CHARS} characters.")
    try:
        fields = [f for _, f, spec, conv in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise InvalidInput(f"{label}: {exc}; write a literal brace as {{{{ or }}}}.") from exc
    for name in fields:
        if name not in PLACEHOLDERS:
            raise InvalidInput(
                f"{label} has an unknown placeholder {{{name}}}; use "
                f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)} (a literal brace: {{{{ }}}})."
            )
    if "seed_examples" not in fields:
        raise InvalidInput(f"{label} needs {{seed_examples}}: where the example tasks go.")
    return {"name": upload.filename, "template": text}


def check_templates(uploads: list[Upload]) -> list[dict[str, str]]:
    if len(uploads) > MAX_FILES:
        raise InvalidInput(f"At most {MAX_FILES} prompt files (one per topic).")
    return [check_template(u) for u in uploads]


def render(template: str, *, examples: list[str], count: int, guidance: str | None) -> str:
    listed = "".join(f"{n}. {e}\n" for n, e in enumerate(examples, 1))
    return template.format(seed_examples=listed, count=count, guidance=guidance or "")
