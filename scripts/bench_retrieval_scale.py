"""Retrieval at scale: vector-query latency and gold-passage hit rate at 80 and 10,000 chunks,
and what each multi-query mode (never / adaptive / always) costs and buys.

    .venv/bin/python scripts/bench_retrieval_scale.py [--chunks 80,10000] [--questions 30]

A generated corpus of short records, each with one unique fact (who staffs which desk, on
which floor, with which code), is embedded with the service's embedder and stored through
`VectorStore.add` (the import path minus PDF parsing). Each question asks for one record's
fact; a hit is that record among the passages `retrieve` returns. Latency is the whole
`retrieve` call (embedding the question included). The multi-query rows need the provisioned
SmolLM2 (it writes the alternatives) and are left out without it.

Writes the "Retrieval at scale" section of docs/benchmarks.md only when the 1-minute load
average is at most the core count (figures taken on a busy machine are noise); otherwise it
prints the figures and says why they were not written.
"""

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_doc import Quiet, write_section_if_quiet  # noqa: E402  (scripts/ is on sys.path when run)
from bench_retrieval import percentile  # noqa: E402  (one percentile for both retrieval benches)
from langchain_core.documents import Document  # noqa: E402

from api.config import REPO_ROOT, Settings  # noqa: E402
from api.rag.catalog import DocumentRecord  # noqa: E402
from api.rag.documents import DocumentService  # noqa: E402
from api.rag.embed import build_embedder  # noqa: E402
from api.serving.base import ServedModel  # noqa: E402

HEADING = "## Retrieval at scale"
TOPICS = ["travel", "payroll", "security", "parking", "training", "equipment", "pets", "health"]
NAMES = ["Ada", "Ben", "Chloe", "Dev", "Emma", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kemal"]
MODES = ["never", "adaptive", "always"]


def record(i: int) -> tuple[str, str]:
    """(passage, question) for record i: every passage is findable by its question only."""
    rnd = random.Random(i)
    topic, name = rnd.choice(TOPICS), rnd.choice(NAMES)
    building, floor, code = i // 40, i % 40, f"{rnd.randrange(16**6):06X}"
    passage = (
        f"Record {i}. The {topic} desk in building {building} on floor {floor} is staffed by "
        f"{name}; its door code is {code} and it opens at {8 + i % 3} am."
    )
    question = f"What is the door code of the {topic} desk in building {building} on floor {floor}?"
    return passage, question


def build(service: DocumentService, model: str, n: int) -> tuple[DocumentRecord, float]:
    chunks = [
        Document(
            page_content=record(i)[0],
            metadata={"import_id": model, "document": "corpus", "page": i // 4 + 1, "chunk": i},
        )
        for i in range(n)
    ]
    start = time.perf_counter()
    service.store.add(model, chunks, [f"{model}-{i}" for i in range(n)])
    seconds = time.perf_counter() - start
    rec = DocumentRecord(
        model=model,
        name="corpus",
        import_id=model,
        file="-",
        pages=n // 4,
        chunks=n,
        size=0,
        imported_at="-",
    )
    return rec, seconds


def model_server(settings: Settings):
    from api.models.catalog import BaseCatalog
    from api.serving.llamacpp import LlamaCppServer

    base = BaseCatalog(settings.models_dir).get(settings.default_base_model)
    if base is None:
        print("no provisioned base model: only the `never` rows", file=sys.stderr)
        return None, None
    return LlamaCppServer(settings), base.gguf_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="80,10000", help="comma-separated corpus sizes")
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--modes", default=",".join(MODES), help="multi-query modes to run")
    parser.add_argument(
        "--max-load",
        type=float,
        default=float(os.cpu_count() or 1),
        help="write figures only when the 1-minute load average stays at or under this "
        "(default: the core count)",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    sizes = [int(s) for s in args.chunks.split(",")]
    quiet = Quiet(args.max_load)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp) / "data", base_models_dir=REPO_ROOT / "shared" / "models"
        )
        service = DocumentService(settings, embedder=build_embedder(settings))
        service.store.embedder.embed_documents(["warm-up"])
        wants_model = args.modes.split(",") != ["never"]
        server, gguf = model_server(settings) if wants_model else (None, None)
        from api.rag.retrieve import retrieve

        try:
            for n in sizes:
                model = f"scale{n}"
                rec, seconds = build(service, model, n)
                served = ServedModel(name=model, gguf_path=gguf or Path("unused"))
                picks = random.Random(n).sample(range(n), min(args.questions, n))
                for mode in args.modes.split(",") if server else ["never"]:
                    s = settings.model_copy(update={"rag_multi_query": mode})
                    latencies, hits = [], 0
                    for i in picks:
                        question = record(i)[1]
                        start = time.perf_counter()
                        docs = retrieve(
                            store=service.store,
                            server=server,
                            model=served,
                            question=question,
                            records=[rec],
                            settings=s,
                        )
                        latencies.append(time.perf_counter() - start)
                        hits += any(d.metadata["chunk"] == i for d in docs)
                    rows.append(
                        f"| {n} | {mode} | {1000 * percentile(latencies, 50):.1f} | "
                        f"{1000 * percentile(latencies, 95):.1f} | {hits}/{len(picks)} | "
                        f"{n / seconds:.0f} |"
                    )
                    print(rows[-1], flush=True)
        finally:
            if server is not None:
                server.close()
    quiet.finish()
    cores = os.cpu_count() or 1
    text = "\n".join(
        [
            HEADING,
            "",
            f"`scripts/bench_retrieval_scale.py`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{cores} cores, {quiet.describe()}; generated one-fact records, all-MiniLM-L6-v2 on CPU, embedded Chroma, "
            f"top-{settings.rag_top_k}; {args.questions} questions per size, the same for "
            "every mode. Latency: the whole `retrieve` call. Hits: the question's record "
            "among the passages returned. Stored chunks/s: embedding plus `VectorStore.add`.",
            "",
            "| Chunks | multi-query | p50 ms | p95 ms | hits | stored chunks/s |",
            "| --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
        ]
    )
    print(text)
    write_section_if_quiet(args.out, HEADING, text, quiet)
    return 0


if __name__ == "__main__":
    sys.exit(main())
