"""Prompts for generative re-rankers: named templates, label tokens, and fitting documents into a window.

monoT5, duoT5 and query likelihood all render a template around a query and one or two documents and must
keep the whole prompt within the model's window: the query and the template stay, documents are cut from
their ends (at token boundaries, sharing the room fairly between two documents).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rankstack.models.model_dir import ModelDirectoryError

#: named prompt templates (castorini's formats, as pygaggle's ``T5BatchTokenizer`` / ``T5DuoBatchTokenizer``)
TEMPLATES: dict[str, str] = {
    "monoT5": "Query: {query} Document: {document} Relevant:",
    "duoT5": "Query: {query} Document0: {document0} Document1: {document1} Relevant:",
}


def resolve_template(template: str, fields: Sequence[str], named: Mapping[str, str] | None = None) -> str:
    """A template's text: a name from ``named`` (default ``TEMPLATES``) or a format string using ``fields``."""
    named = TEMPLATES if named is None else named
    text = named.get(template, template)
    try:
        text.format(**{f: "" for f in fields})
    except (KeyError, IndexError, ValueError) as e:
        raise ValueError(
            f"template {template!r} is neither a known name ({', '.join(named)}) nor a format string over "
            f"{', '.join('{' + f + '}' for f in fields)} ({type(e).__name__}: {e})"
        ) from None
    missing = [f for f in fields if "{" + f + "}" not in text]
    if missing:
        raise ValueError(f"template {text!r} lacks {', '.join('{' + f + '}' for f in missing)}")
    return text


def label_token_id(tokenizer: Any, token: str) -> int:
    """The vocabulary id of a label word: what the model emits to say it.

    The word is encoded by the tokenizer (no special tokens); if that gives one token, that is the label
    (T5: "true" -> ``▁true``, id 1176). Otherwise an exact vocabulary entry is accepted (``"▁true"`` itself).
    Anything else is refused: a label spread over several tokens cannot be read after one decoder step.
    """
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    unk = tokenizer.unk_token_id
    if len(ids) == 1 and (unk is None or ids[0] != unk):
        return int(ids[0])
    vocab = tokenizer.get_vocab()
    if token in vocab:
        return int(vocab[token])
    pieces = tokenizer.convert_ids_to_tokens(ids)
    raise ModelDirectoryError(
        f"label token {token!r} is not one token of this tokenizer's vocabulary (it encodes to {pieces}); pass a "
        "word the tokenizer keeps whole or an exact vocabulary entry (T5: 'true' / 'false', or '▁true' / '▁false')"
    )


def cut_to_tokens(tokenizer: Any, texts: Sequence[str], max_tokens: int) -> list[str]:
    """Texts longer than ``max_tokens`` tokens, cut at a token boundary (others untouched)."""
    unique = list(dict.fromkeys(texts))
    ids = tokenizer(unique, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    cut: dict[str, str] = {}
    for text, x in zip(unique, ids, strict=True):
        if len(x) > max_tokens:
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
            cut[text] = text[: enc["offset_mapping"][max_tokens - 1][1]] if max_tokens > 0 else ""
    return [cut.get(t, t) for t in texts] if cut else list(texts)


def share_budget(lengths: Sequence[int], budget: int) -> list[int]:
    """How many tokens each document keeps when together they may use ``budget``.

    Shortest first, each takes its length if it fits in an equal share of what is left; from the first that
    does not, every remaining (longer) document gets that same share. Symmetric in the documents' order.

    >>> share_budget([10, 3], 8), share_budget([3, 10], 8), share_budget([10, 12], 9), share_budget([2, 3], 9)
    ([5, 3], [3, 5], [4, 4], [2, 3])
    """
    keep = list(lengths)
    if sum(lengths) <= budget:
        return keep
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    remaining = max(0, int(budget))
    for pos, i in enumerate(order):
        fair = remaining // (len(order) - pos)
        if lengths[i] <= fair:
            remaining -= lengths[i]
            continue
        for r in order[pos:]:
            keep[r] = fair
        break
    return keep


def fit_documents(
    tokenizer: Any,
    render: Callable[[Sequence[str]], str],
    docs: Sequence[str],
    max_length: int,
    *,
    add_special_tokens: bool = True,
    extra: int = 0,
) -> list[str]:
    """The documents, cut from their ends so ``extra + len(tokens(render(docs))) <= max_length``.

    The rest of the rendered text (template, query) is kept. Token counts of a document alone and inside the
    template can differ at its edges, so the cut is checked on the rendered text and tightened until it fits.
    """

    def length(ds: Sequence[str]) -> int:
        return extra + len(tokenizer(render(ds), add_special_tokens=add_special_tokens, verbose=False)["input_ids"])

    total = length(docs)
    if total <= max_length:
        return list(docs)
    encs = [tokenizer(d, add_special_tokens=False, return_offsets_mapping=True, verbose=False) for d in docs]
    lens = [len(e["input_ids"]) for e in encs]
    avail = max_length - (total - sum(lens))
    while True:
        keep = share_budget(lens, max(avail, 0))
        cut = [
            d if k >= n else (d[: e["offset_mapping"][k - 1][1]] if k > 0 else "")
            for d, e, k, n in zip(docs, encs, keep, lens, strict=True)
        ]
        now = length(cut)
        if now <= max_length:
            return cut
        if not any(keep):
            raise ValueError(
                f"the prompt without any document text takes {now} tokens, more than max_length={max_length}; "
                "raise max_length or lower query_max_length"
            )
        avail -= now - max_length
