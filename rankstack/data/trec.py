"""TREC SGML readers: ``<DOC>`` document files and ``<top>`` topic files.

TREC distributes collections as loosely SGML-tagged text, not XML: topic files leave ``<title>``, ``<desc>``
and ``<narr>`` unclosed, documents carry ``&`` unescaped, and tag sets differ between newspapers. These
readers are deliberately tolerant of that, and strict only about what makes a record unusable (no
``<DOCNO>``, no topic number, a ``<DOC>`` that never closes), which they report with the file and line.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

from rankstack.errors import InputFormatError
from rankstack.lines import iter_lines
from rankstack.types import Document

__all__ = ["TITLE_TAGS", "iter_trec_documents", "iter_trec_topics"]

#: Elements whose text becomes ``Document.title`` (newswire headlines, web titles, WSJ's ``<HL>``).
TITLE_TAGS = ("HEADLINE", "TITLE", "HEAD", "HL")

_DOC_OPEN = re.compile(r"<DOC(?:\s+[^>]*)?>", re.IGNORECASE)
_DOC_CLOSE = re.compile(r"</DOC>", re.IGNORECASE)
_DOC_ID_ATTR = re.compile(r"""\bid\s*=\s*["']?([^"'\s>]+)""", re.IGNORECASE)
_DOCNO = re.compile(r"<DOCNO>(.*?)</DOCNO>", re.IGNORECASE | re.DOTALL)
# A <TEXT> section ends at </TEXT>, at the next <TEXT>, or at the end of the document (some files omit the close).
_TEXT = re.compile(r"<TEXT(?:\s[^>]*)?>(.*?)(?:</TEXT>|(?=<TEXT(?:\s[^>]*)?>)|\Z)", re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(r"<(" + "|".join(TITLE_TAGS) + r")(?:\s[^>]*)?>(.*?)</\1>", re.IGNORECASE | re.DOTALL)
_ELEMENT = re.compile(r"<([A-Za-z][\w.-]*)(?:\s[^>]*)?>(.*?)</\1>", re.DOTALL)
_ANY_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_SPACE = re.compile(r"\s+")

_TOP_OPEN = re.compile(r"<top>", re.IGNORECASE)
_TOP_CLOSE = re.compile(r"</top>", re.IGNORECASE)
_TOPIC_TAG = re.compile(r"<(/?)([A-Za-z][\w-]*)(?:\s[^>]*)?>")
# Labels that TREC topic files put at the start of a field's text.
_FIELD_LABEL = {
    "num": re.compile(r"^\s*Number\s*:\s*", re.IGNORECASE),
    "title": re.compile(r"^\s*Topic\s*:\s*", re.IGNORECASE),
    "desc": re.compile(r"^\s*Description\s*:\s*", re.IGNORECASE),
    "narr": re.compile(r"^\s*Narrative\s*:\s*", re.IGNORECASE),
}


def _clean(fragment: str) -> str:
    """Drop inner markup (``<P>``, ``<F P=..>``), decode entities, collapse whitespace."""
    return _SPACE.sub(" ", html.unescape(_ANY_TAG.sub(" ", fragment))).strip()


# --------------------------------------------------------------------------------------------- documents
def iter_trec_documents(path: str | Path) -> Iterator[tuple[int, Document]]:
    """Stream ``(line of <DOC>, Document)`` from one TREC SGML file (``.gz`` allowed).

    ``title`` comes from ``<HEADLINE>``/``<TITLE>``/``<HEAD>``/``<HL>``; ``text`` from the ``<TEXT>``
    sections, or, when a file has none (the Glasgow/Vaswani conversions), from everything in the
    document except its number and title. Other simple elements (``<DATE>``, ``<BYLINE>``, ...) go to
    ``fields``. Documents are held one at a time, so files of any size stream.
    """
    buf: list[str] | None = None
    start = 0
    open_tag = ""
    for lineno, line in iter_lines(path):
        rest = line
        while True:
            if buf is None:
                stripped = rest.lstrip()
                if not stripped:
                    break
                m = _DOC_OPEN.match(stripped)
                if m is None:
                    raise InputFormatError(
                        path,
                        lineno,
                        f"text outside a <DOC> element: {stripped[:60]!r} (a TREC file holds <DOC>...</DOC> blocks)",
                    )
                buf, start, open_tag, rest = [], lineno, m.group(0), stripped[m.end() :]
                continue
            close = _DOC_CLOSE.search(rest)
            nested = _DOC_OPEN.search(rest)
            if nested is not None and (close is None or nested.start() < close.start()):
                raise InputFormatError(path, lineno, f"<DOC> opened before the <DOC> of line {start} was closed")
            if close is None:
                buf.append(rest)
                break
            buf.append(rest[: close.start()])
            yield start, _parse_document("\n".join(buf), open_tag, path, start)
            buf, rest = None, rest[close.end() :]
    if buf is not None:
        raise InputFormatError(path, start, "this <DOC> is never closed with </DOC> (is the file truncated?)")


def _parse_document(body: str, open_tag: str, path: str | Path, line: int) -> Document:
    docnos = _DOCNO.findall(body)
    if len(docnos) > 1:
        raise InputFormatError(path, line, f"document has {len(docnos)} <DOCNO> elements")
    if docnos:
        docid = _clean(docnos[0])
    else:  # AQUAINT-style <DOC id="APW19980601.0001">
        attr = _DOC_ID_ATTR.search(open_tag)
        docid = attr.group(1) if attr else ""
    if not docid:
        raise InputFormatError(path, line, "document has no <DOCNO> (and no id attribute on <DOC>)")

    titles = [_clean(m.group(2)) for m in _TITLE.finditer(body)]
    title = " ".join(t for t in titles if t) or None

    texts = [m.group(1) for m in _TEXT.finditer(body)]
    rest = _TEXT.sub(" ", _DOCNO.sub(" ", body))
    if texts:
        text = " ".join(t for t in (_clean(x) for x in texts) if t)
    else:
        text = _clean(_TITLE.sub(" ", rest))

    fields: dict[str, str] = {}
    skip = {"DOCNO", "TEXT", *TITLE_TAGS}
    for m in _ELEMENT.finditer(rest):
        tag = m.group(1)
        if tag.upper() not in skip:
            value = _clean(m.group(2))
            fields[tag.lower()] = f"{fields[tag.lower()]} {value}" if tag.lower() in fields else value
    return Document(docid, text, title, fields)


# --------------------------------------------------------------------------------------------- topics
def iter_trec_topics(path: str | Path) -> Iterator[tuple[int, dict[str, str]]]:
    """Stream ``(line of <top>, {field: text})`` from a TREC topic file.

    Each ``<tag>`` starts a field that runs to the next tag, so the unclosed ``<title>``/``<desc>``/``<narr>``
    of real TREC files and the closed tags of later conversions both parse. The labels TREC writes inside
    fields ("Number:", "Description:", "Narrative:", "Topic:") are removed. Every topic has ``num``.
    """
    block: list[str] | None = None
    start = 0
    for lineno, line in iter_lines(path):
        rest = line
        while True:
            if block is None:
                stripped = rest.lstrip()
                if not stripped:
                    break
                m = _TOP_OPEN.match(stripped)
                if m is None:
                    raise InputFormatError(
                        path,
                        lineno,
                        f"text outside a <top> element: {stripped[:60]!r} (a TREC topic file holds <top>...</top> blocks)",
                    )
                block, start, rest = [], lineno, stripped[m.end() :]
                continue
            close = _TOP_CLOSE.search(rest)
            nested = _TOP_OPEN.search(rest)
            if nested is not None and (close is None or nested.start() < close.start()):
                raise InputFormatError(path, lineno, f"<top> opened before the <top> of line {start} was closed")
            if close is None:
                block.append(rest)
                break
            block.append(rest[: close.start()])
            yield start, _parse_topic("\n".join(block), path, start)
            block, rest = None, rest[close.end() :]
    if block is not None:
        raise InputFormatError(path, start, "this <top> is never closed with </top> (is the file truncated?)")


def _parse_topic(body: str, path: str | Path, line: int) -> dict[str, str]:
    fields: dict[str, str] = {}
    tags = list(_TOPIC_TAG.finditer(body))
    for i, m in enumerate(tags):
        if m.group(1):  # a closing tag only ends the field before it
            continue
        name = m.group(2).lower()
        end = tags[i + 1].start() if i + 1 < len(tags) else len(body)
        value = body[m.end() : end]
        label = _FIELD_LABEL.get(name)
        if label is not None:
            value = label.sub("", value, count=1)
        value = _clean(value)
        fields[name] = f"{fields[name]} {value}".strip() if name in fields else value
    if not fields.get("num"):
        raise InputFormatError(path, line, "topic has no <num> (topic number)")
    return fields
