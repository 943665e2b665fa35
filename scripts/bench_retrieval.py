"""Benchmark retrieval: import throughput and query latency, against a naive baseline.

    .venv/bin/python scripts/bench_retrieval.py [--pages 40] [--imports 3] [--queries 20]

Both sides run in this one process, on the same machine, on the same generated PDF:

- ours: `DocumentService.import_document` (pypdf in a limited child process, chunks
  embedded in batches, added to embedded Chroma); queries through `retrieve` (top-k
  search in Chroma, restricted to the document), with and without the model writing
  alternative queries (that row needs the provisioned SmolLM2).
- naive: what a first version does in the request thread: pypdf in-process, every
  chunk embedded on its own, added to Chroma one by one; a query embeds the question and
  scans every stored vector in Python.

Writes the figures to the "Retrieval" section of docs/benchmarks.md (other sections kept).
"""

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench_doc import write_section  # noqa: E402  (scripts/ is on sys.path when run)
from fpdf import FPDF  # noqa: E402
from pypdf import PdfReader  # noqa: E402

from api.config import REPO_ROOT, Settings  # noqa: E402
from api.rag.documents import DocumentService, split_pages  # noqa: E402
from api.rag.embed import build_embedder  # noqa: E402

TOPICS = [
    "vacation",
    "parking",
    "travel",
    "expenses",
    "security",
    "pets",
    "meetings",
    "training",
    "equipment",
    "holidays",
]
QUESTIONS = [f"What is the policy on {t}?" for t in TOPICS]


def write_pdf(path: Path, pages: int) -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=10)
    for n in range(pages):
        topic = TOPICS[n % len(TOPICS)]
        pdf.add_page()
        pdf.multi_cell(
            0,
            5,
            " ".join(
                f"Section {n + 1}.{i}: the {topic} policy says rule {n * 7 + i} applies to team "
                f"{i % 5} on floor {n % 9}, reviewed every {i + 2} months."
                for i in range(12)
            ),
        )
    pdf.output(str(path))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1)]


def naive_import(service: DocumentService, pdf: Path, name: str, settings: Settings) -> list:
    pages = [p.extract_text() or "" for p in PdfReader(pdf).pages]
    chunks = split_pages(pages, model="naive", document=name, import_id=name, settings=settings)
    collection = service.store.collection("naive")._collection
    embedder = service.store.embedder
    for i, chunk in enumerate(chunks):
        collection.add(
            ids=[f"{name}-{i}"],
            documents=[chunk.page_content],
            metadatas=[chunk.metadata],
            embeddings=[embedder.embed_query(chunk.page_content)],
        )
    return chunks


def naive_query(service: DocumentService, question: str, k: int) -> list[str]:
    embedder = service.store.embedder
    q = embedder.embed_query(question)
    stored = service.store.collection("naive")._collection.get(include=["embeddings", "documents"])
    scored = sorted(
        (
            (sum(a * b for a, b in zip(q, v, strict=True)), d)
            for v, d in zip(stored["embeddings"], stored["documents"], strict=True)
        ),
        reverse=True,
    )
    return [d for _, d in scored[:k]]


def time_it(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--imports", type=int, default=3)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root / "data",
            base_models_dir=REPO_ROOT / "shared" / "models",
            rag_alternative_queries=0,
        )
        service = DocumentService(settings, embedder=build_embedder(settings))
        pdf = root / "bench.pdf"
        write_pdf(pdf, args.pages)
        service.store.embedder.embed_documents(["warm-up"])  # load the model outside timings

        ours_s, naive_s, records = [], [], []
        for i in range(args.imports):
            upload = root / f"upload-{i}.part"
            upload.write_bytes(pdf.read_bytes())
            ours_s.append(
                time_it(
                    lambda: records.append(
                        service.import_document(
                            model="bench",
                            name=f"doc-{i}.pdf",
                            upload=upload,
                            size=pdf.stat().st_size,
                        )[0]
                    )
                )
            )
            naive_s.append(time_it(lambda: naive_import(service, pdf, f"doc-{i}.pdf", settings)))
        chunks = records[0].chunks

        from api.rag.retrieve import retrieve
        from api.serving.base import ServedModel

        searched = ServedModel(name="bench", gguf_path=Path("unused"))

        def ours_query(question: str, server=None, model=searched, s=settings) -> None:
            retrieve(
                store=service.store,
                server=server,
                model=model,
                question=question,
                records=records[:1],
                settings=s,
            )

        questions = [QUESTIONS[i % len(QUESTIONS)] for i in range(args.queries)]
        latency = {
            "ours: vector search (Chroma, top-k)": [
                time_it(lambda: ours_query(q)) for q in questions
            ],
            "naive: embed + scan every vector": [
                time_it(lambda: naive_query(service, q, settings.rag_top_k)) for q in questions
            ],
        }
        multi = multi_query_latencies(settings, ours_query, questions[: max(3, args.queries // 4)])
        if multi:
            latency["ours: multi-query (SmolLM2 writes 3 queries)"] = multi

    pages = args.pages
    rows = [
        f"| ours (child-process parse, batched embedding) | {pages / statistics.median(ours_s):.1f} |",
        f"| naive (in-thread parse, one embedding per chunk) | {pages / statistics.median(naive_s):.1f} |",
    ]
    qrows = [
        f"| {name} | {1000 * percentile(v, 50):.1f} | {1000 * percentile(v, 95):.1f} | {len(v)} |"
        for name, v in latency.items()
    ]
    section = "\n".join(
        [
            "## Retrieval",
            "",
            f"`scripts/bench_retrieval.py`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores (load: see the gate of the run that wrote this, `scripts/bench.py`); "
            f"a generated PDF of {pages} pages, {chunks} chunks of up to {settings.rag_chunk_size} "
            f"characters, all-MiniLM-L6-v2 on CPU, embedded Chroma. Median of {args.imports} imports.",
            "",
            "| Import | pages/s |",
            "| --- | --- |",
            *rows,
            "",
            f"Speed-up of ours over naive: {statistics.median(naive_s) / statistics.median(ours_s):.2f}x "
            "(ours also starts a parser process per import). Both sides ran in this one process, "
            "in turns: compare the rows of one run.",
            "",
            f"| Query (top-{settings.rag_top_k}, one document) | p50 ms | p95 ms | queries |",
            "| --- | --- | --- | --- |",
            *qrows,
            "",
        ]
    )
    write_section(args.out, "## Retrieval", section)
    print(section)


def multi_query_latencies(settings: Settings, ours_query, questions: list[str]) -> list[float]:
    """The full retrieval path with the model writing alternative queries, if it is provisioned."""
    from api.models.catalog import BaseCatalog
    from api.serving.base import ServedModel

    base = BaseCatalog(settings.models_dir).get(settings.default_base_model)
    if base is None:
        print("no provisioned base model: skipping the multi-query row", file=sys.stderr)
        return []
    from api.serving.llamacpp import LlamaCppServer

    server = LlamaCppServer(settings)
    model = ServedModel(name="bench", gguf_path=base.gguf_path)
    multi = settings.model_copy(update={"rag_alternative_queries": 3})
    ours_query("warm-up", server, model, multi)
    try:
        return [time_it(lambda: ours_query(q, server, model, multi)) for q in questions]
    finally:
        server.close()


if __name__ == "__main__":
    main()
