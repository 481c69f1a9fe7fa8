"""Compiled tokenisation of ASCII query batches and a token -> id table the compiled code can read.

A batch of short queries spends most of its analysis time in Python's regular-expression engine and in
one dictionary lookup per token. For ASCII text the tokeniser's rules (``analysis.py``) are a few
character classes, so one numba pass over the batch's bytes finds every token, and an open-addressing
hash table (numpy arrays, keys verified byte for byte) maps each token to what the caller cached for it.
Tokens the table has not seen yet go back to Python once, through the ordinary analyser.
"""

from __future__ import annotations

import numba
import numpy as np

MAX_TOKEN_LENGTH = 255  # longer tokens are split by Lucene; callers take the general path for them

# character classes: 0 other, 1 letter, 2 digit, 3 connector ("_")
_CLASS = np.zeros(256, dtype=np.uint8)
_CLASS[ord("a") : ord("z") + 1] = 1
_CLASS[ord("A") : ord("Z") + 1] = 1
_CLASS[ord("0") : ord("9") + 1] = 2
_CLASS[ord("_")] = 3
# joiners: bit 1 joins two letters (MidLetter ":" and MidNumLet "." "'"), bit 2 two digits (MidNum "," ";")
_JOIN = np.zeros(256, dtype=np.uint8)
for _c, _bits in ((":", 1), (".", 3), ("'", 3), (",", 2), (";", 2)):
    _JOIN[ord(_c)] = _bits

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@numba.njit(inline="always", cache=True)
def _lower(byte, lower):  # pragma: no cover - compiled
    if lower and 65 <= byte <= 90:
        return byte | 32
    return byte


@numba.njit(cache=True)
def scan(buf, bounds, lower, cls, join):  # pragma: no cover - compiled
    """Tokens of the texts ``buf[bounds[r]:bounds[r+1]]``: (start, end, text row, hash) arrays and the
    longest token's length. Same tokens as ``analysis._ASCII_TOKEN_RE`` (tested)."""
    n = len(buf)  # a token has at least one byte: one slot per byte is always enough
    lo_out = np.empty(n, dtype=np.int64)
    hi_out = np.empty(n, dtype=np.int64)
    row_out = np.empty(n, dtype=np.int64)
    hash_out = np.empty(n, dtype=np.uint64)
    count = 0
    longest = 0
    for r in range(len(bounds) - 1):
        i = bounds[r]
        end = bounds[r + 1]
        while i < end:
            if cls[buf[i]] == 0:
                i += 1
                continue
            lo = i
            h = _FNV_OFFSET
            while True:
                while i < end and cls[buf[i]] != 0:
                    h = (h ^ np.uint64(_lower(buf[i], lower))) * _FNV_PRIME
                    i += 1
                if i + 1 < end:  # a joiner between two letters or two digits continues the token
                    before = cls[buf[i - 1]]
                    after = cls[buf[i + 1]]
                    bits = join[buf[i]]
                    if (before == 1 and after == 1 and (bits & 1)) or (before == 2 and after == 2 and (bits & 2)):
                        h = (h ^ np.uint64(buf[i])) * _FNV_PRIME
                        i += 1
                        continue
                break
            # i > lo: the joiner case always consumes the following word character too
            lo_out[count] = lo
            hi_out[count] = i
            row_out[count] = r
            hash_out[count] = h
            count += 1
            longest = max(longest, i - lo)
    return lo_out[:count], hi_out[:count], row_out[:count], hash_out[:count], longest


@numba.njit(cache=True)
def _find(slot_hash, slot_start, slot_len, keys, buf, lo, hi, h, lower):  # pragma: no cover - compiled
    """The slot holding the token ``buf[lo:hi]`` (hash ``h``), or the empty slot where it would go."""
    mask = len(slot_hash) - 1
    s = np.int64(h & np.uint64(mask))
    length = hi - lo
    while slot_len[s] >= 0:
        if slot_hash[s] == h and slot_len[s] == length:
            start = slot_start[s]
            same = True
            for j in range(length):
                if keys[start + j] != _lower(buf[lo + j], lower):
                    same = False
                    break
            if same:
                return s
        s = (s + 1) & mask
    return s


@numba.njit(cache=True)
def _lookup(
    slot_hash, slot_start, slot_len, slot_value, keys, buf, los, his, hashes, lower, missing
):  # pragma: no cover
    out = np.empty(len(los), dtype=np.int64)
    for t in range(len(los)):
        s = _find(slot_hash, slot_start, slot_len, keys, buf, los[t], his[t], hashes[t], lower)
        out[t] = slot_value[s] if slot_len[s] >= 0 else missing
    return out


@numba.njit(cache=True)
def _insert(slot_hash, slot_start, slot_len, slot_value, keys, used, token, value):  # pragma: no cover
    """Store ``token`` (bytes as kept: already lowered if the table lowers) -> value.
    Returns (key bytes used, whether the token is new)."""
    h = _hash(token)
    s = _find(slot_hash, slot_start, slot_len, keys, token, 0, len(token), h, False)
    new = slot_len[s] < 0
    if new:
        slot_hash[s] = h
        slot_start[s] = used
        slot_len[s] = len(token)
        keys[used : used + len(token)] = token
        used += len(token)
    slot_value[s] = value
    return used, new


@numba.njit(cache=True)
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


@numba.njit(cache=True)
def _hash(token):  # pragma: no cover - compiled
    """The hash ``scan`` computes, for a token's bytes as stored."""
    h = _FNV_OFFSET
    for byte in token:
        h = (h ^ np.uint64(byte)) * _FNV_PRIME
    return h


class TokenTable:
    """Surface token (ASCII) -> int64, readable from compiled code; grows as tokens are added."""

    def __init__(self, lower: bool, capacity: int = 1 << 12):
        self.lower = lower
        self.size = 0
        self._used = 0
        self._keys = np.zeros(8 * capacity, dtype=np.uint8)
        self._alloc(capacity)

    def _alloc(self, capacity: int) -> None:
        self._hash = np.zeros(capacity, dtype=np.uint64)
        self._start = np.zeros(capacity, dtype=np.int64)
        self._len = np.full(capacity, -1, dtype=np.int64)
        self._value = np.zeros(capacity, dtype=np.int64)

    def __len__(self) -> int:
        return self.size

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """Scan ASCII ``texts``: (their bytes, token starts, ends, text rows, hashes, longest token)."""
        lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        bounds = np.zeros(len(texts) + 1, dtype=np.int64)
        np.cumsum(lengths, out=bounds[1:])
        buf = np.frombuffer("".join(texts).encode("ascii"), dtype=np.uint8)
        los, his, rows, hashes, longest = scan(buf, bounds, self.lower, _CLASS, _JOIN)
        return buf, los, his, rows, hashes, int(longest)

    def lookup(self, buf: np.ndarray, los: np.ndarray, his: np.ndarray, hashes: np.ndarray, missing: int) -> np.ndarray:
        """The value of each token ``buf[los[i]:his[i]]`` (hashes from ``tokenize``), ``missing`` if absent."""
        return _lookup(
            self._hash, self._start, self._len, self._value, self._keys, buf, los, his, hashes, self.lower, missing
        )

    def add(self, token: str, value: int) -> None:
        """Map ``token`` (as ``tokenize`` saw it; lowered here if the table lowers) to ``value``."""
        data = np.frombuffer((token.lower() if self.lower else token).encode("ascii"), dtype=np.uint8)
        if 2 * (self.size + 1) > len(self._len):
            old = (self._hash, self._start, self._len, self._value)
            self._alloc(2 * len(self._len))
            _rehash(*old, self._hash, self._start, self._len, self._value)
        if self._used + len(data) > len(self._keys):
            self._keys = np.concatenate([self._keys, np.zeros(len(self._keys) + len(data), np.uint8)])
        self._used, new = _insert(self._hash, self._start, self._len, self._value, self._keys, self._used, data, value)
        self.size += bool(new)
