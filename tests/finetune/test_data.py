"""Dataset formats, validation with row numbers, and reproducible splits."""

import json

import pytest

from api.errors import InvalidInput
from api.finetune.data import Keys, load_examples, split_examples
from tests.utils.tiny_model import jsonl, qa_csv

USER_ANSWER = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]


def test_csv_with_system_column():
    raw = b"input,output,system\nQ,A,Be brief.\nQ2,A2,\n"
    fmt, rows = load_examples(raw, filename="train.csv")
    assert fmt == "csv/qa"
    assert rows[0] == [{"role": "system", "content": "Be brief."}, *USER_ANSWER]
    assert rows[1] == [{"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}]


def test_alpaca_csv_with_an_empty_input_column():
    # what /datasets/download writes: instruction, input (often empty), output
    raw = b"instruction,input,output\nTranslate,hola,hello\nSay hi,,hi\n"
    fmt, rows = load_examples(raw, filename="seeds.csv")
    assert fmt == "csv/alpaca"
    assert rows[0][0] == {
        "role": "user",
        "content": "Translate\n\nhola",
        "instruction": "Translate",
        "input": "hola",
    }
    assert rows[1] == [
        {"role": "user", "content": "Say hi"},
        {"role": "assistant", "content": "hi"},
    ]
    fmt, _ = load_examples(b"instruction,output\nSay hi,hi\n", filename="seeds.csv")
    assert fmt == "csv/alpaca"  # input is optional


def test_json_list_with_configured_keys():
    raw = json.dumps([{"question": "Q", "answer": "A"}]).encode()
    fmt, rows = load_examples(raw, filename="d.json", keys=Keys("question", "answer"))
    assert fmt == "json/qa"
    assert rows == [USER_ANSWER]


def test_alpaca_jsonl_joins_instruction_and_input():
    raw = jsonl(
        [
            {"instruction": "Translate", "input": "hola", "output": "hello"},
            {"instruction": "Say hi", "input": "", "output": "hi"},
        ]
    )
    fmt, rows = load_examples(raw, filename="d.jsonl")
    assert fmt == "jsonl/alpaca"
    assert rows[0][0] == {  # the parts kept apart for prompt_format=alpaca's template
        "role": "user",
        "content": "Translate\n\nhola",
        "instruction": "Translate",
        "input": "hola",
    }
    assert rows[1][0] == {"role": "user", "content": "Say hi"}


def test_chat_messages_and_sharegpt():
    chat = jsonl([{"messages": [{"role": "system", "content": "S"}, *USER_ANSWER]}])
    assert load_examples(chat, filename="c.jsonl") == (
        "jsonl/chat",
        [[{"role": "system", "content": "S"}, *USER_ANSWER]],
    )
    share = json.dumps(
        [{"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}]
    ).encode()
    assert load_examples(share, filename="s.json") == ("json/sharegpt", [USER_ANSWER])


def test_all_problems_reported_at_once_with_row_numbers():
    raw = b"input,output\nQ1,A1\n,A2\nQ3,\nQ4,A4,extra\n"
    with pytest.raises(InvalidInput) as caught:
        load_examples(raw, filename="t.csv")
    assert caught.value.errors == [
        "row 4: has a different number of fields than the header",
        "row 2: 'input' is empty",
        "row 3: 'output' is empty",
    ]
    assert caught.value.detail.startswith("train_file has 3 problem(s)")


def test_chat_rows_must_end_with_an_answer():
    raw = jsonl(
        [
            {"messages": [{"role": "user", "content": "Q"}]},
            {"messages": [{"role": "robot", "content": "Q"}]},
        ]
    )
    with pytest.raises(InvalidInput) as caught:
        load_examples(raw, filename="c.jsonl")
    assert "row 1: the last turn must be the assistant's answer" in caught.value.errors
    assert "row 2, turn 1: 'role' must be one of assistant, system, user" in caught.value.errors


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"", "train_file is empty"),
        (b"  \n", "train_file is empty"),
        (b"question,reply\nQ,A\n", "missing the column(s) 'input', 'output'"),
        (b'[{"foo": 1}]', "unknown format"),
        ("input,output\nQ,caf\u00e9\n".encode("latin-1"), "not UTF-8 text"),
        (b'{"input": "Q", "output": "A"}\nnot json\n', "not JSON objects"),
        (b"[1, 2", "not valid JSON"),
        (("," * 100 + "\n").encode(), "has 101 columns; at most 64"),
        (b"input,output\n" + b'"' + b"x" * 1_000_001 + b'",A\n', "not valid CSV"),
    ],
)
def test_bad_files_are_refused_with_a_clear_message(raw, message):
    with pytest.raises(InvalidInput) as caught:
        load_examples(raw, filename="t.csv" if raw[:1] not in (b"[", b"{") else "t.json")
    assert message in caught.value.detail


def test_split_is_reproducible_and_disjoint():
    _, rows = load_examples(qa_csv(20), filename="t.csv")
    first = split_examples(rows, train_size=0.8, seed=7)
    again = split_examples(rows, train_size=0.8, seed=7)
    other = split_examples(rows, train_size=0.8, seed=8)
    assert first == again
    assert first.train != other.train
    assert (len(first.train), len(first.validation), len(first.test)) == (16, 2, 2)
    everything = first.train + first.validation + first.test
    assert sorted(map(json.dumps, everything)) == sorted(map(json.dumps, rows))


def test_random_seed_is_recorded():
    _, rows = load_examples(qa_csv(10), filename="t.csv")
    split = split_examples(rows, train_size=0.5, seed=-1)
    assert split.seed >= 0
    assert split_examples(rows, train_size=0.5, seed=split.seed) == split


def test_split_needs_three_rows():
    _, rows = load_examples(qa_csv(2), filename="t.csv")
    with pytest.raises(InvalidInput, match="At least 3 examples"):
        split_examples(rows, train_size=0.8, seed=1)
