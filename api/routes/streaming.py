"""A blocking token iterator as an async body for StreamingResponse, one thread per stream.

Starlette iterates a plain iterator with one thread-pool hop per item: the event loop hands
`next()` to a worker, the worker wakes when the model server's next token arrives, then wakes
the loop again. At ~100 tokens/s on a host whose cores are all decoding, each extra wake-up
takes a core from llama.cpp's threads. Here one thread runs the whole iterator and hands
items to the loop as they come; the loop sends everything that has arrived since its last
send as one chunk. When the client goes away the thread stops at its next item and closes the
iterator (so the model server's reply is closed, as before).
"""

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

_END = object()


class _Raised:
    def __init__(self, exc: BaseException):
        self.exc = exc


async def thread_stream(source: Iterator[str]) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    stop = threading.Event()

    def put(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop has closed (shutdown): nobody is listening
            stop.set()

    def produce() -> None:
        try:
            for item in source:
                if stop.is_set():
                    break
                put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the loop and raised there
            put(_Raised(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
            put(_END)

    threading.Thread(target=produce, name="stream", daemon=True).start()
    try:
        while True:
            parts = [await queue.get()]
            while not queue.empty():
                parts.append(queue.get_nowait())
            text = "".join(p for p in parts if isinstance(p, str))
            if text:
                yield text
            for part in parts:
                if isinstance(part, _Raised):
                    raise part.exc
                if part is _END:
                    return
    finally:
        stop.set()
