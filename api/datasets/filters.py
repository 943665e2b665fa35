"""The filters a generated pair must pass, as in Self-Instruct: novelty of the instruction
(ROUGE-L against everything kept so far), a real answer of sane length that does not just
repeat the question, and for document pairs an answer its passage supports."""

import re
from collections import Counter

from rouge_score import rouge_scorer

# Why a candidate was dropped; the keys of a dataset's `dropped` counts.
REASONS = {
    "similar": "instruction too similar to one already kept (ROUGE-L)",
    "bad_instruction": "instruction empty, under 3 or over 150 words",
    "empty_output": "empty answer",
    "overlong_output": "answer too long or cut off",
    "echo": "answer repeats the question",
    "unsupported": "answer not supported by its source passage",
}
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "that this with from have what which when where there their they them then than these "
    "those were will would could should about into also your been being does doing such "
    "some more most other only very just over under after before because while each both "
    "here how why who whom whose".split()
)


class Novelty:
    """Instructions kept so far; a new one must differ from each of them."""

    def __init__(self, threshold: float, existing: list[str] = ()):  # type: ignore[assignment]
        self.threshold = threshold
        self._scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        self.kept: list[str] = list(existing)

    def most_similar(self, instruction: str) -> float:
        return max(
            (self._scorer.score(k, instruction)["rougeL"].fmeasure for k in self.kept), default=0.0
        )

    def is_novel(self, instruction: str) -> bool:
        return self.most_similar(instruction) <= self.threshold

    def add(self, instruction: str) -> None:
        self.kept.append(instruction)


def check_instruction(instruction: str, novelty: Novelty) -> str | None:
    """None when the instruction may be kept, else the reason (a REASONS key)."""
    words = instruction.split()
    if not 3 <= len(words) <= 150:
        return "bad_instruction"
    if not novelty.is_novel(instruction):
        return "similar"
    return None


def check_output(instruction: str, output: str, *, truncated: bool, max_chars: int) -> str | None:
    if not output.strip():
        return "empty_output"
    if truncated or len(output) > max_chars:
        return "overlong_output"
    question = set(_WORD.findall(instruction.lower()))
    if not set(_WORD.findall(output.lower())) - question:
        return "echo"  # not one word the question did not already have
    return None


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) >= 4 and w not in _STOPWORDS]


def support(answer: str, passage: str) -> float:
    """The share of the answer's content words found in the passage (a cheap lexical check)."""
    words = _content_words(answer)
    if not words:
        return 0.0
    vocabulary = set(_content_words(passage))
    vocabulary |= {w.rstrip("s") for w in vocabulary}
    found = sum(1 for w in words if w in vocabulary or w.rstrip("s") in vocabulary)
    return found / len(words)


def check_support(answer: str, passage: str, minimum: float) -> str | None:
    return None if support(answer, passage) >= minimum else "unsupported"


def report(kept: int, requested: int, rounds: int, dropped: Counter[str] | dict[str, int]) -> str:
    """One sentence on how the run went, naming why candidates were dropped."""
    reasons = (
        ", ".join(f"{n} {REASONS[r]}" for r, n in sorted(dropped.items(), key=lambda x: -x[1]) if n)
        or "none dropped"
    )
    if kept >= requested:
        return f"All {requested} requested pairs produced in {rounds} teacher rounds ({reasons})."
    return (
        f"Only {kept} of {requested} requested pairs survived the filters after {rounds} "
        f"teacher rounds; dropped: {reasons}. Add more varied seed tasks or documents, "
        "raise max_rounds, or use a stronger teacher."
    )
