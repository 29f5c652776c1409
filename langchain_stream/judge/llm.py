"""The LLM judge: one forward pass of a local GGUF model, class probabilities from its logits.

How a judgment runs (docs/design.md#judge):

- The prompt is a fixed **prefix** (the rubric, the instructions and few-shot examples as
  earlier chat turns), then the query, then a short fixed **suffix** (a one-line reminder of
  the question, the end of the user turn and the assistant header: about 20 tokens).
- The prefix is evaluated once, at load, into the KV cache of the judge's llama.cpp context.
  Each judgment removes whatever followed the prefix from the cache and evaluates only the
  query's tokens and the suffix, in one ``llama_decode`` call: one forward pass.
- The logits at the last position are the model's next-token distribution. The judge reads the
  logits of the label tokens (the first token of ``LOW``, ``MEDIUM``, ``HIGH`` in a few
  spellings), sums them per class and normalises over the three classes. Nothing is sampled.

Sharing the model with the local tier: the weights come from
:func:`~langchain_stream.llama.runtime.load_model`, so when the judge's GGUF file is the
local tier's they are loaded once and shared. The judge evaluates in a **second llama.cpp
context on those weights**, with its own KV cache and its own lock, rather than in the tier's
context under the tier's lock:

- a context has one KV cache. Judging in the tier's context would evict the tier's cached chat
  prompt (which it reuses between turns) at every judgment, and the tier's answers would evict
  the judge's prefix, so every judgment would re-evaluate the whole prefix;
- the tier holds its lock for a whole streamed answer; judging under it would make every
  routing decision wait for answers in progress;
- weights are read-only during evaluation, so the two contexts may run at once; each context
  is used under its own lock (a llama.cpp context is not thread-safe). A second ``Llama`` on the
  same file would work too, but it loads (and, for repacked quantisations, copies) the weights
  again.

The judge's context costs a KV cache of ``n_ctx`` tokens (prefix + the longest query kept +
suffix, about 1,200 tokens): about 28 MB for SmolLM2-135M, about 135 MB for Llama-3.2-3B.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_stream.errors import ModelLoadError
from langchain_stream.judge.base import Complexity, Judgment
from langchain_stream.judge.trained import context_text, is_followup, judge_query, softmax

if TYPE_CHECKING:
    from langchain_stream.llama.runtime import LlamaModel

CLASSES: tuple[Complexity, ...] = (Complexity.LOW, Complexity.MEDIUM, Complexity.HIGH)

# Longest query evaluated, in tokens: longer ones keep their start (usually the question) and
# end. Bounds the latency of huge pastes and the size of the judge's context.
MAX_QUERY_TOKENS = 384
_TAIL_TOKENS = 96
_MAX_CONTEXT_CHARS = 400
# Batch size of the judge's context (at least one whole judgment).
_N_BATCH = 512
# Context size of a model loaded for the judge only (not shared with the local tier): the
# Llama object's own context is never used by the judge, so it is kept at the minimum.
_JUDGE_ONLY_N_CTX = 256

SYSTEM_PROMPT = """\
You sort a user's query by the depth of reasoning a good answer needs. Topic, length and \
vocabulary are not the signal.

LOW: one retrievable fact, a definition, a yes/no, a unit conversion, a greeting or \
pleasantry. No chain of reasoning.
MEDIUM: a standard, well-known procedure, or explaining and relating two to four concepts: a \
textbook explanation, a routine calculation, a comparison, a short how-to, a small piece of \
code.
HIGH: a reasoning path that is not standard: a multi-step proof or derivation, a diagnosis \
from specific evidence, design under several constraints, judgement between competing \
positions, research-level synthesis, non-trivial code or debugging, analysis of specific data.

A standard technique applied to a non-standard case is HIGH. "Explain X" is MEDIUM for a \
textbook concept and HIGH when X is an open or contested question. Exam questions are labeled \
by the reasoning needed to pick the answer. Follow-ups take the class of what they ask.

Answer with one word: low, medium or high."""

# Few-shot examples, taken from the earlier one-author corpus (author a0 of data/complexity, never
# an author the judges are scored on), given to the model as earlier chat turns.
FEW_SHOT: tuple[tuple[str, Complexity], ...] = (
    ("What does TLS stand for?", Complexity.LOW),
    (
        "Explain how compound interest works and compute 1,000 € at 5% for 10 years.",
        Complexity.MEDIUM,
    ),
    (
        "Should we rewrite our legacy PHP monolith (400k lines, 15 years old, no tests) or "
        "refactor it incrementally? Build the decision framework.",
        Complexity.HIGH,
    ),
    ("capital of Portugal", Complexity.LOW),
    ("Write a function to compute the median of a list.", Complexity.MEDIUM),
    ("how do I decide where to live?", Complexity.HIGH),
    ("Convert 5 eV to kJ/mol.", Complexity.LOW),
    ("Compare utilitarianism and deontology with an example.", Complexity.MEDIUM),
    (
        "Let G be a finite group in which every element satisfies g^2 = e. Prove G is "
        "isomorphic to (Z/2)^n.",
        Complexity.HIGH,
    ),
    ('quick q, what does "LGTM" mean in a code review?', Complexity.LOW),
    (
        "How do I write a Slurm script that runs a 100-task job array, each task using 4 cores "
        "and 8 GB?",
        Complexity.MEDIUM,
    ),
    (
        'Is the "marshmallow test" evidence that self-control predicts life outcomes? '
        "Evaluate the Watts et al. replication and what it implies.",
        Complexity.HIGH,
    ),
)

_QUERY_HEADER = "Query:\n"
# Repeating the question after the query costs ~15 tokens per judgment. On the dev split it
# lifted the embedded model's macro-F1 from 0.39 to 0.62 once calibrated (0.38 to 0.46 without).
_QUERY_FOOTER = "\n\nDepth of reasoning needed (low, medium or high)?"
_FOLLOWUP_HEADER = "Earlier in the conversation:\n{context}\n\nQuery (a follow-up):\n"


@dataclass
class LLMJudgeStats:
    """What the judge's context has evaluated since it loaded."""

    prefix_tokens: int = 0
    """Tokens of the fixed prefix (rubric, instructions, examples)."""
    prefix_evaluations: int = 0
    """How many times the prefix was evaluated: 1 once loaded, whatever the judgments."""
    judgments: int = 0
    """Judgments that ran a forward pass (empty and binary input do not)."""
    evaluated_tokens: int = 0
    """Every token evaluated by the context, the prefix included."""
    forward_passes: int = 0
    """``llama_decode`` calls: those of the prefix, then one per judgment."""
    last_query_tokens: int = 0
    """Tokens evaluated by the last judgment (its query and the suffix)."""


def _render(model: LlamaModel, turns: list[dict[str, str]]) -> tuple[str, str, bool]:
    """The prompt split at the query (text before it, text after it), and whether the chat
    template already added the BOS token."""
    marker = "\x00QUERY\x00"
    content = marker + _QUERY_FOOTER
    prompt, _, added_special = model.format_prompt([*turns, {"role": "user", "content": content}])
    before, found, after = prompt.partition(marker)
    if not found:
        raise ModelLoadError(f"the chat template of {model.path} drops the user's message")
    return before, after, added_special


class _JudgeContext:
    """The judge's llama.cpp context on loaded weights, with the prefix in its KV cache."""

    def __init__(self, model: LlamaModel, n_threads: int | None = None) -> None:
        import llama_cpp

        self.model = model
        llama = model.llama
        self.lock = threading.Lock()
        self.stats = LLMJudgeStats()

        turns = [{"role": "system", "content": SYSTEM_PROMPT}]
        for text, label in FEW_SHOT:
            turns.append({"role": "user", "content": _QUERY_HEADER + text + _QUERY_FOOTER})
            # Lower case: single tokens in common vocabularies, and small models follow it
            # better than upper case (measured on the dev split).
            turns.append({"role": "assistant", "content": label.value.lower()})
        before, after, added_special = _render(model, turns)
        # BOS as the local tier adds it: when the model wants one and the template did not.
        self.prefix = llama.tokenize(
            before.encode("utf-8"), add_bos=not added_special, special=True
        )
        self.suffix = self._tokenize(after, special=True)
        self.label_tokens = _label_tokens(llama)

        # One batch holds a whole judgment (header, query, suffix): one forward pass.
        self.n_batch = max(_N_BATCH, MAX_QUERY_TOKENS + len(self.suffix))
        n_ctx = len(self.prefix) + MAX_QUERY_TOKENS + len(self.suffix)
        params = llama_cpp.llama_context_params.from_buffer_copy(llama.context_params)
        params.n_ctx = n_ctx
        params.n_batch = params.n_ubatch = self.n_batch
        params.n_seq_max = 1
        if n_threads:
            params.n_threads = params.n_threads_batch = n_threads
        try:
            self.native = _NativeContext(llama.model, params, self.n_batch)
        except (ValueError, RuntimeError) as exc:
            raise ModelLoadError(
                f"llama.cpp could not create the judge's context on {model.path}: {exc}",
                path=str(model.path),
            ) from exc
        self.n_ctx = n_ctx
        self.n_vocab = llama.n_vocab()
        with self.lock:
            self._decode(self.prefix, n_past=0)
            self.stats.prefix_tokens = len(self.prefix)
            self.stats.prefix_evaluations += 1

    def _tokenize(self, text: str, *, special: bool) -> list[int]:
        return self.model.llama.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def _decode(self, tokens: Sequence[int], n_past: int) -> None:
        """Evaluate ``tokens`` at positions ``n_past...``, one batch at a time."""
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            self.native.decode(chunk, n_past=n_past + start)
            self.stats.evaluated_tokens += len(chunk)
            self.stats.forward_passes += 1

    def query_tokens(self, text: str, context: str) -> list[int]:
        """The tokens that follow the prefix for one query: header, query, suffix."""
        header = _FOLLOWUP_HEADER.format(context=context) if context else _QUERY_HEADER
        # The user's text is tokenized without special tokens, so it cannot close the user
        # turn or open another one (a query cannot rewrite the judge's prompt).
        head = self._tokenize(header, special=True)
        body = self._tokenize(text, special=False)
        if len(head) > MAX_QUERY_TOKENS // 2:
            head = head[-(MAX_QUERY_TOKENS // 2) :]
        room = MAX_QUERY_TOKENS - len(head)
        if len(body) > room:
            body = body[: room - _TAIL_TOKENS] + body[-_TAIL_TOKENS:]
        return head + body + self.suffix

    def label_logits(self, tokens: list[int]) -> np.ndarray:
        """One forward pass over ``tokens`` after the prefix; log-scores of LOW/MEDIUM/HIGH."""
        with self.lock:
            # Drop the previous query from the cache: only the prefix stays.
            self.native.forget_from(len(self.prefix))
            self._decode(tokens, n_past=len(self.prefix))
            pointer = self.native.last_logits()
            logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
            out = np.array(
                [np.logaddexp.reduce(logits[ids].astype(np.float64)) for ids in self.label_tokens]
            )
            self.stats.judgments += 1
            self.stats.last_query_tokens = len(tokens)
        return out

    def close(self) -> None:
        """Free the context and its batch (the weights stay with their model)."""
        self.native.close()


class _NativeContext:
    """A llama.cpp context and batch of the judge's own on a loaded model, through llama.cpp's
    C API (``llama_cpp``'s bindings): one sequence, logits of the last position only.

    The context must be freed before its model: the model is closed at interpreter exit
    (:func:`~langchain_stream.llama.runtime.load_model` registers that), and this context is
    made after the model was loaded, so its own exit hook, registered later, runs first.
    """

    def __init__(self, model: Any, params: Any, n_batch: int) -> None:
        import llama_cpp

        self._ctx = llama_cpp.llama_init_from_model(model, params)
        if not self._ctx:
            raise ValueError("llama.cpp could not create a context")
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        atexit.register(self.close)

    @property
    def pointer(self) -> Any:
        """The ``llama_context *`` (``None`` once closed)."""
        return self._ctx

    def decode(self, tokens: Sequence[int], *, n_past: int) -> None:
        """Evaluate ``tokens`` (at most the batch size) at positions ``n_past...``."""
        import llama_cpp

        batch = self._batch
        batch.n_tokens = len(tokens)
        for i, token in enumerate(tokens):
            batch.token[i] = token
            batch.pos[i] = n_past + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = i == len(tokens) - 1
        code = llama_cpp.llama_decode(self._ctx, batch)
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")

    def forget_from(self, position: int) -> None:
        """Drop the cached positions from ``position`` on."""
        import llama_cpp

        llama_cpp.llama_memory_seq_rm(self._memory, 0, position, -1)

    def last_logits(self) -> Any:
        """A pointer to the logits of the last evaluated position."""
        import llama_cpp

        return llama_cpp.llama_get_logits_ith(self._ctx, -1)

    def close(self) -> None:
        """Free the batch and the context (once)."""
        import llama_cpp

        if self._ctx is None:
            return
        atexit.unregister(self.close)
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._ctx)
        self._ctx = None


def _label_tokens(llama: Any) -> list[list[int]]:
    """Per class, the first tokens of its label's spellings, none shared between classes.

    First tokens of one character ("H" of "HIGH" in some vocabularies) begin too many other
    words to stand for a label, so they are left out when a longer one exists.
    """
    candidates: list[set[int]] = []
    for label in CLASSES:
        ids = set()
        for form in (label.value, label.value.capitalize(), label.value.lower()):
            tokens = llama.tokenize(form.encode("utf-8"), add_bos=False, special=False)
            if tokens:
                ids.add(tokens[0])
        long_ids = {
            t for t in ids if len(llama.detokenize([t]).decode("utf-8", "replace").strip()) > 1
        }
        candidates.append(long_ids or ids)
    shared = set.union(*(a & b for i, a in enumerate(candidates) for b in candidates[i + 1 :]))
    out = [sorted(ids - shared) for ids in candidates]
    if not all(out):
        raise ModelLoadError("the model's vocabulary cannot tell the labels LOW/MEDIUM/HIGH apart")
    return out


class LLMJudge:
    """A judge on a local instruct model (name ``"llm"``): label probabilities from one pass.

    Meant for a capable local GGUF (e.g. a 3B instruct model); it also runs on the embedded
    SmolLM2-135M, which is too small to judge well. Construction does no I/O; the model loads
    and the prompt prefix is evaluated on first use or on :meth:`load`.

    Args:
        model_path: GGUF file; ``None`` means ``judge_model`` from the settings, else the local
            tier's model (the embedded SmolLM2-135M-Instruct unless ``local_model`` is set).
        n_threads: llama.cpp threads of the judge's context; ``None`` means the local tier's
            setting (``local_n_threads``, else half the logical cores).
    """

    name = "llm"

    def __init__(self, model_path: str | Path | None = None, *, n_threads: int | None = None):
        self._model_path = Path(model_path) if model_path is not None else None
        self._n_threads = n_threads
        self._context: _JudgeContext | None = None
        self._load_lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        """The GGUF file this judge runs."""
        from langchain_stream.config import get_settings
        from langchain_stream.llama.embedded import embedded_model_path

        if self._model_path is not None:
            return self._model_path
        settings = get_settings()
        chosen = settings.judge_model or settings.local_model
        return Path(chosen) if chosen else embedded_model_path()

    @property
    def stats(self) -> LLMJudgeStats:
        """Tokens evaluated so far (the prefix once, then each query's tokens)."""
        return self.load().stats

    def load(self) -> _JudgeContext:
        """Load the model (shared with the local tier when it is the same file) and evaluate
        the prompt prefix into the judge's KV cache; later calls return at once.

        Raises:
            ModelLoadError: the file is missing or not a GGUF model, or llama.cpp rejects it.
        """
        if self._context is None:
            with self._load_lock:
                if self._context is None:
                    self._context = _JudgeContext(self._load_weights(), self._n_threads)
        return self._context

    def _load_weights(self) -> LlamaModel:
        from langchain_stream.config import get_settings
        from langchain_stream.llama.embedded import embedded_model_path
        from langchain_stream.llama.runtime import load_model

        settings = get_settings()
        path = self.model_path.expanduser()
        local = Path(settings.local_model) if settings.local_model else embedded_model_path()
        if path.resolve() == local.expanduser().resolve():
            # The local tier's own load (same registry key): the weights are loaded once. The
            # judge's thread count applies to its own context only.
            return load_model(path, n_ctx=settings.local_n_ctx, n_threads=settings.local_n_threads)
        return load_model(
            path, n_ctx=_JUDGE_ONLY_N_CTX, n_threads=self._n_threads or settings.local_n_threads
        )

    def judge(self, query: str, context: Sequence[str] = ()) -> Judgment:
        """Judge ``query``; ``context`` (previous turns, most recent last) helps follow-ups.

        Empty, blank and binary input is LOW without a forward pass (nothing to reason about);
        long input keeps its first and last tokens, so latency stays bounded.
        """
        return judge_query(self.name, query, context, self._proba)

    def _proba(self, text: str, context: Sequence[str]) -> np.ndarray:
        judge_context = self.load()
        earlier = ""
        if is_followup(text, context):
            earlier = context_text(context)[-_MAX_CONTEXT_CHARS:]
        return softmax(judge_context.label_logits(judge_context.query_tokens(text, earlier)))


__all__ = ["FEW_SHOT", "MAX_QUERY_TOKENS", "SYSTEM_PROMPT", "LLMJudge", "LLMJudgeStats"]
