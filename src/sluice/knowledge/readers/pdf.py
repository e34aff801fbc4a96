"""PDF: the text layer, page by page, with pypdf.

There is no OCR: a scanned PDF without a text layer is refused as ``no_text_layer``, so
the gap shows up in the ingest report instead of as an empty document. A PDF encrypted
with a user password is refused as ``encrypted``; one with an owner password only (it
opens without a password) is read. A file pypdf cannot parse is ``corrupt``. Pages are
joined by a blank line; ``metadata["pages"]`` is the page count; the title comes from
the PDF's own metadata, else the file name.

Example:
    >>> from pypdf import PdfWriter
    >>> import io
    >>> buffer = io.BytesIO()
    >>> writer = PdfWriter()
    >>> _ = writer.add_blank_page(width=200, height=200)
    >>> _ = writer.write(buffer)
    >>> read_pdf(buffer.getvalue(), source="scan.pdf")
    Traceback (most recent call last):
    ...
    sluice.errors.IngestError: scan.pdf has no text layer (1 page(s), no extractable text) ...
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping

from sluice.errors import IngestError
from sluice.knowledge.documents import Document, DocumentFormat, MetadataValue, normalize_text
from sluice.knowledge.readers.common import merge_metadata, title_from_source

__all__ = ["read_pdf"]


def read_pdf(
    data: bytes, *, source: str, metadata: Mapping[str, MetadataValue] | None = None
) -> Document:
    """One PDF's text layer as a document (module docs).

    Args:
        data: The file's bytes.
        source: Its source URI.
        metadata: The caller's key=value metadata.

    Raises:
        IngestError: ``corrupt``, ``encrypted`` or ``no_text_layer``.
    """
    from pypdf import PdfReader  # a reader's dependency, loaded when a PDF comes along

    # pypdf warns about every quirk of a malformed file; the outcome (text or a refusal
    # below) is what the ingest report needs, and warnings fail our test runs.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and not reader.decrypt(""):
                raise IngestError(
                    f"{source} is encrypted with a password",
                    path=source,
                    reason="encrypted",
                    hint="save an unencrypted copy and ingest that",
                )
            pages = [page.extract_text() or "" for page in reader.pages]
            info = reader.metadata
            pdf_title = info.title if info is not None else None
        except IngestError:
            raise
        except Exception as exc:  # pypdf raises many types on malformed input
            raise IngestError(
                f"{source} is not a readable PDF ({type(exc).__name__}: {exc})",
                path=source,
                reason="corrupt",
                hint="check that the file is complete; re-export it from its source",
            ) from exc
    text = normalize_text("\n\n".join(normalize_text(page) for page in pages))
    if not text:
        raise IngestError(
            f"{source} has no text layer ({len(pages)} page(s), no extractable text)",
            path=source,
            reason="no_text_layer",
            hint="it is probably scanned: run OCR on it first (Sluice has no OCR)",
        )
    title = " ".join(str(pdf_title).split()) if pdf_title else title_from_source(source)
    return Document.create(
        source=source,
        format=DocumentFormat.PDF,
        text=text,
        raw=data,
        title=title,
        metadata=merge_metadata({"pages": len(pages)}, metadata),
    )
