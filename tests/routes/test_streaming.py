"""api/routes/streaming.thread_stream: a blocking iterator as an async body, one thread."""

import asyncio
import threading
import time

import pytest

from api.routes.streaming import thread_stream


def collect(source) -> list[str]:
    async def run() -> list[str]:
        return [part async for part in thread_stream(source)]

    return asyncio.run(run())


def test_everything_arrives_in_order_and_the_source_runs_in_one_thread():
    threads = set()

    def source():
        for i in range(50):
            threads.add(threading.get_ident())
            yield f"{i}\n"

    assert "".join(collect(source())) == "".join(f"{i}\n" for i in range(50))
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_an_error_in_the_source_reaches_the_reader_after_what_came_before():
    def source():
        yield "a\n"
        raise ValueError("child died")

    async def run() -> list[str]:
        got = []
        with pytest.raises(ValueError, match="child died"):
            async for part in thread_stream(source()):
                got.append(part)
        return got

    assert "".join(asyncio.run(run())) == "a\n"


def test_a_reader_that_stops_early_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            while True:
                time.sleep(0.01)
                yield "token "
        finally:
            closed.set()  # the model server's reply is closed here

    async def run() -> None:
        stream = thread_stream(source())
        await stream.__anext__()
        await stream.aclose()  # what Starlette does when the client disconnects

    asyncio.run(run())
    assert closed.wait(5)
