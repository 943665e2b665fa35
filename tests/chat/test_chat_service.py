"""The chat use case (api/chat/) with a fake backend and fake passages: the order checks
run in, each check once, the grounded prompt's own length check, and stream events."""

import pytest
from langchain_core.documents import Document

from api.chat import ChatRequest, ChatService, Chunk, StreamError
from api.chat import service as chat_service
from api.config import Settings
from api.errors import InvalidInput, NotFound, Unavailable
from api.serving.base import ServedModel
from api.serving.options import GenerationOptions
from tests.utils.fake_server import FakeServer

MODEL = ServedModel(name="m", gguf_path=None, system_prompt="Be brief.", options={"top_k": 5})


def fake_server(fail_after: int | None = None) -> FakeServer:
    """Answers "a", "b" (or fails after `fail_after` chunks); records what it was sent."""
    return FakeServer(
        reply=["a", "b"],
        fail_after=fail_after,
        error=Unavailable("backend went away"),
        prompt_tokens=3,
    )


def service(monkeypatch, server=None, passages=(), **settings) -> ChatService:
    def resolve_model(*, catalog, registry, name):
        if name != "m":
            raise NotFound(f"Model {name!r} not found. Available models: m.")
        return MODEL

    def find_passages(*, messages, **_):
        if messages[-1]["role"] != "user":
            raise InvalidInput("With documents, the last message must be the user's question.")
        return list(passages)

    monkeypatch.setattr(chat_service, "resolve_model", resolve_model)
    monkeypatch.setattr(chat_service, "find_passages", find_passages)
    return ChatService(
        settings=Settings(**settings),
        catalog=None,
        registry=None,
        server=server or fake_server(),
        documents=None,
    )


def passage(text: str) -> Document:
    return Document(page_content=text, metadata={"document": "d.pdf", "page": 1, "chunk": 0})


def ask(prompt: str = "hi", **rest) -> ChatRequest:
    return ChatRequest.from_prompt(model="m", prompt=prompt, **rest)


def test_a_plain_chat_adds_the_system_prompt_and_the_model_defaults(monkeypatch):
    server = fake_server()
    chat = service(monkeypatch, server).start(ask(options=GenerationOptions(max_tokens=7)))
    assert chat.model == "m" and chat.grounded is None and chat.grounding_fields() == {}
    _, messages, options = server.chats[0]
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert options == {"top_k": 5, "max_tokens": 7}
    text, last = chat.whole()
    assert (text, last.finish_reason, last.completion_tokens) == ("ab", "stop", 2)


def test_messages_are_checked_and_options_resolved_once(monkeypatch):
    calls = {"check_messages": 0, "resolve_options": 0}
    for name in calls:
        real = getattr(chat_service, name)

        def counted(*args, _real=real, _name=name):
            calls[_name] += 1
            return _real(*args)

        monkeypatch.setattr(chat_service, name, counted)
    chat = service(monkeypatch, passages=[passage("Leave is 25 days.")]).start(
        ask("Leave?", documents=["d.pdf"])
    )
    assert calls == {"check_messages": 1, "resolve_options": 1}
    assert [s.document for s in chat.grounded.sources] == ["d.pdf"]
    assert chat.grounding_fields()["warnings"] == []


@pytest.mark.parametrize(
    "request_, error",
    [
        (ChatRequest(model="x", messages=[], documents=[], all_documents=True), NotFound),
        (ChatRequest(model="m", messages=[], documents=[]), InvalidInput),
    ],
)
def test_the_model_is_resolved_before_the_document_choice_is_checked(monkeypatch, request_, error):
    with pytest.raises(error) as caught:
        service(monkeypatch).start(request_)
    if error is InvalidInput:  # the document choice before the (empty) messages
        assert caught.value.detail.startswith("`documents` is empty")


def test_with_documents_the_last_message_must_be_a_question(monkeypatch):
    request = ChatRequest(
        model="m",
        all_documents=True,
        messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
    )
    with pytest.raises(InvalidInput, match="last message must be the user's question"):
        service(monkeypatch).start(request)


def test_a_grounded_prompt_over_the_length_limit_is_422(monkeypatch):
    """The question fits LLM_MAX_PROMPT_CHARS, the instructions around it do not."""
    chats = service(monkeypatch, passages=[passage("x" * 500)], max_prompt_chars=300)
    with pytest.raises(InvalidInput) as caught:
        chats.start(ask("q" * 290, all_documents=True))
    assert caught.value.detail == (
        "Message 0 is longer than 300 characters; shorten it or raise LLM_MAX_PROMPT_CHARS."
    )


def test_over_the_max_tokens_limit_is_422_before_the_backend_is_asked(monkeypatch):
    server = fake_server()
    with pytest.raises(InvalidInput, match="over this server's limit of 10"):
        service(monkeypatch, server, max_tokens_limit=10).start(
            ask(options=GenerationOptions(max_tokens=11))
        )
    assert server.chats == []


def test_an_error_before_the_first_chunk_raises_from_start(monkeypatch):
    with pytest.raises(Unavailable):
        service(monkeypatch, fake_server(fail_after=0)).start(ask())


def test_an_error_after_the_first_chunk_ends_the_events_with_a_stream_error(monkeypatch):
    chat = service(monkeypatch, fake_server(fail_after=1)).start(ask())
    assert list(chat.events()) == [Chunk(text="a"), StreamError("backend went away")]


def test_a_whole_reply_raises_an_error_after_the_first_chunk(monkeypatch):
    chat = service(monkeypatch, fake_server(fail_after=1)).start(ask())
    with pytest.raises(Unavailable):
        chat.whole()


def test_from_prompt_puts_a_per_request_system_prompt_first():
    request = ChatRequest.from_prompt(model="m", prompt="hi", system="Be long.")
    assert request.messages == [
        {"role": "system", "content": "Be long."},
        {"role": "user", "content": "hi"},
    ]
