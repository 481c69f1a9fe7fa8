"""Where a re-ranker reads document text: an index's document store, a corpus, or a mapping.

A re-ranker sees docids in a ranking and needs the text behind each. ``DocumentTexts`` gives one way in
over the sources users have at hand: an inverted index (``index.docs[docid]``, random access from the
compressed store), a ``Corpus`` or list of documents (read once into memory on first use), or a plain
``{docid: text}`` mapping. The text is ``Document.contents()`` (title and body), what the first stage saw.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rankstack.types import Corpus, Document

DocSource = Any  # an index with ``.docs``, a Corpus, an iterable of Documents, or a Mapping of docid -> text


class DocumentTexts:
    """``texts(docids) -> list[str | None]``: the text of each docid, None where the source lacks it."""

    def __init__(self, source: DocSource):
        if isinstance(source, DocumentTexts):
            source = source.source
        if source is None:
            raise ValueError(
                "a re-ranker needs the documents' text: pass docs= an index built with a document store, "
                "a Corpus, or a {docid: text} mapping"
            )
        self.source = source
        self._lookup: Any = getattr(source, "docs", None)
        self._table: dict[str, str] | None = None
        if isinstance(source, Mapping):
            self._table = {str(k): v if isinstance(v, str) else v.contents() for k, v in source.items()}
        elif self._lookup is None and not isinstance(source, Corpus | Iterable):
            raise TypeError(
                f"cannot read document text from {type(source).__name__}; pass an index, a Corpus, "
                "a list of Documents or a {docid: text} mapping"
            )

    def _materialise(self) -> dict[str, str]:
        if self._table is None:
            docs: Iterable[Document] = self.source
            self._table = {d.docid: d.contents() for d in docs}
        return self._table

    def texts(self, docids: Sequence[str]) -> list[str | None]:
        if self._lookup is not None:
            out: list[str | None] = []
            for d in docids:
                try:
                    out.append(self._lookup[d].contents())
                except KeyError:
                    out.append(None)
            return out
        table = self._materialise()
        return [table.get(d) for d in docids]

    def __repr__(self) -> str:
        return repr(self.source)
