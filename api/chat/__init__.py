"""The chat use case behind /generate and /v1/chat/completions (api/chat/service.py).

Routes build a `ChatRequest`, call `ChatService.start`, and frame the `Chat` they get
back (NDJSON or SSE, or one whole answer).
"""

from api.chat.service import Chat, ChatRequest, ChatService, Event, StreamError
from api.rag.answer import Source
from api.serving.base import Chunk

__all__ = ["Chat", "ChatRequest", "ChatService", "Chunk", "Event", "Source", "StreamError"]
