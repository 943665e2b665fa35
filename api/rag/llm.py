"""A LangChain chat model backed by our own ModelServer, so LangChain chains (the
MultiQueryRetriever) run on the model being asked, through whichever backend serves it."""

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from api.serving.base import ModelServer, ServedModel

_ROLES = {"human": "user", "ai": "assistant", "system": "system"}


class ServedChatModel(BaseChatModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)

    server: Any  # a ModelServer (a Protocol, so not a pydantic-checkable type)
    served: ServedModel
    options: dict[str, Any] = {}

    @property
    def _llm_type(self) -> str:
        return "served-model"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        server: ModelServer = self.server
        plain = [{"role": _ROLES.get(m.type, "user"), "content": str(m.content)} for m in messages]
        options = {**self.options, **({"stop": stop} if stop else {})}
        text = "".join(chunk.text for chunk in server.chat(self.served, plain, options))
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])
