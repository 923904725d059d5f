"""Tokens and categories to ids, as Keras's preprocessing layers: StringLookup and
IntegerLookup (tokens -> ids), CategoryEncoding (ids -> one-hot, multi-hot or count vectors)
and TextVectorization (strings -> standardized, split, n-grammed tokens -> ids or bag-of-words
vectors).

They work on arrays (or lists) of Python strings, in NumPy, before a model: ``ids =
vectorize(texts)`` feeds an ``Embedding``. Vocabularies come from ``adapt(data)`` (tokens by
descending count, ties by descending token, as Keras orders them) or are given. They have no
weights and no gradient.

Indices (Keras's): with a mask token (TextVectorization in ``"int"`` mode: ``""``) it is
index 0, then ``num_oov_indices`` out-of-vocabulary indices (``"[UNK]"``), then the
vocabulary.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any, Optional

import numpy as np

from .base import Layer, check_bool, register

__all__ = ["CategoryEncoding", "IntegerLookup", "StringLookup", "TextVectorization"]

_MODES = ("int", "one_hot", "multi_hot", "count", "tf_idf")
# Keras's punctuation for "strip_punctuation".
_PUNCTUATION = re.compile(r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']')


def _strings(name: str, data: Any) -> np.ndarray:
    """`data` as an object array of str (bytes decoded as UTF-8)."""
    a = np.asarray(data, dtype=object)
    flat = a.ravel()
    for k, s in enumerate(flat):
        if isinstance(s, bytes):
            flat[k] = s.decode("utf-8")
        elif not isinstance(s, str):
            raise ValueError(
                f"Received an invalid value for argument `{name}`, expected strings, got "
                f"{type(s).__name__} {s!r}."
            )
    return flat.reshape(a.shape)


def _integers(name: str, data: Any) -> np.ndarray:
    """`data` as an int64 array (whole-number floats accepted)."""
    a = np.asarray(data)
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        a = a.astype(np.int64)
    if a.dtype.kind not in "iub":
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected integers, got dtype "
            f"{a.dtype}."
        )
    return a.astype(np.int64)


def _check_mode(value: Any, allowed: tuple = _MODES) -> str:
    key = "tf_idf" if value == "tf-idf" else value
    if key not in allowed:
        raise ValueError(
            f"Received an invalid value for argument `output_mode`, expected one of "
            f"{allowed}, got {value!r}."
        )
    return key


def _check_optional_positive(name: str, value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected None or a positive "
            f"integer, got {value!r}."
        )
    return int(value)


class _Vocabulary(Layer):
    """The lookup the layers share: special tokens, adapt, encode to ids or vectors."""

    _as_tokens = staticmethod(_strings)  # IntegerLookup: _integers

    @staticmethod
    def _sort_key(token: Any) -> Any:
        return token.encode("utf-8") if isinstance(token, str) else token

    def _setup(self, max_tokens: Any, num_oov_indices: Any, mask_token: Optional[str],
               oov_token: str, output_mode: Any, pad_to_max_tokens: Any,
               idf_weights: Any) -> None:
        self.max_tokens = _check_optional_positive("max_tokens", max_tokens)
        if isinstance(num_oov_indices, (bool, np.bool_)) or not isinstance(
                num_oov_indices, (int, np.integer)) or num_oov_indices < 0:
            raise ValueError(
                "Received an invalid value for argument `num_oov_indices`, expected a "
                f"non-negative integer, got {num_oov_indices!r}."
            )
        self.num_oov_indices = int(num_oov_indices)
        if self.num_oov_indices > 1:
            raise NotImplementedError(
                "Received an unsupported value for argument `num_oov_indices`, fastrnn "
                f"supports 0 or 1 (no hashing of unknown tokens), got {num_oov_indices}."
            )
        self.mask_token = mask_token
        self.oov_token = oov_token
        self.output_mode = _check_mode(output_mode)
        self.pad_to_max_tokens = check_bool("pad_to_max_tokens", pad_to_max_tokens)
        if idf_weights is not None and self.output_mode != "tf_idf":
            raise ValueError(
                "Received an invalid value for argument `idf_weights`: it is only used with "
                f"output_mode='tf_idf', got output_mode={self.output_mode!r}."
            )
        self._tokens: list[str] = []
        self._index: dict[str, int] = {}
        self._idf: Optional[np.ndarray] = None
        self.input_idf_weights = idf_weights

    # -- the vocabulary
    def _specials(self) -> list[str]:
        out = [self.mask_token] if self.mask_token is not None else []
        return out + [self.oov_token] * self.num_oov_indices

    def get_vocabulary(self, include_special_tokens: bool = True) -> list[str]:
        """The tokens by index (with the mask and OOV tokens first, as Keras)."""
        return (self._specials() if include_special_tokens else []) + list(self._tokens)

    def vocabulary_size(self) -> int:
        """The number of indices, special tokens included."""
        return len(self._specials()) + len(self._tokens)

    def set_vocabulary(self, vocabulary: Any, idf_weights: Any = None) -> None:
        """Sets the vocabulary (a list of distinct tokens, special tokens optional at the
        front) and, for ``"tf_idf"``, the idf weight of each token."""
        tokens = [t if isinstance(t, str) else int(t)
                  for t in self._as_tokens("vocabulary", list(vocabulary))]
        specials = self._specials()
        if tokens[: len(specials)] == specials:
            tokens = tokens[len(specials):]
        seen = set()
        for t in tokens:
            if t in seen or t in specials:
                raise ValueError(
                    "Received an invalid value for argument `vocabulary`, tokens must be "
                    f"distinct and not special tokens, got {t!r} twice or as a special token."
                )
            seen.add(t)
        if self.max_tokens is not None and len(specials) + len(tokens) > self.max_tokens:
            raise ValueError(
                f"Received an invalid value for argument `vocabulary`: {len(tokens)} tokens "
                f"and {len(specials)} special tokens exceed max_tokens={self.max_tokens}."
            )
        if self.output_mode == "tf_idf":
            if idf_weights is None:
                raise ValueError(
                    "Received an invalid value for argument `idf_weights`: output_mode='tf_idf' "
                    "with a given vocabulary needs the idf weights."
                )
            w = np.asarray(idf_weights, dtype=np.float32).reshape(-1)
            if w.size == len(tokens) + len(specials):
                w = w[len(specials):]
            if w.size != len(tokens):
                raise ValueError(
                    f"Received an invalid value for argument `idf_weights`, expected one weight "
                    f"per token ({len(tokens)}), got {w.size}."
                )
            self._idf = np.concatenate([np.full(len(specials), w.mean() if w.size else 0.0,
                                                np.float32), w])
        self._tokens = tokens
        self._index = {t: i + len(specials) for i, t in enumerate(tokens)}

    def _adapt_tokens(self, documents: Iterable[list[str]]) -> None:
        counts: Counter = Counter()
        doc_counts: Counter = Counter()
        n_docs = 0
        for tokens in documents:
            counts.update(tokens)
            doc_counts.update(set(tokens))
            n_docs += 1
        for special in self._specials():
            counts.pop(special, None)
            doc_counts.pop(special, None)
        if n_docs == 0:
            raise ValueError(
                "Received an invalid value for argument `data`, it holds no examples to adapt "
                "to."
            )
        # Keras's order: by descending count, ties by descending token.
        ordered = sorted(counts, key=lambda t: (counts[t], self._sort_key(t)), reverse=True)
        if self.max_tokens is not None:
            ordered = ordered[: max(self.max_tokens - len(self._specials()), 0)]
        self._tokens = ordered
        self._index = {t: i + len(self._specials()) for i, t in enumerate(ordered)}
        if self.output_mode == "tf_idf":
            idf = np.log(1 + n_docs / (1 + np.array([doc_counts[t] for t in ordered],
                                                     dtype=np.float64))).astype(np.float32)
            oov = idf.mean() if idf.size else np.float32(0)
            self._idf = np.concatenate([np.full(len(self._specials()), oov, np.float32), idf])

    def _ids(self, tokens: list[str]) -> list[int]:
        oov = len(self._specials()) - 1 if self.num_oov_indices else -1
        mask = self.mask_token
        out = []
        for t in tokens:
            if mask is not None and t == mask:
                out.append(0)
            else:
                k = self._index.get(t, oov)
                if k < 0:
                    raise ValueError(
                        f"Layer `{self.name}`: token {t!r} is not in the vocabulary and "
                        "num_oov_indices=0."
                    )
                out.append(k)
        return out

    def _width(self) -> int:
        if self.pad_to_max_tokens and self.max_tokens is not None:
            return self.max_tokens
        return self.vocabulary_size()

    def _vectors(self, docs: list[list[int]]) -> np.ndarray:
        """multi_hot / count / tf_idf rows ``(N, width)`` from each example's ids."""
        out = np.zeros((len(docs), self._width()), dtype=np.float32)
        for row, ids in zip(out, docs):
            if self.output_mode == "multi_hot":
                row[ids] = 1
            else:
                np.add.at(row, ids, 1)
        if self.mask_token is not None:
            out[:, 0] = 0  # the mask token is never counted
        if self.output_mode == "tf_idf":
            if self._idf is None:
                raise RuntimeError(
                    f"Layer `{self.name}` has no idf weights: adapt it or give `idf_weights`."
                )
            out[:, : self._idf.size] *= self._idf
        return out

    def backward(self, d_out: np.ndarray) -> None:
        raise RuntimeError(
            f"Layer `{self.name}` maps strings to ids, which have no gradient: apply it to the "
            "data before the model."
        )


@register
class StringLookup(_Vocabulary):
    """``keras.layers.StringLookup``: tokens -> integer ids (or one-hot, multi-hot, count,
    tf-idf vectors), and back with ``invert=True``.

    Args:
        max_tokens: cap on the vocabulary size, special tokens included (None: none).
        num_oov_indices: 1 (unknown tokens -> the OOV index) or 0 (unknown tokens raise).
        mask_token: a token mapped to 0 (None: no mask index, Keras's default here).
        oov_token: the OOV index's token (``"[UNK]"``).
        vocabulary: a list of tokens (else ``adapt``).
        idf_weights: with ``output_mode="tf_idf"`` and a given vocabulary.
        invert: ids -> tokens (``"int"`` mode only).
        output_mode: ``"int"`` (ids shaped like the input), ``"one_hot"`` (one row per
            token), ``"multi_hot"``, ``"count"`` or ``"tf_idf"`` (one row per example, the
            last input axis being the example's tokens).
        pad_to_max_tokens: vectors of width max_tokens.
    """

    def __init__(self, max_tokens: Optional[int] = None, num_oov_indices: int = 1,
                 mask_token: Optional[str] = None, oov_token: str = "[UNK]",
                 vocabulary: Any = None, idf_weights: Any = None, invert: bool = False,
                 output_mode: str = "int", pad_to_max_tokens: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self._setup(max_tokens, num_oov_indices, mask_token, oov_token, output_mode,
                    pad_to_max_tokens, idf_weights)
        self.invert = check_bool("invert", invert)
        if self.invert and self.output_mode != "int":
            raise ValueError(
                "Received an invalid value for argument `invert`: it needs output_mode='int', "
                f"got output_mode={self.output_mode!r}."
            )
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        self.built = True

    def adapt(self, data: Any, steps: Any = None) -> None:
        """Builds the vocabulary from the tokens of `data` (an array or list of strings;
        for tf_idf, each row of a 2-D array is one document)."""
        a = self._as_tokens("data", data)
        docs = [list(a.reshape(-1))] if a.ndim < 2 else [list(r) for r in a.reshape(
            -1, a.shape[-1])]
        if a.size == 0:
            raise ValueError(
                "Received an invalid value for argument `data`, it holds no tokens to adapt to."
            )
        self._adapt_tokens(docs)

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        if self.invert:
            ids = np.asarray(x)
            if ids.dtype.kind not in "iu" or (ids.size and (
                    ids.min() < 0 or ids.max() >= self.vocabulary_size())):
                raise ValueError(
                    f"Layer `{self.name}` (invert=True) expects integer ids in [0, "
                    f"{self.vocabulary_size()}), got {x!r}."
                )
            vocab = np.array(self.get_vocabulary(), dtype=object)
            out = vocab[ids]
            return out if self._as_tokens is _strings else out.astype(np.int64)
        a = self._as_tokens("inputs", x)
        ids = np.array(self._ids(a.reshape(-1).tolist()), dtype=np.int64).reshape(a.shape)
        if self.output_mode == "int":
            return ids
        if self.output_mode == "one_hot":
            out = np.zeros(ids.shape + (self._width(),), dtype=np.float32)
            np.put_along_axis(out, ids[..., None], 1, axis=-1)
            return out
        rows = ids.reshape(-1, ids.shape[-1]) if ids.ndim > 1 else ids.reshape(1, -1)
        out = self._vectors([list(r) for r in rows])
        return out.reshape(ids.shape[:-1] + (out.shape[-1],)) if ids.ndim > 1 else out[0]

    def get_config(self) -> dict:
        return {**super().get_config(), "max_tokens": self.max_tokens,
                "num_oov_indices": self.num_oov_indices, "mask_token": self.mask_token,
                "oov_token": self.oov_token, "vocabulary": self.get_vocabulary(False),
                "idf_weights": None if self._idf is None else
                self._idf[len(self._specials()):].tolist(),
                "invert": self.invert, "output_mode": self.output_mode,
                "pad_to_max_tokens": self.pad_to_max_tokens}


@register
class IntegerLookup(StringLookup):
    """``keras.layers.IntegerLookup``: integer tokens (e.g. raw category codes) -> contiguous
    ids, as StringLookup does for strings. Defaults as Keras: no mask token, one OOV index
    whose token is -1."""

    _as_tokens = staticmethod(_integers)

    def __init__(self, max_tokens: Optional[int] = None, num_oov_indices: int = 1,
                 mask_token: Optional[int] = None, oov_token: int = -1,
                 vocabulary: Any = None, vocabulary_dtype: str = "int64",
                 idf_weights: Any = None, invert: bool = False, output_mode: str = "int",
                 pad_to_max_tokens: bool = False, **kwargs: Any):
        if vocabulary_dtype not in ("int64", "int32"):
            raise ValueError(
                "Received an invalid value for argument `vocabulary_dtype`, expected 'int64' or "
                f"'int32', got {vocabulary_dtype!r}."
            )
        for name, value in (("mask_token", mask_token), ("oov_token", oov_token)):
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, (int, np.integer))):
                raise ValueError(
                    f"Received an invalid value for argument `{name}`, expected an integer or "
                    f"None, got {value!r}."
                )
        self.vocabulary_dtype = vocabulary_dtype
        super().__init__(max_tokens=max_tokens, num_oov_indices=num_oov_indices,
                         mask_token=None if mask_token is None else int(mask_token),
                         oov_token=int(oov_token), vocabulary=vocabulary,
                         idf_weights=idf_weights, invert=invert, output_mode=output_mode,
                         pad_to_max_tokens=pad_to_max_tokens, **kwargs)

    def get_config(self) -> dict:
        return {**super().get_config(), "vocabulary_dtype": self.vocabulary_dtype}


@register
class CategoryEncoding(Layer):
    """``keras.layers.CategoryEncoding``: integer ids in ``[0, num_tokens)`` -> vectors of
    width `num_tokens`.

    ``output_mode``: ``"one_hot"`` (one row per id; a trailing axis of 1 is dropped),
    ``"multi_hot"`` (default: one row per example, 1 where an id occurs) or ``"count"`` (how
    often it occurs; ``forward(x, count_weights=w)`` sums the weights instead). Examples are
    the rows of a 2-D input (a 1-D input is one example for multi_hot/count). No weights.
    """

    def __init__(self, num_tokens: Optional[int] = None, output_mode: str = "multi_hot",
                 sparse: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        if num_tokens is None:
            raise ValueError(
                "Received an invalid value for argument `num_tokens`, expected a positive "
                "integer, got None."
            )
        self.num_tokens = _check_optional_positive("num_tokens", num_tokens)
        self.output_mode = _check_mode(output_mode, ("one_hot", "multi_hot", "count"))
        if check_bool("sparse", sparse):
            raise NotImplementedError(
                "Received an unsupported value for argument `sparse`, fastrnn returns dense "
                "arrays, got True."
            )
        self.sparse = False
        self.built = True

    def forward(self, x: Any, training: bool = False, count_weights: Any = None
                ) -> np.ndarray:
        ids = _integers("inputs", x)
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_tokens):
            raise ValueError(
                f"Layer `{self.name}`: ids must be in [0, num_tokens) = [0, {self.num_tokens}), "
                f"got values from {int(ids.min())} to {int(ids.max())}."
            )
        if count_weights is not None and self.output_mode != "count":
            raise ValueError(
                "Received an invalid value for argument `count_weights`: it is only used with "
                f"output_mode='count', got output_mode={self.output_mode!r}."
            )
        if ids.ndim == 0:
            ids = ids.reshape(1)
        n = self.num_tokens
        if self.output_mode == "one_hot":
            if ids.ndim > 1 and ids.shape[-1] == 1:
                ids = ids[..., 0]
            out = np.zeros(ids.shape + (n,), dtype=np.float32)
            np.put_along_axis(out, ids[..., None], 1, axis=-1)
            return out
        rows = ids.reshape(1, -1) if ids.ndim == 1 else ids.reshape(ids.shape[0], -1)
        out = np.zeros((rows.shape[0], n), dtype=np.float32)
        if self.output_mode == "multi_hot":
            np.put_along_axis(out, rows, 1, axis=1)
        else:
            w = np.ones(rows.shape, np.float32) if count_weights is None else np.asarray(
                count_weights, dtype=np.float32).reshape(rows.shape)
            np.add.at(out, (np.arange(rows.shape[0])[:, None], rows), w)
        return out[0] if ids.ndim == 1 else out

    def backward(self, d_out: np.ndarray) -> None:
        raise RuntimeError(f"Layer `{self.name}` encodes ids, which have no gradient.")

    def get_config(self) -> dict:
        return {**super().get_config(), "num_tokens": self.num_tokens,
                "output_mode": self.output_mode, "sparse": self.sparse}


@register
class TextVectorization(_Vocabulary):
    """``keras.layers.TextVectorization``: strings -> token ids (or bag-of-words vectors).

    Each string is standardized (``"lower_and_strip_punctuation"`` by default, ``"lower"``,
    ``"strip_punctuation"``, None, or a function of one str), split (``"whitespace"``,
    ``"character"``, None, or a function str -> list of str), optionally extended with
    n-grams (``ngrams=2``: unigrams then bigrams joined by a space; a tuple picks the widths),
    then looked up.

    Args:
        max_tokens: vocabulary cap, special tokens included.
        output_mode: ``"int"``: ``(N, L)`` int64 ids (0 is padding, 1 is OOV), padded at the
            end to `output_sequence_length` (or the longest example) and truncated to it;
            ``"multi_hot"``, ``"count"``, ``"tf_idf"``: ``(N, vocabulary_size)`` float32.
        output_sequence_length: the ``"int"`` output length (None: the longest example).
        pad_to_max_tokens: vectors of width max_tokens.
        vocabulary, idf_weights: given instead of ``adapt``.

    Input: ``N`` strings (a list, ``(N,)`` or ``(N, 1)`` array). ``adapt(data)`` takes the
    same or an iterable of such batches.
    """

    def __init__(self, max_tokens: Optional[int] = None,
                 standardize: Any = "lower_and_strip_punctuation",
                 split: Any = "whitespace", ngrams: Any = None, output_mode: str = "int",
                 output_sequence_length: Optional[int] = None, pad_to_max_tokens: bool = False,
                 vocabulary: Any = None, idf_weights: Any = None, **kwargs: Any):
        super().__init__(**kwargs)
        mode = _check_mode(output_mode, ("int", "multi_hot", "count", "tf_idf"))
        self._setup(max_tokens, 1, "" if mode == "int" else None, "[UNK]", mode,
                    pad_to_max_tokens, idf_weights)
        if standardize not in (None, "lower_and_strip_punctuation", "lower",
                               "strip_punctuation") and not callable(standardize):
            raise ValueError(
                "Received an invalid value for argument `standardize`, expected None, "
                "'lower_and_strip_punctuation', 'lower', 'strip_punctuation' or a callable, "
                f"got {standardize!r}."
            )
        if split not in (None, "whitespace", "character") and not callable(split):
            raise ValueError(
                "Received an invalid value for argument `split`, expected None, 'whitespace', "
                f"'character' or a callable, got {split!r}."
            )
        self.standardize = standardize
        self.split = split
        if ngrams is not None and (
                isinstance(ngrams, bool) or not (isinstance(ngrams, int) and ngrams >= 1 or (
                    isinstance(ngrams, (tuple, list)) and ngrams and all(
                        isinstance(n, int) and not isinstance(n, bool) and n >= 1
                        for n in ngrams)))):
            raise ValueError(
                "Received an invalid value for argument `ngrams`, expected None, a positive "
                f"integer or a tuple of them, got {ngrams!r}."
            )
        if ngrams is not None and split is None:
            raise ValueError(
                "Received an invalid value for argument `ngrams`: n-grams need a `split`."
            )
        self.ngrams = ngrams
        self._widths = tuple(range(1, ngrams + 1)) if isinstance(ngrams, int) else (
            tuple(ngrams) if ngrams is not None else (1,))
        self.output_sequence_length = _check_optional_positive("output_sequence_length",
                                                               output_sequence_length)
        if self.output_sequence_length is not None and mode != "int":
            raise ValueError(
                "Received an invalid value for argument `output_sequence_length`: it is only "
                f"used with output_mode='int', got output_mode={mode!r}."
            )
        if vocabulary is not None:
            self.set_vocabulary(vocabulary, idf_weights)
        self.built = True

    def _tokens_of(self, text: str) -> list[str]:
        if self.standardize in ("lower", "lower_and_strip_punctuation"):
            text = text.lower()
        if self.standardize in ("strip_punctuation", "lower_and_strip_punctuation"):
            text = _PUNCTUATION.sub("", text)
        if callable(self.standardize):
            text = self.standardize(text)
        split: Any = self.split
        if split is None:
            return [text]
        words = text.split() if split == "whitespace" else list(text) \
            if split == "character" else list(split(text))
        if self._widths == (1,):
            return words
        out: list[str] = []
        for n in self._widths:
            out.extend(" ".join(words[i: i + n]) for i in range(len(words) - n + 1))
        return out

    def _examples(self, data: Any) -> list[str]:
        a = _strings("inputs", data)
        if a.ndim == 2 and a.shape[1] == 1:
            a = a[:, 0]
        if a.ndim == 0:
            a = a.reshape(1)
        if a.ndim != 1:
            raise ValueError(
                "Received an invalid value for argument `inputs`, TextVectorization takes N "
                f"strings, shape (N,) or (N, 1), got shape {a.shape}."
            )
        return list(a)

    def adapt(self, data: Any, batch_size: Any = None, steps: Any = None) -> None:
        """Builds the vocabulary (and idf weights) from `data`: strings, or an iterable of
        batches of strings (or of ``(strings, labels)`` pairs)."""
        if isinstance(data, (str, bytes)):
            data = [data]
        if isinstance(data, (list, tuple, np.ndarray)) and (len(data) == 0 or isinstance(
                data[0], (str, bytes)) or (isinstance(data, np.ndarray) and data.dtype.kind
                                           in "OUS")):
            batches: Iterable = [data]
        else:
            batches = data

        def documents():
            for k, batch in enumerate(batches):
                if steps is not None and k >= steps:
                    break
                if isinstance(batch, tuple):
                    batch = batch[0]
                for text in self._examples(batch):
                    yield self._tokens_of(text)

        self._adapt_tokens(documents())

    def forward(self, x: Any, training: bool = False) -> np.ndarray:
        docs = [self._ids(self._tokens_of(t)) for t in self._examples(x)]
        if self.output_mode != "int":
            return self._vectors(docs)
        length = self.output_sequence_length or max((len(d) for d in docs), default=0)
        out = np.zeros((len(docs), length), dtype=np.int64)
        for row, ids in zip(out, docs):
            ids = ids[:length]
            row[: len(ids)] = ids
        return out

    def get_config(self) -> dict:
        if callable(self.standardize) or callable(self.split):
            raise NotImplementedError(
                f"Layer `{self.name}` has a callable `standardize` or `split`, which a config "
                "cannot hold (fastrnn's files hold no code)."
            )
        return {**super().get_config(), "max_tokens": self.max_tokens,
                "standardize": self.standardize, "split": self.split,
                "ngrams": list(self.ngrams) if isinstance(self.ngrams, (tuple, list))
                else self.ngrams,
                "output_mode": self.output_mode,
                "output_sequence_length": self.output_sequence_length,
                "pad_to_max_tokens": self.pad_to_max_tokens,
                "vocabulary": self.get_vocabulary(False),
                "idf_weights": None if self._idf is None else
                self._idf[len(self._specials()):].tolist()}

