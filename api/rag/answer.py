"""Fit retrieved passages into the model's context window and build the grounded prompt.

Token counts are estimated from characters (backends do not all expose a tokenizer), at
a conservative 3 characters per token; what does not fit is trimmed and reported in
`warnings`, so a prompt never silently overflows the window.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from api.config import Settings

if TYPE_CHECKING:
    from langchain_core.documents import Document

CHARS_PER_TOKEN = 3
TEMPLATE_TOKENS = 64  # chat template markup around the messages
MIN_PASSAGE_CHARS = 200  # below this a shortened passage is not worth including

INSTRUCTIONS = (
    "Answer the question using the numbered passages below. Name the document "
    "and page you used. If the passages do not contain the answer, say so."
)


class Source(BaseModel):
    document: str = Field(..., description="Document name, as imported.")
    page: int = Field(..., description="Page number in the PDF, from 1.")
    chunk: int = Field(..., description="Chunk index within the document, from 0.")
    passage: str = Field(..., description="The text given to the model.")


@dataclass
class Grounded:
    messages: list[dict[str, str]]
    sources: list[Source] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _header(i: int, doc: "Document") -> str:
    return f"[{i}] {doc.metadata['document']}, page {doc.metadata['page']}:\n"


def ground(
    *,
    messages: list[dict[str, str]],
    passages: list["Document"],
    system_prompt: str | None,
    max_tokens: int,
    settings: Settings,
) -> Grounded:
    """Put as many passages as fit into the last user message; say what was left out."""
    question = messages[-1]["content"]
    used_chars = sum(len(m["content"]) for m in messages) + len(system_prompt or "")
    used_chars += len(INSTRUCTIONS) + 40
    budget_tokens = settings.context_length - max_tokens - TEMPLATE_TOKENS
    budget = min(
        budget_tokens * CHARS_PER_TOKEN - used_chars,
        settings.max_prompt_chars - len(question) - len(INSTRUCTIONS) - 40,
    )
    blocks: list[str] = []
    sources: list[Source] = []
    shortened = False
    for doc in passages:
        header = _header(len(blocks) + 1, doc)
        room = budget - len(header) - 2
        text = doc.page_content
        if len(text) > room:
            if room < MIN_PASSAGE_CHARS:
                break
            text, shortened = text[: room - 3] + "...", True
        blocks.append(header + text)
        budget -= len(header) + len(text) + 2
        sources.append(
            Source(
                document=doc.metadata["document"],
                page=doc.metadata["page"],
                chunk=doc.metadata["chunk"],
                passage=text,
            )
        )
        if shortened:
            break
    warnings = []
    if len(sources) < len(passages) or shortened:
        warnings.append(
            f"The retrieved context was trimmed to fit the {settings.context_length}-token "
            f"context window: {len(sources)} of {len(passages)} passages used"
            + (", the last one shortened." if shortened else ".")
        )
    if not passages:
        warnings.append("No passage of the selected documents matched the question.")
    context = "\n\n".join(blocks) if blocks else "(no passages)"
    content = f"{INSTRUCTIONS}\n\nPassages:\n{context}\n\nQuestion: {question}"
    return Grounded(
        messages=[*messages[:-1], {"role": "user", "content": content}],
        sources=sources,
        warnings=warnings,
    )
