"""``sluice kb``: ingest documents, search them with citations, manage index versions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape
from rich.table import Table

from sluice.cli._common import (
    JsonOption,
    console,
    emit_json,
    err_console,
    handle_errors,
    local_principal,
    progress_bar,
    runtime,
)

__all__ = ["app"]

app = typer.Typer(
    help=(
        "The knowledge base: ingest documents, search them (BM25, vectors or both) with "
        "citations, and manage versioned indexes.\n\n"
        "Start with `sluice kb ingest src/sluice/pipelines/support_triage/sample/kb "
        '--exclude README.md`, then `sluice kb search "how long do refunds take"`.'
    ),
    no_args_is_help=True,
    rich_markup_mode="markdown",
)


@contextmanager
def _knowledge_base(index: str, *, gateway: bool = True) -> Iterator[tuple[Any, Any]]:
    """(runtime, KnowledgeBase) for the current options; the gateway is closed after."""
    from sluice.knowledge import KnowledgeBase
    from sluice.models import Gateway

    with runtime() as rt:
        gw = Gateway(rt.settings, rt.store) if gateway else None
        try:
            yield rt, KnowledgeBase(rt.store, gw, index=index)
        finally:
            if gw is not None:
                gw.close()


def _shown(source: str) -> str:
    """A file:// source as a path, relative to the working directory when under it."""
    if not source.startswith("file://"):
        return source
    from urllib.parse import unquote, urlparse

    path = Path(unquote(urlparse(source).path))
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _version_number(text: str) -> int:
    digits = text.strip().lower().rsplit("@", 1)[-1].removeprefix("v")
    if not digits.isdigit():
        from sluice.errors import KnowledgeError

        raise KnowledgeError(
            f"{text!r} is not a version number",
            hint="give the number `sluice kb versions` lists: 2, v2 or default@v2",
        )
    return int(digits)


@app.command("ingest")
@handle_errors
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest.")],
    meta: Annotated[
        list[str] | None,
        typer.Option("--meta", help="key=value metadata for every document (repeatable)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option("--exclude", help="Glob of files to skip in folders (repeatable)."),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            help="Name sources by their path relative to this folder, so that ids survive "
            "a move to another machine (default: absolute file:// URIs). Use one root "
            "per index."
        ),
    ] = None,
    prune: Annotated[
        bool,
        typer.Option(help="Delete documents that are no longer under the ingested paths."),
    ] = True,
    index: str = typer.Option("default", "--index", help="Which index."),
    as_json: bool = JsonOption,
) -> None:
    """Read files and folders into the knowledge base, chunk them and index them.

    Markdown, text, HTML, PDF (text layer), JSONL records and CSV FAQ tables
    (question,answer columns). Unchanged documents cost nothing; changed ones replace
    their chunks; documents gone from an ingested folder are removed (`--no-prune`
    keeps them). A bad file is reported and skipped: the rest are ingested. Exit code 1
    when anything failed.

    Examples:
        sluice kb ingest docs/help --exclude README.md

        sluice kb ingest faq.csv --meta product=billing --meta language=en

        sluice kb ingest kb/ --root kb/ --json
    """
    from sluice.errors import KnowledgeError
    from sluice.knowledge.ingestion import metadata_from_pairs

    try:
        metadata = metadata_from_pairs(meta or [])
    except ValueError as exc:
        raise KnowledgeError(str(exc), hint="write --meta key=value") from None
    me = local_principal()
    with _knowledge_base(index) as (rt, kb), progress_bar(not as_json) as progress:
        from sluice.governance import authorize

        authorize(rt.store, me, "knowledge:ingest")
        report = kb.ingest(
            paths,
            actor=me.actor,
            metadata=metadata,
            root=root,
            exclude=exclude or (),
            prune=prune,
            progress=progress,
        )
    if as_json:
        emit_json(report.to_dict())
    else:
        if report.created_version:
            console.print(f"created and activated {report.created_version} (the first version)")
        console.print(
            f"{index}: {len(report.new)} new, {len(report.changed)} changed, "
            f"{report.unchanged} unchanged, {len(report.removed)} removed document(s); "
            f"{report.chunks} chunk(s) written to {', '.join(report.versions) or 'no version'}"
        )
        if report.skipped:
            console.print(f"[dim]{len(report.skipped)} file(s) skipped (no reader):[/]")
            for path in report.skipped:
                console.print(f"[dim]  {escape(str(path))}[/]")
        for failure in report.failures:
            where = f" ({failure.location})" if failure.location else ""
            err_console.print(
                f"[red]failed[/] {escape(str(failure.path))}{where}: [{failure.code}] "
                f"{escape(failure.message)}",
                highlight=False,
            )
            if failure.hint:
                err_console.print(f"[dim]  hint: {escape(failure.hint)}[/]", highlight=False)
    if report.failures:
        if not as_json:
            err_console.print(
                f"{len(report.failures)} failure(s); everything else was ingested",
                highlight=False,
            )
        raise typer.Exit(1)


@app.command("search")
@handle_errors
def search(
    query: Annotated[str, typer.Argument(help="The question or keywords.")],
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            "-f",
            help="Metadata condition (repeatable, all must hold): key=value, "
            "key=v1,v2 (any of), key>=value, key<=value, key>value, key<value.",
        ),
    ] = None,
    mode: Annotated[
        Literal["hybrid", "bm25", "dense"],
        typer.Option("--mode", "-m", help="hybrid (BM25 + vectors, fused), bm25 or dense."),
    ] = "hybrid",
    k: Annotated[int, typer.Option("-k", "--top", min=1, max=1000, help="How many hits.")] = 5,
    version: Annotated[
        str | None, typer.Option(help="Search this version instead of the active one.")
    ] = None,
    index: str = typer.Option("default", "--index", help="Which index."),
    as_json: bool = JsonOption,
) -> None:
    """Search the knowledge base; each hit cites its document, chunk and offsets.

    The index version that answered is printed (and is in every citation).

    Examples:
        sluice kb search "how long do refunds take"

        sluice kb search "parcel lost" --filter product=logistics -k 3

        sluice kb search "charged twice" --filter tags=refund,billing --mode bm25 --json

        sluice kb search "new plan" --filter updated>=2026-01-01
    """
    from sluice.governance import authorize
    from sluice.knowledge import parse_filters

    parsed = parse_filters(filters or [])
    me = local_principal()
    with _knowledge_base(index, gateway=mode != "bm25") as (rt, kb):
        authorize(rt.store, me, "knowledge:read")
        result = kb.search(
            query,
            k=k,
            mode=mode,
            filters=parsed,
            version=_version_number(version) if version else None,
        )
    if as_json:
        emit_json(result.to_dict())
        return
    console.print(
        f"{len(result.hits)} hit(s) from [bold]{result.version.ref}[/] ({result.mode}"
        + (f", filters: {', '.join(str(f) for f in parsed)}" if parsed else "")
        + f") in {result.latency_ms:.0f} ms",
        highlight=False,
    )
    for hit in result.hits:
        c = hit.citation
        where = " > ".join(c.heading_path) or c.title
        scores = [f"score {hit.score:.4f}"]
        if hit.scores.bm25 is not None:
            scores.append(f"bm25 #{hit.scores.bm25_rank} {hit.scores.bm25:.2f}")
        if hit.scores.dense is not None:
            scores.append(f"dense #{hit.scores.dense_rank} {hit.scores.dense:.3f}")
        console.print(
            f"\n[bold]{hit.rank}.[/] {escape(_shown(c.source))} [dim]- {escape(where)}[/]",
            highlight=False,
            soft_wrap=True,
        )
        console.print(
            f"   [dim]{', '.join(scores)}; chars {c.start}-{c.end}; chunk {c.chunk_id[:12]}[/]",
            highlight=False,
        )
        text = " ".join(hit.text.split())
        console.print(f"   {escape(text[:300])}{'...' if len(text) > 300 else ''}")


@app.command("versions")
@handle_errors
def list_versions(
    index: str = typer.Option("default", "--index", help="Which index."),
    as_json: bool = JsonOption,
) -> None:
    """List the index versions: status, encoder, chunking, size.

    One version is active (it answers searches). A new one is built beside it with
    `sluice kb build`, switched to with `sluice kb activate N`, and
    `sluice kb rollback` goes back.
    """
    from sluice.governance import authorize

    me = local_principal()
    with _knowledge_base(index, gateway=False) as (rt, kb):
        authorize(rt.store, me, "knowledge:read")
        found = kb.versions()
        history = kb.activations()
    if as_json:
        emit_json(
            {"versions": [v.to_dict() for v in found], "history": [h.to_dict() for h in history]}
        )
        return
    if not found:
        console.print(f"index {index!r} has no version yet: ingest with `sluice kb ingest PATH`")
        return
    table = Table("version", "status", "encoder", "chunking", "chunks", "created", "activated")
    style = {"active": "bold green", "ready": "yellow", "building": "cyan", "retired": "dim"}
    for v in found:
        chunking = v.chunking
        table.add_row(
            v.ref,
            f"[{style[v.status]}]{v.status}[/]",
            v.encoder or "-",
            f"{chunking.get('max_tokens')} tok, overlap {chunking.get('overlap_tokens')}, "
            f"{chunking.get('tokenizer')}",
            str(v.chunks),
            f"{v.created_at:%Y-%m-%d %H:%M} {v.created_by}",
            f"{v.activated_at:%Y-%m-%d %H:%M} {v.activated_by}" if v.activated_at else "-",
        )
    console.print(table)


@app.command("build")
@handle_errors
def build(
    max_tokens: Annotated[
        int | None, typer.Option(min=8, help="Chunk size bound, in encoder tokens.")
    ] = None,
    overlap: Annotated[
        int | None, typer.Option(min=0, help="Tokens of whole sentences chunks share.")
    ] = None,
    embed_task: Annotated[
        str, typer.Option(help="The gateway's embed route to embed chunks and queries with.")
    ] = "embed",
    activate: Annotated[bool, typer.Option(help="Activate it once built.")] = False,
    note: Annotated[str | None, typer.Option(help="Why (kept with the version).")] = None,
    index: str = typer.Option("default", "--index", help="Which index."),
    as_json: bool = JsonOption,
) -> None:
    """Build a new index version from the stored documents, beside the active one.

    Use it after changing the encoder (the models config's embed route) or to try other
    chunk sizes. The active version keeps answering until you activate the new one.
    Running it again resumes a build that stopped.

    Examples:
        sluice kb build --max-tokens 200 --overlap 40 --note "longer chunks"

        sluice kb build --activate
    """
    from sluice.governance import authorize
    from sluice.knowledge import DEFAULT_CHUNKING, ChunkingConfig

    chunking = ChunkingConfig(
        max_tokens=max_tokens or DEFAULT_CHUNKING.max_tokens,
        overlap_tokens=overlap if overlap is not None else DEFAULT_CHUNKING.overlap_tokens,
        min_fill=DEFAULT_CHUNKING.min_fill,
    )
    me = local_principal()
    with _knowledge_base(index) as (rt, kb), progress_bar(not as_json) as progress:
        authorize(rt.store, me, "knowledge:ingest")
        if activate:
            authorize(rt.store, me, "knowledge:activate")
        version = kb.build(
            actor=me.actor,
            chunking=chunking,
            embed_task=embed_task,
            activate=activate,
            note=note,
            progress=progress,
        )
    if as_json:
        emit_json(version.to_dict())
        return
    console.print(f"{version.ref} is {version.status}: {version.chunks} chunks")
    if version.status != "active":
        console.print(f"activate it with `sluice kb activate {version.number}`")


@app.command("activate")
@handle_errors
def activate(
    version: Annotated[str, typer.Argument(help="Version number (2, v2 or default@v2).")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
    index: str = typer.Option("default", "--index", help="Which index."),
    as_json: bool = JsonOption,
) -> None:
    """Make a version the one that answers, atomically; the active one is retired.

    A retired version is first caught up with the documents changed since. Audited.

    Example:
        sluice kb activate 2 --reason "longer chunks answer better"
    """
    from sluice.governance import authorize

    me = local_principal()
    with _knowledge_base(index) as (rt, kb):
        authorize(rt.store, me, "knowledge:activate")
        before = kb.stats().active
        record = kb.activate(_version_number(version), actor=me.actor, reason=reason)
    if as_json:
        emit_json({"active": record.to_dict(), "previous": before and before.ref})
        return
    console.print(f"{record.ref} is active" + (f" ({before.ref} is retired)" if before else ""))


@app.command("rollback")
@handle_errors
def rollback(
    reason: Annotated[str | None, typer.Option(help="Why (kept in the history).")] = None,
    index: str = typer.Option("default", "--index", help="Which index."),
    as_json: bool = JsonOption,
) -> None:
    """Go back to the version that was active before the current one. Audited.

    Rolling back again walks further back through the activation history.

    Example:
        sluice kb rollback --reason "v3 misses refund questions"
    """
    from sluice.governance import authorize

    me = local_principal()
    with _knowledge_base(index) as (rt, kb):
        authorize(rt.store, me, "knowledge:activate")
        before = kb.version()
        record = kb.rollback(actor=me.actor, reason=reason)
    if as_json:
        emit_json({"active": record.to_dict(), "previous": before.ref})
        return
    console.print(f"{record.ref} is active again ({before.ref} is retired)")


@app.command("retire")
@handle_errors
def retire(
    version: Annotated[str, typer.Argument(help="Version number (2, v2 or default@v2).")],
    reason: Annotated[str | None, typer.Option(help="Why (kept in the audit log).")] = None,
    index: str = typer.Option("default", "--index", help="Which index."),
    as_json: bool = JsonOption,
) -> None:
    """Retire a building or ready version: ingest stops keeping it up to date."""
    from sluice.governance import authorize

    me = local_principal()
    with _knowledge_base(index, gateway=False) as (rt, kb):
        authorize(rt.store, me, "knowledge:activate")
        record = kb.retire(_version_number(version), actor=me.actor, reason=reason)
    if as_json:
        emit_json(record.to_dict())
        return
    console.print(f"{record.ref} is retired")


@app.command("stats")
@handle_errors
def stats(
    index: str = typer.Option("default", "--index", help="Which index."),
    as_json: bool = JsonOption,
) -> None:
    """Documents, versions, and how keyword and vector search run on this store."""
    from sluice.governance import authorize

    me = local_principal()
    with _knowledge_base(index, gateway=False) as (rt, kb):
        authorize(rt.store, me, "knowledge:read")
        found = kb.stats()
    if as_json:
        emit_json(found.to_dict())
        return
    active = found.active
    console.print(f"index [bold]{found.index}[/]: {found.documents} document(s)")
    if active is None:
        console.print("no active version: ingest with `sluice kb ingest PATH`")
    else:
        console.print(
            f"active {active.ref}: {active.chunks} chunks, encoder {active.encoder or '-'} "
            f"({active.dimensions or '-'} dimensions), analyzer {active.analyzer}"
        )
    console.print(
        "versions: " + (", ".join(f"{v.ref} {v.status}" for v in found.versions) or "none")
    )
    console.print(f"keyword search: {found.keyword_backend}")
    console.print(f"vector search: {found.vector_backend}")
