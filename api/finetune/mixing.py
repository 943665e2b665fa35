"""Several training files in one job: each validated on its own, then mixed by weight.

The files' rows are split together (train / validation / test, when no eval_file is given);
then each file's training rows are repeated by its weight (`1,2`: the second file's twice;
a fraction keeps that share of them, chosen with the job's seed).
"""

import random
from collections.abc import Callable, Sequence

from api.errors import InvalidInput
from api.finetune.data import Messages, Upload
from api.finetune.training_options import parse_weights

Loader = Callable[[Upload, str], tuple[str, list[Messages]]]


def label(uploads: Sequence[Upload], index: int) -> str:
    """How errors name a file: `train_file`, or `train_file 2 (b.csv)` among several."""
    if len(uploads) == 1:
        return "train_file"
    return f"train_file {index + 1} ({uploads[index].filename})"


def load_all(
    uploads: Sequence[Upload], weights_text: str | None, load: Loader
) -> tuple[list[str], list[list[Messages]], list[float]]:
    """Every file validated (all problems of all files reported together); the weights
    checked against the number of files."""
    weights = parse_weights(weights_text) if weights_text else [1.0] * len(uploads)
    if len(weights) != len(uploads):
        raise InvalidInput(
            f"train_file_weights has {len(weights)} weight(s) for {len(uploads)} train_file "
            "upload(s); give one weight per file, in upload order."
        )
    formats, examples, details, errors = [], [], [], []
    for i, upload in enumerate(uploads):
        name = label(uploads, i)
        try:
            fmt, rows = load(upload, name)
        except InvalidInput as exc:
            details.append(exc.detail)
            errors += [f"{name} {e}" for e in exc.errors] if len(uploads) > 1 else exc.errors
            continue
        formats.append(fmt)
        examples.append(rows)
    if details:
        raise InvalidInput(" ".join(details), errors)
    return formats, examples, weights


def weighted(
    train: list[Messages], files: list[list[Messages]], weights: list[float], seed: int
) -> list[Messages]:
    """`train` (rows of any file) with each file's rows repeated by its weight."""
    if all(w == 1.0 for w in weights):
        return train
    origin = {id(row): i for i, rows in enumerate(files) for row in rows}
    rng = random.Random(seed)
    mixed: list[Messages] = []
    for i, weight in enumerate(weights):
        own = [row for row in train if origin.get(id(row)) == i]
        whole, share = int(weight), weight - int(weight)
        mixed += own * whole + rng.sample(own, round(len(own) * share))
    rng.shuffle(mixed)
    if not mixed:
        raise InvalidInput("train_file_weights leave no training rows; raise the weights.")
    return mixed
