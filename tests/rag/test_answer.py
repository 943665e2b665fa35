"""Fitting retrieved passages into the context window, and what the model's queries become."""

from langchain_core.documents import Document

from api.config import Settings
from api.rag.answer import CHARS_PER_TOKEN, INSTRUCTIONS, ground
from api.rag.retrieve import QueryLines

QUESTION = [{"role": "user", "content": "How many vacation days?"}]


def passage(page: int, size: int) -> Document:
    return Document(
        page_content=f"p{page} " + "x" * (size - 3),
        metadata={"document": "h.pdf", "page": page, "chunk": page - 1},
    )


def settings(context_length: int, tmp_path) -> Settings:
    return Settings(data_dir=tmp_path, context_length=context_length)


def test_everything_fits_without_warnings(tmp_path):
    out = ground(
        messages=QUESTION,
        passages=[passage(1, 300), passage(2, 300)],
        system_prompt="Be brief.",
        max_tokens=100,
        settings=settings(2048, tmp_path),
    )
    assert out.warnings == []
    assert [(s.document, s.page, s.chunk) for s in out.sources] == [
        ("h.pdf", 1, 0),
        ("h.pdf", 2, 1),
    ]
    content = out.messages[-1]["content"]
    assert content.startswith(INSTRUCTIONS)
    assert "[1] h.pdf, page 1:\np1 " in content and "[2] h.pdf, page 2:\np2 " in content
    assert content.endswith("Question: How many vacation days?")


def test_passages_over_the_window_are_dropped_and_reported(tmp_path):
    # 256 tokens - 20 for the answer - 64 for the template = 516 characters, ~300 of them
    # left after the instructions and question: one 200-character passage fits, and
    # under 200 remain for the next, too little to shorten it.
    out = ground(
        messages=QUESTION,
        passages=[passage(p, 200) for p in (1, 2, 3)],
        system_prompt=None,
        max_tokens=20,
        settings=settings(256, tmp_path),
    )
    assert [s.page for s in out.sources] == [1]
    assert out.warnings == [
        "The retrieved context was trimmed to fit the 256-token context "
        "window: 1 of 3 passages used."
    ]
    estimated = sum(len(m["content"]) for m in out.messages) / CHARS_PER_TOKEN + 20 + 64
    assert estimated <= 256


def test_a_long_passage_is_shortened_and_reported(tmp_path):
    out = ground(
        messages=QUESTION,
        passages=[passage(1, 5000), passage(2, 100)],
        system_prompt=None,
        max_tokens=100,
        settings=settings(1024, tmp_path),
    )
    assert [s.page for s in out.sources] == [1]
    assert out.sources[0].passage.endswith("...") and len(out.sources[0].passage) < 5000
    assert out.warnings == [
        "The retrieved context was trimmed to fit the 1024-token context "
        "window: 1 of 2 passages used, the last one shortened."
    ]


def test_no_room_at_all_uses_no_passage(tmp_path):
    long_question = [{"role": "user", "content": "why? " * 200}]
    out = ground(
        messages=long_question,
        passages=[passage(1, 300)],
        system_prompt=None,
        max_tokens=100,
        settings=settings(256, tmp_path),
    )
    assert out.sources == []
    assert out.warnings == [
        "The retrieved context was trimmed to fit the 256-token context "
        "window: 0 of 1 passages used."
    ]
    assert "(no passages)" in out.messages[-1]["content"]


def test_no_matching_passage_is_reported(tmp_path):
    out = ground(
        messages=QUESTION,
        passages=[],
        system_prompt=None,
        max_tokens=100,
        settings=settings(2048, tmp_path),
    )
    assert out.warnings == ["No passage of the selected documents matched the question."]


def test_query_lines_cleans_what_a_small_model_writes():
    reply = (
        'Sure! Here are the queries:\n1. vacation days per year\n2) "paid leave policy"\n'
        "- vacation days per year\n\n* ok\nQuery 3: how much annual leave\nextra line"
    )
    assert QueryLines(limit=3).parse(reply) == [
        "Sure! Here are the queries:",
        "vacation days per year",
        "paid leave policy",
    ]
    assert QueryLines(limit=10).parse(reply)[3:] == ["how much annual leave", "extra line"]
