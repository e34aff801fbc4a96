r"""Reading files and folders into documents, one bad file at a time.

:func:`read_sources` walks the paths it is given, picks each file's reader by extension
(:data:`READERS`), enforces the size limit, and returns an :class:`IngestBatch`: the
documents read, and one :class:`IngestFailure` per file or record that could not be
read. A failure never stops the walk.

Walking a folder: files and folders whose names start with ``.`` are skipped, files
with an extension no reader handles are listed in :attr:`IngestBatch.skipped` (a file
named explicitly with such an extension is a failure instead), and ``exclude`` glob
patterns are matched against each file's name and its path relative to the folder. A
folder that cannot be listed is a failure (``unreadable_folder``), not an empty folder:
ingest keeps the documents stored from under it.

Source URIs: a file's ``file://`` URI by default; with ``root``, its path relative to
``root`` (POSIX separators), so ids stay the same when the folder moves to another
machine. Only files under ``root`` are accepted then.

:func:`plan_changes` is the pure half of incremental ingest: given what a store holds
(doc id -> fingerprint) and a batch, which documents are new, changed, unchanged or
gone. The store applies the plan (next increment).

Example:
    >>> import tempfile, pathlib
    >>> tmp = tempfile.TemporaryDirectory()
    >>> folder = pathlib.Path(tmp.name)
    >>> _ = (folder / "hours.md").write_text("# Hours\n\nWe answer within a day.")
    >>> _ = (folder / "logo.png").write_bytes(b"\x89PNG")
    >>> batch = read_sources([folder], root=folder)
    >>> [d.source for d in batch.documents], [p.name for p in batch.skipped], batch.failures
    (['hours.md'], ['logo.png'], ())
    >>> plan = plan_changes({}, batch.documents)
    >>> len(plan.new), plan.unchanged
    (1, ())
    >>> tmp.cleanup()
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice.errors import IngestError, KnowledgeError
from sluice.knowledge.documents import Document, MetadataValue
from sluice.knowledge.readers import (
    FaqColumns,
    JsonlFields,
    RecordsRead,
    read_faq_csv,
    read_html,
    read_jsonl,
    read_markdown,
    read_pdf,
    read_text,
)

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "READERS",
    "UNREADABLE_FOLDER",
    "ChangePlan",
    "IngestBatch",
    "IngestFailure",
    "ReaderOptions",
    "plan_changes",
    "read_sources",
]

#: Files larger than this are refused (``too_large``) unless the caller raises it.
DEFAULT_MAX_FILE_BYTES = 50 * 1024 * 1024

#: The failure code of a folder that could not be listed while walking.
UNREADABLE_FOLDER = "unreadable_folder"


@dataclass(frozen=True)
class ReaderOptions:
    """Settings for the record readers.

    Attributes:
        jsonl: Which JSONL fields hold the text, the title and the id.
        faq: Which CSV columns hold the question, the answer and the id.
    """

    jsonl: JsonlFields = field(default_factory=JsonlFields)
    faq: FaqColumns = field(default_factory=FaqColumns)


_Reader = Callable[[bytes, str, Mapping[str, MetadataValue], ReaderOptions], RecordsRead]


def _single(read: Callable[..., Document]) -> _Reader:
    def reader(
        data: bytes, source: str, meta: Mapping[str, MetadataValue], _: ReaderOptions
    ) -> RecordsRead:
        return RecordsRead([read(data, source=source, metadata=meta)])

    return reader


def _jsonl(
    data: bytes, source: str, meta: Mapping[str, MetadataValue], options: ReaderOptions
) -> RecordsRead:
    return read_jsonl(data, source=source, fields=options.jsonl, metadata=meta)


def _faq(
    data: bytes, source: str, meta: Mapping[str, MetadataValue], options: ReaderOptions
) -> RecordsRead:
    return read_faq_csv(data, source=source, columns=options.faq, metadata=meta)


#: Lower-case extension -> reader.
READERS: Mapping[str, _Reader] = {
    ".md": _single(read_markdown),
    ".markdown": _single(read_markdown),
    ".txt": _single(read_text),
    ".text": _single(read_text),
    ".html": _single(read_html),
    ".htm": _single(read_html),
    ".pdf": _single(read_pdf),
    ".jsonl": _jsonl,
    ".ndjson": _jsonl,
    ".csv": _faq,
}


@dataclass(frozen=True)
class IngestFailure:
    """One file, or one record in a file, that was not ingested.

    Attributes:
        path: The file (the folder, for ``unreadable_folder``).
        code: Why, as a stable short code: ``not_found``, ``unsupported_format``,
            ``too_large``, ``unreadable``, ``unreadable_folder``, ``not_utf8``,
            ``corrupt``, ``encrypted``,
            ``no_text_layer``, ``empty``, ``bad_front_matter``, ``missing_column``,
            ``bad_record``, ``duplicate_id``, ``outside_root``, ``reader_error``.
        message: What is wrong, for people.
        location: ``line N`` / ``row N`` when it is one record of the file.
        hint: What to do about it, when there is something to say.
    """

    path: Path
    code: str
    message: str
    location: str | None = None
    hint: str | None = None

    @classmethod
    def from_error(cls, path: Path, error: IngestError) -> IngestFailure:
        """The failure an :class:`~sluice.errors.IngestError` describes, for ``path``."""
        return cls(path, error.reason, error.message, error.location, error.hint)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form, for ``--json`` output."""
        out: dict[str, Any] = {"path": str(self.path), "code": self.code, "message": self.message}
        if self.location is not None:
            out["location"] = self.location
        if self.hint:
            out["hint"] = self.hint
        return out


@dataclass(frozen=True)
class IngestBatch:
    """What :func:`read_sources` read.

    Attributes:
        documents: Every document read, in walk order (sorted within each folder).
        failures: One entry per file or record that was not read.
        skipped: Files found while walking a folder with no reader for their extension.
    """

    documents: tuple[Document, ...]
    failures: tuple[IngestFailure, ...]
    skipped: tuple[Path, ...] = ()

    @property
    def ok(self) -> bool:
        """True when nothing failed (skipped files do not count)."""
        return not self.failures


@dataclass(frozen=True)
class ChangePlan:
    """What a store must do to hold exactly the incoming documents.

    Attributes:
        new: Documents whose id it does not have: add them.
        changed: Documents whose fingerprint differs: replace them and their chunks.
        unchanged: Documents whose fingerprint matches: nothing to do.
        removed: Ids it has that the batch does not: candidates for deletion. Only
            meaningful when the batch covers everything ``existing`` covers, so pass
            ``existing`` scoped to the same sources (e.g. the same folder).
    """

    new: tuple[Document, ...]
    changed: tuple[Document, ...]
    unchanged: tuple[Document, ...]
    removed: tuple[str, ...]

    @property
    def to_write(self) -> tuple[Document, ...]:
        """New and changed documents: the ones that need chunking and indexing."""
        return self.new + self.changed


def plan_changes(existing: Mapping[str, str], incoming: Sequence[Document]) -> ChangePlan:
    """Compare a store's documents with a batch (module docs).

    Args:
        existing: The store's documents: doc id -> :attr:`Document.fingerprint`.
        incoming: The batch just read.

    Raises:
        KnowledgeError: The batch holds the same doc id twice.

    Example:
        >>> from sluice.knowledge.documents import DocumentFormat
        >>> doc = Document.create(source="a.txt", format=DocumentFormat.TEXT, text="hi",
        ...                       raw=b"hi", title="a")
        >>> plan = plan_changes({doc.doc_id: doc.fingerprint, "gone": "x"}, [doc])
        >>> len(plan.unchanged), plan.removed
        (1, ('gone',))
    """
    new: list[Document] = []
    changed: list[Document] = []
    unchanged: list[Document] = []
    seen: set[str] = set()
    for doc in incoming:
        if doc.doc_id in seen:
            raise KnowledgeError(
                f"document {doc.doc_id} ({doc.source}) appears twice in one batch",
                hint="read each source once; records need distinct ids",
            )
        seen.add(doc.doc_id)
        held = existing.get(doc.doc_id)
        if held is None:
            new.append(doc)
        elif held != doc.fingerprint:
            changed.append(doc)
        else:
            unchanged.append(doc)
    removed = tuple(sorted(set(existing) - seen))
    return ChangePlan(tuple(new), tuple(changed), tuple(unchanged), removed)


def _hidden(name: str) -> bool:
    return name.startswith(".")


def _excluded(path: Path, folder: Path, patterns: Sequence[str]) -> bool:
    relative = path.relative_to(folder).as_posix()
    return any(fnmatch.fnmatch(path.name, p) or fnmatch.fnmatch(relative, p) for p in patterns)


def _unlisted(error: OSError, folder: Path) -> IngestFailure:
    where = Path(error.filename) if error.filename else folder
    return IngestFailure(
        where,
        UNREADABLE_FOLDER,
        f"{where}: the folder cannot be listed ({error.strerror or error})",
        hint="fix its permissions and ingest again: the documents stored from under it "
        "are kept until then",
    )


def _walk(folder: Path, recursive: bool) -> Iterator[Path | IngestFailure]:
    """Files under ``folder``, and a failure for each folder that could not be listed."""
    # os.walk skips a folder it cannot list unless told: it would look empty, and every
    # document stored from under it would be pruned.
    errors: list[OSError] = []
    for current, dirs, files in os.walk(folder, onerror=errors.append):
        yield from (_unlisted(e, folder) for e in errors)
        errors.clear()
        dirs[:] = sorted(d for d in dirs if not _hidden(d)) if recursive else []
        for name in sorted(files):
            if not _hidden(name):
                yield Path(current) / name
    yield from (_unlisted(e, folder) for e in errors)


def _source_uri(path: Path, root: Path | None) -> str:
    resolved = path.resolve()
    if root is None:
        return resolved.as_uri()
    try:
        return resolved.relative_to(root).as_posix()
    except ValueError:
        raise IngestError(
            f"{path} is outside the ingest root {root}",
            path=str(path),
            reason="outside_root",
            hint="ingest it with another root, or without one",
        ) from None


def _files(
    paths: Iterable[Path], recursive: bool, exclude: Sequence[str]
) -> Iterator[tuple[Path, IngestFailure | None, bool]]:
    """(file, failure, skipped) for each file named or found, in order."""
    for given in paths:
        if given.is_dir():
            for path in _walk(given, recursive):
                if isinstance(path, IngestFailure):
                    yield path.path, path, False
                    continue
                if _excluded(path, given, exclude):
                    continue
                yield path, None, path.suffix.lower() not in READERS
        elif given.is_file():
            if given.suffix.lower() in READERS:
                yield given, None, False
            else:
                failure = IngestFailure(
                    given,
                    "unsupported_format",
                    f"{given}: no reader for {given.suffix or 'files without an extension'!r}",
                    hint=f"supported extensions: {', '.join(sorted(READERS))}",
                )
                yield given, failure, False
        else:
            yield (
                given,
                IngestFailure(given, "not_found", f"{given}: no such file or folder"),
                False,
            )


def read_sources(
    paths: Sequence[str | Path] | str | Path,
    *,
    metadata: Mapping[str, MetadataValue] | None = None,
    recursive: bool = True,
    root: str | Path | None = None,
    exclude: Sequence[str] = (),
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    options: ReaderOptions | None = None,
) -> IngestBatch:
    """Read files and folders into documents; report what could not be read.

    Args:
        paths: Files and folders, in the order to read them.
        metadata: key=value metadata for every document; it overrides what the files
            say (front matter, columns), so a batch can be relabelled without edits.
        recursive: Walk into sub-folders.
        root: Make source URIs relative to this folder (module docs).
        exclude: Glob patterns of files to leave out of folder walks (``README.md``).
        max_file_bytes: Larger files are refused as ``too_large``.
        options: Field and column names for JSONL and CSV files.

    Returns:
        The documents, the failures (file by file, record by record) and the files
        skipped for their extension. Each file is read once even if named twice.
    """
    if isinstance(paths, str | Path):
        paths = [paths]
    options = options or ReaderOptions()
    base = Path(root).resolve() if root is not None else None
    meta = dict(metadata or {})
    documents: list[Document] = []
    failures: list[IngestFailure] = []
    skipped: list[Path] = []
    read: set[Path] = set()
    ids: set[str] = set()
    for path, failure, skip in _files([Path(p) for p in paths], recursive, exclude):
        if failure is not None:
            failures.append(failure)
            continue
        if skip:
            skipped.append(path)
            continue
        if path.resolve() in read:
            continue
        read.add(path.resolve())
        try:
            got = _read_file(path, base, meta, options, max_file_bytes)
        except IngestError as exc:
            failures.append(IngestFailure.from_error(path, exc))
            continue
        failures.extend(IngestFailure.from_error(path, exc) for exc in got.failures)
        for doc in got.documents:
            if not doc.text:
                where = f"record {doc.record_key}" if doc.record_key else None
                message = f"{path}: no text" + (f" in {where}" if where else "")
                failures.append(IngestFailure(path, "empty", message, where))
            elif doc.doc_id in ids:  # the same source reached under two names
                continue
            else:
                ids.add(doc.doc_id)
                documents.append(doc)
    return IngestBatch(tuple(documents), tuple(failures), tuple(skipped))


def _read_file(
    path: Path,
    root: Path | None,
    metadata: Mapping[str, MetadataValue],
    options: ReaderOptions,
    max_file_bytes: int,
) -> RecordsRead:
    source = _source_uri(path, root)
    try:
        size = path.stat().st_size
        if size > max_file_bytes:
            raise IngestError(
                f"{path} is {size / 1e6:.1f} MB, over the {max_file_bytes / 1e6:.1f} MB limit",
                path=str(path),
                reason="too_large",
                hint="split the file, or raise max_file_bytes",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise IngestError(
            f"{path} cannot be read ({exc.strerror or exc})", path=str(path), reason="unreadable"
        ) from exc
    reader = READERS[path.suffix.lower()]
    try:
        return reader(data, source, metadata, options)
    except IngestError:
        raise
    except Exception as exc:
        # A parser bug or an input no reader anticipated: it costs this file, not the batch.
        raise IngestError(
            f"{path}: the {path.suffix} reader failed ({type(exc).__name__}: {exc})",
            path=str(path),
            reason="reader_error",
            hint="please report it with the file if you can share it",
        ) from exc
