"""The generation loops, run by the job runner in the API process (the teacher may be the
in-process llama.cpp model). Each kept pair is appended to the job's dataset.jsonl at once, so
a restarted job resumes with what it had; a cancel is noticed between teacher calls."""

import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from api.datasets.filters import Novelty, check_instruction, check_output, check_support, report
from api.datasets.prompts import render
from api.datasets.spec import GenerateSpec
from api.datasets.teacher import Reply, Teacher
from api.jobs.layout import JobFiles
from api.jobs.store import Job, JobStore

DEFAULT_SYSTEM = "You are a helpful assistant."
_LIST_ITEM = re.compile(
    r"^\s*(?:\d{1,2}\s*[.):]|[-*\u2022]|task\s*\d*\s*[:.])\s*(.+?)\s*$", re.IGNORECASE
)
_QUESTION_PREFIX = re.compile(r"^\s*(?:\d+[.)]\s*|q(?:uestion)?\s*\d*\s*[:.]\s*)", re.IGNORECASE)


class GenerationFailed(Exception):
    """The job ends failed with this message (nothing usable was produced)."""


# ------------------------------------------------------------------ prompts
def instructions_prompt(
    examples: list[str], guidance: str | None, template: str | None = None
) -> list[dict[str, str]]:
    if template is not None:  # a prompt file: the topic's own wording
        content = render(template, examples=examples, count=5, guidance=guidance)
        return [
            {"role": "system", "content": DEFAULT_SYSTEM},
            {"role": "user", "content": content},
        ]
    listed = "".join(f"{n}. {e}\n" for n, e in enumerate(examples, 1))
    first, last = len(examples) + 1, len(examples) + 5
    about = f" The tasks are about: {guidance}" if guidance else ""
    return [
        {"role": "system", "content": DEFAULT_SYSTEM},
        {
            "role": "user",
            "content": f"Come up with a list of new tasks for an assistant.{about}"
            f" Here are examples:\n{listed}\nWrite 5 more tasks like "
            f"these, numbered {first} to {last}, one per line, each "
            "on a different topic.",
        },
    ]


def answer_prompt(instruction: str, guidance: str | None) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": guidance or DEFAULT_SYSTEM},
        {"role": "user", "content": instruction},
    ]


def question_prompt(passage: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": DEFAULT_SYSTEM},
        {
            "role": "user",
            "content": f"Passage:\n{passage}\n\nWrite one question that this "
            "passage answers. Reply with the question only.",
        },
    ]


def grounded_answer_prompt(passage: str, question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": DEFAULT_SYSTEM},
        {
            "role": "user",
            "content": f"Answer the question using only the passage.\n\n"
            f"Passage:\n{passage}\n\nQuestion: {question}",
        },
    ]


def parse_instructions(text: str) -> list[str]:
    """The list items of a reply (numbered, bulleted or `Task n:`), else its first line."""
    items = [m.group(1).strip() for line in text.splitlines() if (m := _LIST_ITEM.match(line))]
    if not items:
        items = [line.strip() for line in text.splitlines() if line.strip()][:1]
    return [i.strip(" \"'") for i in items if i.strip(" \"'")]


def parse_question(text: str) -> str:
    for line in text.splitlines():
        line = _QUESTION_PREFIX.sub("", line).strip(" \"'")
        if line:
            return line
    return ""


# ------------------------------------------------------------------ state on disk
def read_rows(files: JobFiles) -> list[dict[str, Any]]:
    """The kept pairs; a last line cut short by a crash is ignored."""
    path = files.dataset
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines(keepends=True):
        if line.endswith("\n"):
            rows.append(json.loads(line))
    return rows


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class _Run:
    """Bookkeeping shared by both modes: counts, progress, the output file."""

    def __init__(
        self,
        job: Job,
        store: JobStore,
        spec: GenerateSpec,
        teacher: Teacher,
        should_stop: Callable[[], bool],
    ):
        self.job, self.store, self.spec, self.teacher = job, store, spec, teacher
        self.should_stop = should_stop
        self.rows = read_rows(job.files)
        self._truncate_partial_line()
        previous = job.progress or {}
        self.dropped: Counter[str] = Counter(previous.get("dropped", {}))
        self.rounds = int(previous.get("rounds", 0))
        self.calls = int(previous.get("teacher_calls", 0))
        self.rng = random.Random(spec.seed + self.rounds)
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.calls_at_start, self.rows_at_start = self.calls, len(self.rows)
        self.pool = ThreadPoolExecutor(spec.concurrency) if spec.concurrency > 1 else None

    def _truncate_partial_line(self) -> None:
        path = self.job.files.dataset
        if path.is_file():
            path.write_text("".join(json.dumps(r) + "\n" for r in self.rows))

    @property
    def done(self) -> bool:
        return len(self.rows) >= self.spec.count

    def more_rounds(self) -> bool:
        return not self.done and self.rounds < self.spec.rounds and not self.should_stop()

    def ask(self, messages: list[dict[str, str]], *, temperature: float, max_tokens: int):
        with self.lock:
            self.calls += 1
        return self.teacher.complete(
            messages,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=self.rng.randrange(2**31 - 1),
        )

    def ask_many(
        self, requests: list[tuple[list[dict[str, str]], float, int]]
    ) -> Iterator[Reply | None]:
        """The teacher's replies in order, each as soon as it and those before it are in:
        `concurrency` requests at a time, or one by one, asked only when the caller takes the
        next (None: not asked, the job is stopping)."""
        seeds = [self.rng.randrange(2**31 - 1) for _ in requests]

        def one(item: tuple[tuple[list[dict[str, str]], float, int], int]) -> Reply | None:
            (messages, temperature, max_tokens), seed = item
            if self.should_stop():
                return None
            with self.lock:
                self.calls += 1
            return self.teacher.complete(
                messages, temperature=temperature, max_tokens=max_tokens, seed=seed
            )

        items = list(zip(requests, seeds, strict=True))
        if self.pool is None:
            yield from (one(i) for i in items)
            return
        futures = [self.pool.submit(one, i) for i in items]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)

    def throughput(self) -> dict[str, Any]:
        wall = time.monotonic() - self.started
        minutes = max(wall, 1e-3) / 60
        requests = self.calls - self.calls_at_start
        pace = getattr(self.teacher, "pace", None)
        return {
            "concurrency": self.spec.concurrency,
            "requests": requests,
            "requests_per_minute": round(requests / minutes, 2),
            "pairs_per_minute": round((len(self.rows) - self.rows_at_start) / minutes, 2),
            "rate_limited": pace.rate_limited if pace else 0,
            "rate_limit_wait_seconds": round(pace.waited_seconds, 2) if pace else 0.0,
            "wall_seconds": round(wall, 2),
        }

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def keep(self, row: dict[str, Any]) -> None:
        with open(self.job.files.dataset, "a") as out:
            out.write(json.dumps(row) + "\n")
        self.rows.append(row)
        self.save_progress()
        self.store.add_event(
            self.job.id,
            "progress",
            f"{len(self.rows)} of {self.spec.count} pairs kept.",
            rows=len(self.rows),
            rounds=self.rounds,
        )

    def progress(self) -> dict[str, Any]:
        return {
            "rows": len(self.rows),
            "requested": self.spec.count,
            "rounds": self.rounds,
            "max_rounds": self.spec.rounds,
            "teacher_calls": self.calls,
            "dropped": dict(self.dropped),
            "throughput": self.throughput(),
        }

    def save_progress(self) -> None:
        self.store.set_progress(self.job.id, {**(self.job.progress or {}), **self.progress()})

    def metrics(self) -> dict[str, Any]:
        progress = self.progress()
        speed = progress["throughput"]
        return {
            **progress,
            "complete": self.done,
            "report": report(len(self.rows), self.spec.count, self.rounds, self.dropped)
            + f" Throughput: {speed['requests']} teacher requests in {speed['wall_seconds']}s "
            f"({speed['requests_per_minute']}/min, {speed['pairs_per_minute']} pairs/min, "
            f"{speed['rate_limited']} answered 429).",
        }


# ------------------------------------------------------------------ the two modes
def _self_instruct(run: _Run, seeds: list[dict[str, Any]], prompts: list[dict[str, str]]) -> None:
    """Rounds of Self-Instruct, `concurrency` at once: each asks for new tasks (with the next
    prompt file's template, when there are any), then the novel tasks are answered."""
    spec = run.spec
    novelty = Novelty(
        spec.similarity_threshold,
        [s["instruction"] for s in seeds] + [r["instruction"] for r in run.rows],
    )
    while run.more_rounds():
        asks = []
        for _ in range(min(spec.concurrency, spec.rounds - run.rounds)):
            template = prompts[run.rounds % len(prompts)]["template"] if prompts else None
            run.rounds += 1
            examples = run.rng.sample([s["instruction"] for s in seeds], min(3, len(seeds)))
            if run.rows:  # as in Self-Instruct: mostly human examples, some machine ones
                machine = run.rng.sample(run.rows, min(2, len(run.rows)))
                examples += [r["instruction"] for r in machine]
            asks.append(
                (instructions_prompt(examples, spec.guidance, template), spec.temperature, 160)
            )
        candidates: list[str] = []
        for reply in list(run.ask_many(asks)):
            for instruction in parse_instructions(reply.text if reply else ""):
                reason = check_instruction(instruction, novelty)
                if reason is not None:
                    run.drop(reason)
                    continue
                novelty.add(instruction)  # also keeps the batch's own duplicates out
                candidates.append(instruction)
        candidates = candidates[: spec.count - len(run.rows)]
        answers = run.ask_many(
            [
                (answer_prompt(i, spec.guidance), spec.answer_temperature, spec.max_new_tokens)
                for i in candidates
            ]
        )
        for instruction, answer in zip(candidates, answers, strict=True):
            if answer is None or run.done:
                continue
            reason = check_output(
                instruction,
                answer.text,
                truncated=answer.truncated,
                max_chars=spec.max_output_chars,
            )
            if reason is not None:
                run.drop(reason)
                continue
            run.keep({"instruction": instruction, "input": "", "output": answer.text.strip()})
        run.save_progress()


def _cycle(chunks: list[dict[str, Any]], rng: random.Random) -> Iterator[dict[str, Any]]:
    while True:
        order = chunks[:]
        rng.shuffle(order)
        yield from order


def _from_documents(run: _Run, chunks: list[dict[str, Any]]) -> None:
    spec = run.spec
    novelty = Novelty(spec.similarity_threshold, [r["instruction"] for r in run.rows])
    passages = _cycle(chunks, run.rng)
    while run.more_rounds():
        run.rounds += 1
        chunk = next(passages)
        question = parse_question(
            run.ask(
                question_prompt(chunk["text"]), temperature=spec.temperature, max_tokens=64
            ).text
        )
        reason = check_instruction(question, novelty)
        if reason is None:
            answer = run.ask(
                grounded_answer_prompt(chunk["text"], question),
                temperature=spec.answer_temperature,
                max_tokens=spec.max_new_tokens,
            )
            reason = check_output(
                question, answer.text, truncated=answer.truncated, max_chars=spec.max_output_chars
            ) or check_support(answer.text, chunk["text"], spec.min_support)
        if reason is not None:
            run.drop(reason)
            run.save_progress()
            continue
        novelty.add(question)
        run.keep(
            {
                "instruction": question,
                "input": "",
                "output": answer.text.strip(),
                "source": {
                    "document": chunk["document"],
                    "page": chunk["page"],
                    "chunk": chunk["chunk"],
                },
            }
        )


def generate(
    job: Job, *, store: JobStore, teacher: Teacher, should_stop: Callable[[], bool]
) -> dict[str, Any]:
    """Run (or resume) the job; returns its metrics. Raises GenerationFailed when nothing
    usable came out, TeacherError when the teacher cannot be used."""
    spec = GenerateSpec(**job.spec)
    run = _Run(job, store, spec, teacher, should_stop)
    seeds = job.files.data_file("seeds")
    prompts = job.files.data_file("prompts")
    try:
        if seeds.is_file():
            templates = _read_jsonl(prompts) if prompts.is_file() else []
            _self_instruct(run, _read_jsonl(seeds), templates)
        else:
            _from_documents(run, _read_jsonl(job.files.data_file("chunks")))
    finally:
        run.close()
    metrics = run.metrics()
    if not run.rows and not should_stop():
        raise GenerationFailed(metrics["report"])
    return metrics
