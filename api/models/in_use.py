"""Which models an operation in progress is using, so that a delete cannot pull one away.

A document import holds its model from the moment it resolves the name until the import
has committed or failed. Deleting that model, or all of its documents, in the meantime
answers 409 instead of letting the import finish for a model that is gone (document rows,
PDF files and Chroma chunks that nothing would ever list or remove). `lock` makes "resolve
the model, then hold it" and "check that it is free, then delete it" atomic with each
other; it is held only for those short steps, never for the import itself.

Across processes and API replicas (api/db/locks.py), the database lock `model-<name>` does
the same: a holder keeps it shared for the whole operation (`shared`), a delete takes it
exclusive without waiting (`exclusive`) and answers 409 when another replica holds it.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from api.config import Settings
from api.db import db_lock
from api.errors import Conflict


class ModelUse:
    def __init__(self, settings: Settings | None = None) -> None:
        """`settings`: where the database locks live; None (tests): this process only."""
        self.lock = threading.RLock()
        self._uses: dict[str, list[str]] = {}
        self.settings = settings

    @contextmanager
    def shared(self, model: str) -> Iterator[None]:
        """Hold `model` against deletes in any replica (waits while one deletes it)."""
        if self.settings is None:
            yield
            return
        with db_lock(self.settings, f"model-{model}", shared=True):
            yield

    @contextmanager
    def exclusive(self, model: str, *, action: str) -> Iterator[None]:
        """Keep `model` free of holders in any replica for the block, or raise Conflict."""
        if self.settings is None:
            yield
            return
        with db_lock(self.settings, f"model-{model}", wait=False) as free:
            if not free:
                raise Conflict(
                    f"Model {model!r} is in use by an operation on another API replica. "
                    f"{action} when that has finished."
                )
            yield

    def acquire(self, model: str, what: str) -> None:
        """Note that `what` (e.g. "importing document 'a.pdf'") uses `model`; call under lock."""
        with self.lock:
            self._uses.setdefault(model, []).append(what)

    def release(self, model: str, what: str) -> None:
        with self.lock:
            uses = self._uses.get(model, [])
            if what in uses:
                uses.remove(what)
            if not uses:
                self._uses.pop(model, None)

    def check_free(self, model: str, *, action: str) -> None:
        """Raise Conflict naming what uses `model`; `action` says what the caller wanted."""
        with self.lock:
            uses = list(self._uses.get(model, []))
        if uses:
            more = f" (and {len(uses) - 1} more)" if len(uses) > 1 else ""
            raise Conflict(
                f"Model {model!r} is in use: {uses[0]}{more}. {action} when that has finished."
            )
