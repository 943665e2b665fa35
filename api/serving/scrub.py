"""What both HTTP model-server backends (Ollama, llama-server) do to a server's error text
before it reaches a client: absolute paths on the serving host become file names."""

import re

_PATH_RE = re.compile(r"(?<![\w.])/(?:[\w.@-]+/)+([\w.@-]+)")


def scrub_paths(message: str) -> str:
    """Keep only the last part of each absolute path (ollama#13223, llama-server's log)."""
    return _PATH_RE.sub(r"\1", message).strip()
