"""The Self-Instruct style filters and the parsing of teacher replies (no model needed)."""

from collections import Counter

from api.datasets.filters import (
    Novelty,
    check_instruction,
    check_output,
    check_support,
    report,
    support,
)
from api.datasets.generate import parse_instructions, parse_question


def test_similarity_filter_removes_planted_near_duplicates():
    novelty = Novelty(0.7)
    candidates = [
        "Give three tips for staying healthy.",
        "Give three tips for staying healthy and fit.",  # planted near-duplicate
        "Explain how a rainbow forms after the rain.",
        "Give 3 tips for staying healthy.",  # planted near-duplicate
        "Explain how a rainbow forms after rain.",  # planted near-duplicate
        "Write a short poem about the sea at night.",
    ]
    kept, reasons = [], []
    for candidate in candidates:
        reason = check_instruction(candidate, novelty)
        reasons.append(reason)
        if reason is None:
            novelty.add(candidate)
            kept.append(candidate)
    assert kept == [candidates[0], candidates[2], candidates[5]]
    assert reasons.count("similar") == 3


def test_threshold_is_configurable():
    strict, lax = (
        Novelty(0.3, ["Name a primary colour."]),
        Novelty(0.95, ["Name a primary colour."]),
    )
    candidate = "Name a colour of the rainbow."
    assert check_instruction(candidate, strict) == "similar"
    assert check_instruction(candidate, lax) is None


def test_instruction_length_limits():
    novelty = Novelty(0.7)
    assert check_instruction("", novelty) == "bad_instruction"
    assert check_instruction("Hi there", novelty) == "bad_instruction"
    assert check_instruction("word " * 151, novelty) == "bad_instruction"


def test_output_filters():
    q = "What is the capital of France?"
    assert check_output(q, "   ", truncated=False, max_chars=100) == "empty_output"
    assert (
        check_output(q, "Paris is the capital.", truncated=True, max_chars=100) == "overlong_output"
    )
    assert check_output(q, "Paris " * 50, truncated=False, max_chars=100) == "overlong_output"
    assert (
        check_output(q, "What is the capital of France?", truncated=False, max_chars=100) == "echo"
    )
    assert check_output(q, "the capital of France", truncated=False, max_chars=100) == "echo"
    assert (
        check_output(q, "Paris is the capital of France.", truncated=False, max_chars=100) is None
    )


def test_lexical_support_of_document_answers():
    passage = "Every employee receives 27 days of paid vacation per year."
    assert support("Employees receive 27 days of paid vacation.", passage) == 1.0
    assert check_support("Employees receive 27 days of paid vacation.", passage, 0.5) is None
    assert (
        check_support("Dolphins communicate using complex whistles underwater.", passage, 0.5)
        == "unsupported"
    )
    assert check_support("Yes.", passage, 0.5) == "unsupported"


def test_parse_lists_and_questions():
    reply = (
        "Here are more tasks:\n4. Describe a sunset.\n5) Name two rivers in Africa.\n"
        "- Write a haiku about snow.\nTask 8: Explain gravity to a child.\n\nThanks!"
    )
    assert parse_instructions(reply) == [
        "Describe a sunset.",
        "Name two rivers in Africa.",
        "Write a haiku about snow.",
        "Explain gravity to a child.",
    ]
    assert parse_instructions("Summarise the news in one line.\nMore text") == [
        "Summarise the news in one line."
    ]
    assert (
        parse_question('Question: "How many vacation days are there?"\nAnswer: 27')
        == "How many vacation days are there?"
    )
    assert parse_question("") == ""


def test_report_names_the_reasons():
    assert report(5, 5, 7, Counter()).startswith("All 5 requested pairs")
    text = report(2, 10, 50, Counter(similar=30, echo=4))
    assert (
        "Only 2 of 10" in text
        and "30 instruction too similar" in text
        and "4 answer repeats" in text
    )
