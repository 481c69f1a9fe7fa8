"""Compiled tokenisation of query batches and a token -> id table that compiled code can read.

A batch of short queries spends most of its analysis time in the regular-expression engine and in one
dictionary lookup per token. For most text the tokeniser's rules (``analysis.py``) come down to a few
character classes: letters, ASCII digits, "_", and the ASCII joiners ``: . ' , ;``. One numba pass
over the batch's code points finds every token of such text, and an open-addressing hash table (numpy
arrays, keys verified code point by code point) maps each token to what the caller cached for it.
Index builds use the same pass (``analysis.TermMapper``) for whole batches of documents.

The simple classes: letters with a one-letter lowercase, ASCII digits, "_", the joiners (``: . ' , ;``
and their non-ASCII kin such as "’" and "·"), pictographs of the Basic Multilingual Plane such as "©"
(a one-character token each), and separators (everything that is no part of a word, "²" and "½"
included). Text holding anything else (Han, emoji beyond that plane or with modifiers, combining
marks, non-ASCII digits, format characters, "Σ" whose lowercase depends on context, tokens over 255
characters) is flagged, and the caller takes the general path for it. Tokens the table has not seen
yet also go back to Python once, through the ordinary analyser.
"""

from __future__ import annotations

import functools

import numpy as np
import regex

from rankstack.jit import njit
from rankstack.text.analysis import _MID_LETTER, _MID_NUM, _MID_NUM_LET

MAX_TOKEN_LENGTH = 255  # Lucene splits longer tokens; texts holding one take the general path

SEPARATOR, LETTER, DIGIT, CONNECTOR, PICTOGRAPH, COMPLEX = 0, 1, 2, 3, 4, 255
_TABLE_SIZE = 0x10000  # the Basic Multilingual Plane; code points above it are COMPLEX

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@functools.cache
def char_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class of each BMP code point, joiner bits, lowercase code point), built once from the same
    Unicode properties the general tokeniser's regular expression uses."""
    chars = "".join(map(chr, range(_TABLE_SIZE)))

    def where(pattern: str) -> np.ndarray:
        return np.fromiter((m.start() for m in regex.finditer(pattern, chars)), dtype=np.int64)

    cls = np.full(_TABLE_SIZE, COMPLEX, dtype=np.uint8)
    # what the tokeniser's rules give a role; everything else (other numerics such as "²" included) separates
    special = r"[\p{L}\p{M}\p{Nd}\p{Pc}\p{Cf}\p{Cs}\p{Han}\p{Hiragana}\p{Extended_Pictographic}]"
    is_special = np.zeros(_TABLE_SIZE, dtype=bool)
    is_special[where(special)] = True
    cls[~is_special] = SEPARATOR
    # a pictograph that is nothing else is a token of its own (one followed by a modifier or joiner is complex:
    # those are marks and format characters)
    pictographs = np.zeros(_TABLE_SIZE, dtype=bool)
    pictographs[where(r"\p{Extended_Pictographic}")] = True
    pictographs[where(r"[\p{L}\p{M}\p{Nd}\p{Pc}\p{Cf}\p{Cs}\p{Han}\p{Hiragana}]")] = False
    cls[pictographs] = PICTOGRAPH
    letters = np.zeros(_TABLE_SIZE, dtype=bool)
    letters[where(r"\p{L}")] = True
    letters[where(r"[\p{Han}\p{Hiragana}\p{Extended_Pictographic}]")] = False
    lower = np.arange(_TABLE_SIZE, dtype=np.uint32)
    for cp in np.flatnonzero(letters).tolist():
        low = chr(cp).lower()
        if len(low) == 1 and letters[ord(low)] and cp != 0x03A3:  # Σ lowercases by context
            cls[cp] = LETTER
            lower[cp] = ord(low)
    for c in "0123456789":
        cls[ord(c)] = DIGIT
    cls[ord("_")] = CONNECTOR
    join = np.zeros(_TABLE_SIZE, dtype=np.uint8)  # bit 1 joins two letters, bit 2 two digits
    for chars, bits in ((_MID_LETTER, 1), (_MID_NUM, 2), (_MID_NUM_LET, 3)):
        for c in chars:
            if cls[ord(c)] == SEPARATOR:  # a joiner that is nothing else (all of them, as Unicode stands)
                join[ord(c)] = bits
    return cls, join, lower


@njit()
def _class(cls, cp):  # pragma: no cover - compiled
    return cls[cp] if cp < len(cls) else np.uint8(COMPLEX)


@njit()
def scan(buf, bounds, lower, cls, join, lower_map):  # pragma: no cover - compiled
    """Tokens of the texts ``buf[bounds[r]:bounds[r+1]]`` (code points): (start, end, text row, hash of
    the lowered token) arrays, and which rows are complex (their tokens are left out). Same tokens as
    ``analysis.Analyzer.tokenize`` before lowercasing and possessives (tested)."""
    n = len(buf)
    lo_out = np.empty(n, dtype=np.int64)  # a token has at least one code point: one slot each is enough
    hi_out = np.empty(n, dtype=np.int64)
    row_out = np.empty(n, dtype=np.int64)
    hash_out = np.empty(n, dtype=np.uint64)
    complex_rows = np.zeros(len(bounds) - 1, dtype=np.bool_)
    count = 0
    for r in range(len(bounds) - 1):
        first = count
        i = bounds[r]
        end = bounds[r + 1]
        while i < end:
            c = _class(cls, buf[i])
            if c == SEPARATOR:
                i += 1
                continue
            if c == COMPLEX:
                complex_rows[r] = True
                break
            if c == PICTOGRAPH:  # a token of one character
                lo_out[count] = i
                hi_out[count] = i + 1
                row_out[count] = r
                hash_out[count] = (_FNV_OFFSET ^ np.uint64(buf[i])) * _FNV_PRIME
                count += 1
                i += 1
                continue
            lo = i
            h = _FNV_OFFSET
            word = False  # a letter or digit: a run of connectors alone is no token
            while True:
                while i < end:
                    c = _class(cls, buf[i])
                    if c == SEPARATOR or c >= PICTOGRAPH:  # a pictograph ends a word, as anything complex does
                        break
                    word = word or c != CONNECTOR
                    cp = lower_map[buf[i]] if lower else buf[i]
                    h = (h ^ np.uint64(cp)) * _FNV_PRIME
                    i += 1
                if i + 1 < end and buf[i] < len(join) and join[buf[i]] != 0:  # joins two letters or two digits
                    before = cls[buf[i - 1]]
                    after = _class(cls, buf[i + 1])
                    bits = join[buf[i]]
                    if (before == LETTER and after == LETTER and (bits & 1)) or (
                        before == DIGIT and after == DIGIT and (bits & 2)
                    ):
                        h = (h ^ np.uint64(buf[i])) * _FNV_PRIME
                        i += 1
                        continue
                break
            if i - lo > MAX_TOKEN_LENGTH:
                complex_rows[r] = True
            if complex_rows[r]:
                break
            if word:
                lo_out[count] = lo
                hi_out[count] = i
                row_out[count] = r
                hash_out[count] = h
                count += 1
        if complex_rows[r]:
            count = first
    return lo_out[:count], hi_out[:count], row_out[:count], hash_out[:count], complex_rows


@njit()
def _hash(token):  # pragma: no cover - compiled
    """The hash ``scan`` computes, for a token's code points as stored."""
    h = _FNV_OFFSET
    for cp in token:
        h = (h ^ np.uint64(cp)) * _FNV_PRIME
    return h


@njit()
def _find(slot_hash, slot_start, slot_len, keys, buf, lo, hi, h, lower, lower_map):  # pragma: no cover
    """The slot holding the token ``buf[lo:hi]`` (hash ``h``), or the empty slot where it would go."""
    mask = len(slot_hash) - 1
    s = np.int64(h & np.uint64(mask))
    length = hi - lo
    while slot_len[s] >= 0:
        if slot_hash[s] == h and slot_len[s] == length:
            start = slot_start[s]
            same = True
            for j in range(length):
                cp = buf[lo + j]
                if keys[start + j] != (lower_map[cp] if lower else cp):
                    same = False
                    break
            if same:
                return s
        s = (s + 1) & mask
    return s


@njit()
def _lookup(
    slot_hash, slot_start, slot_len, slot_value, keys, buf, los, his, hashes, lower, lower_map, missing
):  # pragma: no cover
    out = np.empty(len(los), dtype=np.int64)
    for t in range(len(los)):
        s = _find(slot_hash, slot_start, slot_len, keys, buf, los[t], his[t], hashes[t], lower, lower_map)
        out[t] = slot_value[s] if slot_len[s] >= 0 else missing
    return out


@njit()
def _insert(slot_hash, slot_start, slot_len, slot_value, keys, used, token, value, lower_map):  # pragma: no cover
    """Store ``token`` (code points as kept) -> value; returns (key slots used, whether it is new)."""
    h = _hash(token)
    s = _find(slot_hash, slot_start, slot_len, keys, token, 0, len(token), h, False, lower_map)
    new = slot_len[s] < 0
    if new:
        slot_hash[s] = h
        slot_start[s] = used
        slot_len[s] = len(token)
        keys[used : used + len(token)] = token
        used += len(token)
    slot_value[s] = value
    return used, new


@njit()
def _claim(
    slot_hash, slot_start, slot_len, slot_value, keys, used, buf, los, his, hashes, lower, lower_map, absent
):  # pragma: no cover - compiled
    """The slot of each token ``buf[los[t]:his[t]]`` (hash ``hashes[t]``, as ``scan`` gave it), adding the tokens
    the table lacks (value ``absent``, once each, in order): (slots, which t were added, key slots used). The
    caller has made room (``reserve``)."""
    slots = np.empty(len(los), dtype=np.int64)
    added = np.empty(len(los), dtype=np.int64)
    num_added = 0
    for t in range(len(los)):
        lo = los[t]
        hi = his[t]
        h = hashes[t]
        s = _find(slot_hash, slot_start, slot_len, keys, buf, lo, hi, h, lower, lower_map)
        if slot_len[s] < 0:
            slot_hash[s] = h
            slot_start[s] = used
            slot_len[s] = hi - lo
            for j in range(lo, hi):
                keys[used] = lower_map[buf[j]] if lower else buf[j]
                used += 1
            slot_value[s] = absent
            added[num_added] = t
            num_added += 1
        slots[t] = s
    return slots, added[:num_added], used


@njit()
def _rehash(old_hash, old_start, old_len, old_value, slot_hash, slot_start, slot_len, slot_value):  # pragma: no cover
    mask = len(slot_hash) - 1
    for o in range(len(old_len)):
        if old_len[o] >= 0:
            s = np.int64(old_hash[o] & np.uint64(mask))
            while slot_len[s] >= 0:
                s = (s + 1) & mask
            slot_hash[s] = old_hash[o]
            slot_start[s] = old_start[o]
            slot_len[s] = old_len[o]
            slot_value[s] = old_value[o]


@njit()
def _scan_lookup(
    buf, bounds, lower, cls, join, lower_map, slot_hash, slot_start, slot_len, slot_value, keys, missing
):  # pragma: no cover - compiled
    """``scan``, then each token's value in the table: one call where a batch of short queries would
    otherwise pay two."""
    los, his, rows, hashes, complex_rows = scan(buf, bounds, lower, cls, join, lower_map)
    values = _lookup(slot_hash, slot_start, slot_len, slot_value, keys, buf, los, his, hashes, lower, lower_map, missing)
    return los, his, rows, hashes, values, complex_rows


@njit()
def kept_terms(rows, values, num_rows, stopword):  # pragma: no cover - compiled
    """Tokens with a term (value >= 0) as (rows, values), and whether each row had any token other than a
    ``stopword`` (a row of stopwords alone has no query)."""
    keep = 0
    has_term = np.zeros(num_rows, dtype=np.bool_)
    out_rows = np.empty(len(rows), dtype=np.int64)
    out_values = np.empty(len(rows), dtype=np.int64)
    for t in range(len(rows)):
        v = values[t]
        if v != stopword:
            has_term[rows[t]] = True
        if v >= 0:
            out_rows[keep] = rows[t]
            out_values[keep] = v
            keep += 1
    return out_rows[:keep], out_values[:keep], has_term


class ScannedBatch:
    """A batch of texts after ``TokenTable.tokenize``: the joined text, its code points and the tokens
    (``starts``, ``ends`` into both, text ``rows``, ``hashes``); ``complex_rows`` need the general path.
    Given a ``table``, each token's value there (``missing`` where it has none) comes in ``values`` too."""

    def __init__(self, texts: list[str], lower: bool, table: TokenTable | None = None, missing: int = -1):
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        bounds = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=bounds[1:])
        self.text = "".join(texts)
        self.code_points = np.frombuffer(self.text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        cls, join, lower_map = char_tables()
        self.values = None
        if table is None:
            self.starts, self.ends, self.rows, self.hashes, self.complex_rows = scan(
                self.code_points, bounds, lower, cls, join, lower_map
            )
        else:
            self.starts, self.ends, self.rows, self.hashes, self.values, self.complex_rows = _scan_lookup(
                self.code_points, bounds, lower, cls, join, lower_map, *table.slots(), missing
            )

    def token(self, i: int) -> str:
        return self.text[self.starts[i] : self.ends[i]]


class TokenTable:
    """Surface token -> int64, readable from compiled code; grows as tokens are added. With
    ``lower=True`` tokens are keyed by their lowercase form."""

    def __init__(self, lower: bool, capacity: int = 1 << 12):
        self.lower = lower
        self.size = 0
        self._used = 0
        self._keys = np.zeros(8 * capacity, dtype=np.uint32)
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self._hash = np.zeros(capacity, dtype=np.uint64)
        self._start = np.zeros(capacity, dtype=np.int64)
        self._len = np.full(capacity, -1, dtype=np.int64)
        self._value = np.zeros(capacity, dtype=np.int64)

    def __len__(self) -> int:
        return self.size

    def tokenize(self, texts: list[str], lookup: bool = False, missing: int = -1) -> ScannedBatch:
        """The batch's tokens; with ``lookup``, their values too (``missing`` where the table has none)."""
        return ScannedBatch(texts, self.lower, self if lookup else None, missing)

    def slots(self) -> tuple[np.ndarray, ...]:
        """The table's arrays as the compiled lookups take them."""
        return self._hash, self._start, self._len, self._value, self._keys

    def lookup(self, batch: ScannedBatch, missing: int) -> np.ndarray:
        """The value of each of the batch's tokens, ``missing`` where the table has none."""
        return _lookup(
            self._hash, self._start, self._len, self._value, self._keys, batch.code_points,
            batch.starts, batch.ends, batch.hashes, self.lower, char_tables()[2], missing,
        )  # fmt: skip

    def reserve(self, tokens: int, code_points: int) -> None:
        """Room for ``tokens`` more tokens of ``code_points`` in all (slots stay at most half full)."""
        if 2 * (self.size + tokens) > len(self._len):
            old = (self._hash, self._start, self._len, self._value)
            capacity = len(self._len)
            while 2 * (self.size + tokens) > capacity:
                capacity *= 2
            self._alloc(capacity)
            _rehash(*old, self._hash, self._start, self._len, self._value)
        if self._used + code_points > len(self._keys):
            self._keys = np.concatenate([self._keys, np.zeros(len(self._keys) + code_points, np.uint32)])

    def claim(self, batch: ScannedBatch, positions: np.ndarray, absent: int) -> tuple[np.ndarray, np.ndarray]:
        """The slots of the batch's tokens at ``positions``, with the tokens the table lacks added (value
        ``absent`` until ``set_values``), each once: (slots, indices into ``positions`` of those added, in
        order). Slots stay valid until the table next grows."""
        starts, ends = batch.starts[positions], batch.ends[positions]
        self.reserve(len(positions), int((ends - starts).sum()))
        slots, added, self._used = _claim(
            self._hash, self._start, self._len, self._value, self._keys, self._used, batch.code_points,
            starts, ends, batch.hashes[positions], self.lower, char_tables()[2], absent,
        )  # fmt: skip
        self.size += len(added)
        return slots, added

    def set_values(self, slots: np.ndarray, values: np.ndarray) -> None:
        self._value[slots] = values

    def values(self, slots: np.ndarray) -> np.ndarray:
        return self._value[slots]

    def add(self, token: str, value: int) -> None:
        """Map ``token`` (lowercased here if the table lowers) to ``value``."""
        data = np.frombuffer((token.lower() if self.lower else token).encode("utf-32-le", "surrogatepass"), np.uint32)
        self.reserve(1, len(data))
        self._used, new = _insert(
            self._hash, self._start, self._len, self._value, self._keys, self._used, data, value, char_tables()[2]
        )
        self.size += bool(new)
