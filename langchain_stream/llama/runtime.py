"""Loaded llama.cpp models: one per file and settings, each behind its own lock.

Every GGUF file the package runs in process is loaded here: the local tier, the LLM judge, the
conversation summarizer and the HPC worker's in-process backend. Before llama.cpp sees a file
its structure is checked (:mod:`~langchain_stream.llama.gguf_file`), and whether llama.cpp's
extra buffer types are safe on this CPU is decided (:mod:`~langchain_stream.llama.extra_buffers`),
so neither a bad file nor a CPU path that faults can crash the caller's process.

A ``llama_cpp.Llama`` is not thread-safe, so every generation holds a turn on the model
(:mod:`~langchain_stream.llama.turns`) for as long as it runs. Turns go to the lightest waiting
work first, and the prompt is read in slices between which a heavy request gives way to lighter
ones and checks its deadline: one huge prompt cannot hold the model while short requests wait.
Models are shared by every chat model that asks for the same file and
settings, loaded once, and warmed up at load (the first evaluation is several times slower
than the next ones).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_stream.errors import ModelLoadError, TierUnavailableError
from langchain_stream.llama.extra_buffers import ExtraBuffersDecision, decide, new_llama
from langchain_stream.llama.gguf_file import GGUFInfo, check_gguf_file
from langchain_stream.llama.turns import NO_CUTOFF, Cutoff, ModelTurns, Turn
from langchain_stream.llama.vision import projector_handler, warm_up_image

if TYPE_CHECKING:
    from llama_cpp import Llama, LlamaGrammar

PREFILL_SLICE_TOKENS = 128
"""Prompt tokens read between two looks at the deadline and at lighter waiting requests: about a
second of work for a small model on one core, so a short request waits at most about that long."""


_LLAMA_OPTIONS = ("temperature", "top_p", "repeat_penalty", "stop")


@dataclass(frozen=True)
class Sampling:
    """How a generation samples its tokens and when it ends on its own."""

    max_tokens: int | None
    """Most tokens to write; ``None``: as many as the context window leaves."""
    temperature: float
    stop: list[str] = field(default_factory=list)
    """Strings that end the answer (not included in it)."""
    seed: int | None = None
    """Seeds the model's sampler before the answer; ``None`` leaves it as it is."""
    top_p: float = 0.95
    repeat_penalty: float = 1.0

    def llama_options(self) -> dict[str, Any]:
        """The keyword arguments of llama-cpp-python's completion calls this sets."""
        return {name: getattr(self, name) for name in _LLAMA_OPTIONS}


@dataclass
class GenerationStats:
    """Filled in by :meth:`LlamaModel.generate` as it runs."""

    prompt_tokens: int = 0
    output_tokens: int = 0
    """Tokens sampled by the model, the end-of-generation token included."""
    finish_reason: str | None = None


@dataclass
class LlamaModel:
    """A loaded GGUF model with its turns and chat formatter."""

    path: Path
    llama: Llama
    n_ctx: int
    extra_buffers: ExtraBuffersDecision
    """Whether llama.cpp's extra buffer types are in use, and why."""
    turns: ModelTurns = field(default_factory=ModelTurns)
    """Who runs on the model, one request at a time, lightest first."""
    projector: Path | None = None
    """The vision projector (mmproj) GGUF the model reads images with; ``None``: text only."""
    _formatter: Any = None

    @property
    def name(self) -> str:
        """The file name without its extension, used as the model name."""
        return self.path.stem

    def tokenize(self, text: str) -> list[int]:
        """Tokens of ``text`` with special tokens parsed, no BOS added."""
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def format_prompt(self, messages: list[dict[str, str]]) -> tuple[str, list[str], bool]:
        """Render role/content messages with the model's chat template.

        Returns:
            The prompt text, the template's stop strings, and whether the template already
            added the BOS token.
        """
        response = self._formatter(messages=messages)
        stop = response.stop if isinstance(response.stop, list) else [response.stop]
        return response.prompt, [s for s in stop if s], bool(response.added_special)

    def prompt_tokens(self, prompt: str, added_special: bool) -> list[int]:
        """Tokens of a rendered prompt, with BOS when the template did not add it."""
        return self.llama.tokenize(prompt.encode("utf-8"), add_bos=not added_special, special=True)

    def generate(
        self,
        prompt_tokens: list[int],
        sampling: Sampling,
        *,
        grammar: LlamaGrammar | None = None,
        stats: GenerationStats | None = None,
        cutoff: Cutoff = NO_CUTOFF,
    ) -> Iterator[str]:
        """Yield the completion's text pieces as llama.cpp produces them, holding a turn.

        Args:
            cutoff: when to stop early; its deadline covers waiting for the turn too.

        Raises:
            TierUnavailableError: the prompt does not fit the context window.
            TierDeadlineError: the deadline passed (waiting, reading the prompt or writing).
        """
        stats = stats if stats is not None else GenerationStats()
        stats.prompt_tokens = len(prompt_tokens)
        room = self.n_ctx - len(prompt_tokens)
        if room <= 0:
            raise TierUnavailableError(
                f"the prompt has {len(prompt_tokens)} tokens; the local model's context "
                f"window is {self.n_ctx}",
                tier="local",
            )
        max_tokens = sampling.max_tokens
        limit = room if max_tokens is None else min(max_tokens, room)

        calls = 0
        out_of_time = False

        def count_sampled(_ids: Any, _logits: Any) -> bool:
            # llama-cpp-python calls this once per sampled token, plus once more when the
            # completion ends: an exact output-token count, which its streaming API lacks.
            nonlocal calls, out_of_time
            calls += 1
            out_of_time = cutoff.past()
            return out_of_time or cutoff.cancelled

        from llama_cpp import StoppingCriteriaList

        with self.turns.take(len(prompt_tokens), cutoff) as turn:
            self._read_prompt(prompt_tokens, turn, cutoff)
            if cutoff.cancelled:
                stats.finish_reason = "cancelled"  # left while the prompt was being read
                return
            self._seed(sampling)
            pieces = self.llama.create_completion(
                prompt_tokens,
                max_tokens=limit,
                stream=True,
                grammar=grammar,
                stopping_criteria=StoppingCriteriaList([count_sampled]),
                **sampling.llama_options(),
            )
            try:
                for piece in pieces:
                    choice = piece["choices"][0]
                    if choice["text"]:
                        yield choice["text"]
                    if choice.get("finish_reason"):
                        stats.finish_reason = choice["finish_reason"]
            finally:
                pieces.close()
                stats.output_tokens = calls - 1 if stats.finish_reason else calls
        if cutoff.cancelled:
            stats.finish_reason = "cancelled"
        elif out_of_time:
            raise cutoff.passed("writing the answer")

    def chat(
        self,
        messages: list[dict[str, Any]],
        sampling: Sampling,
        *,
        stats: GenerationStats | None = None,
        cutoff: Cutoff = NO_CUTOFF,
        weight: int = 1,
    ) -> Iterator[str]:
        """Yield the answer to OpenAI-style ``messages`` with images, holding a turn.

        The projector's chat handler renders the messages and reads the images; every image
        must be a ``data:`` URL (the caller checks: llama-cpp-python would fetch a URL).

        Args:
            weight: The turn's weight, an estimate of the prompt's tokens (images included).

        Raises:
            ModelLoadError: The model has no projector.
            TierDeadlineError: The deadline passed.
        """
        if self.projector is None:
            raise ModelLoadError(f"{self.path.name} has no vision projector", path=str(self.path))
        stats = stats if stats is not None else GenerationStats()
        with self.turns.take(weight, cutoff):
            self._seed(sampling)
            pieces: Any = iter(())
            try:
                # The handler reads the prompt and the images here, before the first token.
                pieces = self.llama.create_chat_completion(
                    messages=messages,
                    max_tokens=sampling.max_tokens,
                    stream=True,
                    **sampling.llama_options(),
                )
                for piece in pieces:
                    choice = piece["choices"][0]
                    text = choice["delta"].get("content")
                    if text:
                        stats.output_tokens += 1  # one streamed chunk per sampled token
                        yield text
                    if choice.get("finish_reason"):
                        stats.finish_reason = choice["finish_reason"]
                    if cutoff.cancelled or cutoff.past():
                        break
            finally:
                if hasattr(pieces, "close"):
                    pieces.close()
                stats.prompt_tokens = max(self.llama.n_tokens - stats.output_tokens, 0)
                # The cache now holds image embeddings under stale token ids: a text prompt
                # must not take them for a shared prefix.
                self.llama.reset()
        if cutoff.cancelled:
            stats.finish_reason = "cancelled"
        elif cutoff.past():
            raise cutoff.passed("writing the answer")

    def _seed(self, sampling: Sampling) -> None:
        if sampling.seed is not None:
            self.llama.set_seed(sampling.seed)

    def _read_prompt(self, tokens: list[int], turn: Turn, cutoff: Cutoff) -> None:
        """Evaluate all but the last prompt token, in slices; the completion then finds them in
        the cache and reads only the last one.

        Between slices the deadline is checked and, when a request with less prompt left waits,
        this one's progress is set aside (the model's saved state), the lighter one runs, and the
        state is restored: a heavy prompt delays short requests by one slice at most.
        """
        llama = self.llama
        target = tokens[:-1]
        # Keep what the cache already holds of this prompt (a shared system prompt, say).
        llama.n_tokens = _common_prefix(llama.input_ids[: llama.n_tokens], target)
        while llama.n_tokens < len(target):
            if cutoff.cancelled:
                return  # the caller left: the rest of the prompt is not worth reading
            if cutoff.past():
                raise cutoff.passed("reading the prompt")
            left = len(target) - llama.n_tokens
            if turn.should_give_way(left):
                progress = llama.save_state()
                turn.give_way(left, cutoff)
                llama.load_state(progress)
            start = llama.n_tokens
            llama.eval(target[start : start + PREFILL_SLICE_TOKENS])


def _common_prefix(cached: Any, tokens: list[int]) -> int:
    common = 0
    for held, wanted in zip(cached, tokens, strict=False):
        if held != wanted:
            break
        common += 1
    return common


_REGISTRY: dict[tuple[str, int, int, str | None], LlamaModel] = {}
_REGISTRY_LOCK = threading.Lock()


def load_model(
    path: Path, *, n_ctx: int, n_threads: int | None = None, projector: Path | None = None
) -> LlamaModel:
    """Load (once per process) and warm up the GGUF model at ``path``.

    Args:
        projector: The model's vision projector (mmproj) GGUF; with it the model reads images.

    Raises:
        ModelLoadError: the file (or the projector) is missing, a directory, not GGUF,
            truncated or corrupt, llama.cpp rejects it, or llama.cpp crashes on it (found by a
            child process).
    """
    path = path.expanduser().resolve()
    projector = projector.expanduser().resolve() if projector is not None else None
    # Half the logical cores, as llama-cpp-python does: llama.cpp's workers spin at their
    # barriers, so leaving a core free keeps the streaming thread from stalling them.
    threads = n_threads or max((os.cpu_count() or 2) // 2, 1)
    key = (str(path), n_ctx, threads, str(projector) if projector else None)
    with _REGISTRY_LOCK:
        model = _REGISTRY.get(key)
        if model is None:
            model = _load_uncached(path, n_ctx=n_ctx, n_threads=threads, projector=projector)
            _REGISTRY[key] = model
    return model


def extra_buffers_for(info: GGUFInfo) -> ExtraBuffersDecision:
    """The extra-buffer decision for a checked file, under the process's settings."""
    from langchain_stream.config import get_settings

    settings = get_settings()
    return decide(
        info.path,
        info.quantization,
        mode=settings.local_extra_buffers,
        cache_dir=settings.cache_dir,
    )


def _load_uncached(
    path: Path, *, n_ctx: int, n_threads: int, projector: Path | None = None
) -> LlamaModel:
    info = check_gguf_file(path)
    try:
        import llama_cpp  # noqa: F401  (a clear error before the probe needs it)
    except ImportError as exc:
        raise ModelLoadError(
            "the local tier needs llama-cpp-python: pip install 'langchain-stream[local]'"
        ) from exc
    extra_buffers = extra_buffers_for(info)
    vision: dict[str, Any] = {}
    if projector is not None:
        vision["chat_handler"] = projector_handler(projector)
    try:
        llama = new_llama(
            path,
            extra_buffers=extra_buffers.enabled,
            n_ctx=n_ctx,
            n_threads=n_threads,
            n_threads_batch=n_threads,
            **vision,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise ModelLoadError(
            f"llama.cpp could not load {path}: {exc} (is the file complete and a GGUF model?)",
            path=str(path),
        ) from exc
    # Free it at exit while llama_cpp's module globals still exist: left to Llama.__del__ during
    # interpreter teardown, freeing can fail (depending on module teardown order) and print noise.
    atexit.register(llama.close)
    model = LlamaModel(
        path=path,
        llama=llama,
        n_ctx=n_ctx,
        extra_buffers=extra_buffers,
        projector=projector,
        _formatter=_chat_formatter(llama),
    )
    _warm_up(model)
    if projector is not None:
        _warm_up_vision(model, projector)
    return model


def _chat_formatter(llama: Llama) -> Any:
    """The model's own chat template, or ChatML when the GGUF carries none."""
    from llama_cpp import llama_chat_format

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return llama_chat_format.format_chatml
    eos_id, bos_id = llama.token_eos(), llama.token_bos()
    return llama_chat_format.Jinja2ChatFormatter(
        template=template,
        eos_token=llama._model.token_get_text(eos_id) if eos_id != -1 else "",
        bos_token=llama._model.token_get_text(bos_id) if bos_id != -1 else "",
        stop_token_ids=[eos_id],
    )


def _warm_up_vision(model: LlamaModel, projector: Path) -> None:
    """Read one small image, so a projector llama.cpp cannot use fails here, at load."""
    image = {"type": "image_url", "image_url": {"url": warm_up_image()}}
    messages = [{"role": "user", "content": [image, {"type": "text", "text": "Hi"}]}]
    try:
        for _ in model.chat(messages, Sampling(max_tokens=1, temperature=0.0)):
            pass
    except ValueError as exc:  # llama-cpp-python's error for a projector it cannot load
        model.llama.close()
        raise ModelLoadError(
            f"llama.cpp could not use the projector {projector} with {model.path.name}: {exc}",
            path=str(projector),
        ) from exc


def _warm_up(model: LlamaModel) -> None:
    """Run one short generation so the first real request pays no first-evaluation cost."""
    prompt, stop, added = model.format_prompt([{"role": "user", "content": "Hi"}])
    sampling = Sampling(max_tokens=2, temperature=0.0, stop=stop)
    for _ in model.generate(model.prompt_tokens(prompt, added), sampling):
        pass
