"""Walking files and folders: one bad file is reported and the rest are read."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from knowledge_helpers import encrypted_pdf, text_pdf

from sluice.errors import KnowledgeError
from sluice.knowledge import (
    DocumentFormat,
    FaqColumns,
    ReaderOptions,
    plan_changes,
    read_sources,
)


def _tree(root: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / ".hidden").mkdir()
    (root / "a.md").write_text("---\ntitle: A\n---\n# A\n\nAlpha.")
    (root / "b.txt").write_text("Bravo.")
    (root / "c.html").write_text("<h1>C</h1><p>Charlie.</p>")
    (root / "d.pdf").write_bytes(text_pdf([["Delta."]]))
    (root / "e.jsonl").write_text('{"_id": "e1", "text": "Echo."}\n{"_id": "e2", "text": 5}\n')
    (root / "f.csv").write_text("question,answer\nFoxtrot?,Yes.\n")
    (root / "sub" / "g.md").write_text("Golf.")
    (root / "sub" / "deeper" / "h.md").write_text("Hotel.")
    (root / ".hidden" / "i.md").write_text("India.")
    (root / ".j.md").write_text("Juliet.")
    (root / "logo.png").write_bytes(b"\x89PNG\r\n")
    # The bad ones, each for its own reason.
    (root / "bad-encrypted.pdf").write_bytes(encrypted_pdf(text_pdf([["x"]]), user_password="p"))
    (root / "bad-corrupt.pdf").write_bytes(b"%PDF-1.4\nnot really")
    (root / "bad-latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "bad-empty.md").write_text("---\ntitle: nothing\n---\n\n")
    (root / "bad-columns.csv").write_text("text,category\nx,y\n")


def test_a_folder_is_read_in_order_and_bad_files_are_reported_one_by_one(tmp_path: Path) -> None:
    _tree(tmp_path)
    batch = read_sources([tmp_path], root=tmp_path)

    assert [d.source for d in batch.documents] == [
        "a.md",
        "b.txt",
        "c.html",
        "d.pdf",
        "e.jsonl",
        "f.csv",
        "sub/g.md",
        "sub/deeper/h.md",
    ]
    assert {d.format for d in batch.documents} == set(DocumentFormat)
    failures = {(f.path.name, f.code, f.location) for f in batch.failures}
    assert failures == {
        ("bad-columns.csv", "missing_column", None),
        ("bad-corrupt.pdf", "corrupt", None),
        ("bad-empty.md", "empty", None),
        ("bad-encrypted.pdf", "encrypted", None),
        ("bad-latin1.txt", "not_utf8", None),
        ("e.jsonl", "bad_record", "line 2"),
    }
    assert all(f.message and str(f.path) in f.to_dict()["path"] for f in batch.failures)
    assert [p.name for p in batch.skipped] == ["logo.png"]
    assert not batch.ok


def test_not_recursive_exclude_and_metadata(tmp_path: Path) -> None:
    _tree(tmp_path)
    batch = read_sources(
        tmp_path, recursive=False, exclude=["bad-*", "*.jsonl"], metadata={"product": "demo"}
    )
    names = [Path(d.source).name for d in batch.documents]
    assert names == ["a.md", "b.txt", "c.html", "d.pdf", "f.csv"]
    assert batch.ok
    assert all(d.metadata["product"] == "demo" for d in batch.documents)
    assert all(d.source.startswith("file:///") for d in batch.documents)


def test_named_files_missing_paths_and_unknown_extensions(tmp_path: Path) -> None:
    _tree(tmp_path)
    batch = read_sources(
        [tmp_path / "b.txt", tmp_path / "logo.png", tmp_path / "nope.md", tmp_path / "b.txt"]
    )
    assert [Path(d.source).name for d in batch.documents] == ["b.txt"], "read once"
    assert [(f.path.name, f.code) for f in batch.failures] == [
        ("logo.png", "unsupported_format"),
        ("nope.md", "not_found"),
    ]
    assert batch.failures[0].hint and ".md" in batch.failures[0].hint


def test_size_limit(tmp_path: Path) -> None:
    (tmp_path / "big.txt").write_text("x" * 2_000)
    (tmp_path / "small.txt").write_text("y")
    batch = read_sources(tmp_path, max_file_bytes=1_000)
    assert [Path(d.source).name for d in batch.documents] == ["small.txt"]
    [failure] = batch.failures
    assert failure.code == "too_large"
    assert "over the" in failure.message and failure.hint


def test_files_outside_the_root_are_refused(tmp_path: Path) -> None:
    (tmp_path / "kb").mkdir()
    (tmp_path / "outside.md").write_text("Out.")
    batch = read_sources([tmp_path / "outside.md"], root=tmp_path / "kb")
    assert [f.code for f in batch.failures] == ["outside_root"]


def test_an_unreadable_file_costs_only_itself(tmp_path: Path) -> None:
    # A dangling link is listed like a file and fails on reading, even for root (whom
    # file permissions would not stop).
    (tmp_path / "a.md").write_text("Fine.")
    (tmp_path / "gone.md").symlink_to(tmp_path / "deleted-target.md")
    batch = read_sources(tmp_path)
    assert [(f.path.name, f.code) for f in batch.failures] == [("gone.md", "unreadable")]
    assert len(batch.documents) == 1


def test_a_reader_crash_is_a_failure_not_an_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sluice.knowledge import RecordsRead, ingest

    def explode(*_: object) -> RecordsRead:
        raise RuntimeError("parser bug")

    monkeypatch.setitem(ingest.READERS, ".txt", explode)
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.md").write_text("Fine.")
    batch = read_sources(tmp_path)
    assert [(f.path.name, f.code) for f in batch.failures] == [("a.txt", "reader_error")]
    assert "parser bug" in batch.failures[0].message
    assert len(batch.documents) == 1


def test_reader_options_reach_the_record_readers(tmp_path: Path) -> None:
    (tmp_path / "faq.csv").write_text("q,a\nWhy?,Because.\n")
    batch = read_sources(tmp_path, options=ReaderOptions(faq=FaqColumns(question="q", answer="a")))
    assert [d.title for d in batch.documents] == ["Why?"]


def test_ids_are_stable_across_reads_and_machines(tmp_path: Path) -> None:
    for place in ("one", "two"):
        (tmp_path / place).mkdir()
        _tree(tmp_path / place)
    one = read_sources(tmp_path / "one", root=tmp_path / "one")
    two = read_sources(tmp_path / "two", root=tmp_path / "two")
    assert [d.doc_id for d in one.documents] == [d.doc_id for d in two.documents]
    assert [d.fingerprint for d in one.documents] == [d.fingerprint for d in two.documents]


def test_plan_changes_new_changed_unchanged_removed(tmp_path: Path) -> None:
    (tmp_path / "keep.md").write_text("Same.")
    (tmp_path / "edit.md").write_text("Before.")
    (tmp_path / "drop.md").write_text("Going.")
    before = read_sources(tmp_path, root=tmp_path).documents
    store = {d.doc_id: d.fingerprint for d in before}

    (tmp_path / "edit.md").write_text("After.")
    (tmp_path / "drop.md").unlink()
    (tmp_path / "new.md").write_text("Hello.")
    after = read_sources(tmp_path, root=tmp_path).documents
    plan = plan_changes(store, after)

    def names(docs: tuple[object, ...]) -> list[str]:
        return [d.source for d in docs]  # type: ignore[attr-defined]

    assert names(plan.new) == ["new.md"]
    assert names(plan.changed) == ["edit.md"]
    assert names(plan.unchanged) == ["keep.md"]
    dropped = next(d for d in before if d.source == "drop.md")
    assert plan.removed == (dropped.doc_id,)
    assert names(plan.to_write) == ["new.md", "edit.md"]

    # Re-reading unchanged sources plans nothing; new metadata alone is a change.
    store = {d.doc_id: d.fingerprint for d in after}
    again = plan_changes(store, read_sources(tmp_path, root=tmp_path).documents)
    assert not again.new and not again.changed and not again.removed
    relabelled = read_sources(tmp_path, root=tmp_path, metadata={"product": "x"}).documents
    assert len(plan_changes(store, relabelled).changed) == 3


def test_plan_changes_refuses_a_batch_with_one_id_twice(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("A.")
    doc = read_sources(tmp_path).documents[0]
    with pytest.raises(KnowledgeError, match="appears twice"):
        plan_changes({}, [doc, dataclasses.replace(doc, title="other")])
