"""A conversation's running summary, written by the local model and extended turn by turn.

Older turns are folded into a :class:`ConversationSummary` once, when they leave the verbatim
part of the prompt; later requests reuse the summary and fold only the turns that newly left
(docs/design.md#context). Each turn gets a short note from the local model, whose input is
sized to the local model's own window (a turn too long for it is split into chunks, each
summarized). A summary over its bound is re-summarized, then trimmed.

Small models drop exactly the details people come back to — a name, a number, "my flight is
BA2490" — so the user's own sentences that state such a detail, when the model's note lost it,
are kept verbatim beside the notes (``details``), within the same bound.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from pydantic import BaseModel, Field

from langchain_stream.context.tokens import TokenCounter

NOTE_SYSTEM = "You summarize conversations."
NOTE_PROMPT = (
    "Summarize this conversation in one sentence, starting with 'The user asked':\n\n{text}"
)
COMPACT_PROMPT = (
    "Shorten these notes about a conversation to three sentences. Keep names and numbers.\n\n{text}"
)
# Details kept per turn, and their length: enough for "my locker code is 4821", not a paragraph.
MAX_DETAILS_PER_TURN = 3
MAX_DETAIL_CHARS = 200
# Slack for a chunk's tokens differing inside the prompt from on their own.
_CHUNK_MARGIN_TOKENS = 16
_COMPACT_ROUNDS = 3

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_FIRST_PERSON = re.compile(r"\b(?:I|I'm|I've|I'd|I'll|my|mine|me|we|our|us)\b", re.IGNORECASE)
_NUMBER = re.compile(r"\b\w*\d[\w./:-]*")
_CAPITALIZED = re.compile(r"\b[A-Z][\w'-]+")
_STATES_OWN = re.compile(r"\b(?:my|our)\s+(?:\w+\s+){0,3}?(?:is|are|was|were|'s)\b", re.I)
_NOT_NAMES = frozenset({"I", "I'm", "I've", "I'd", "I'll"})

SUMMARIZE_RUN_NAME = "stream-summarize"
"""The name of the summarizer's chat-model runs (a callback handler tells them apart by it)."""


class ConversationSummary(BaseModel):
    """The older part of a conversation, folded into notes (kept in the router's state)."""

    notes: list[str] = Field(default_factory=list)
    """One note per folded turn (or chunk of a long turn), written by the local model."""
    details: list[str] = Field(default_factory=list)
    """The user's own sentences stating a detail (name, number, "my … is …") the notes lost."""
    covered: int = 0
    """Messages folded in, counted from the first message after the leading system messages."""
    digest: str = ""
    """Digest of those messages: an edited history no longer matches, and is summarized anew."""
    turns: int = 0
    """User turns folded in."""
    tokens: int = 0
    """Size of :meth:`render`, in the local model's tokens."""
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    """When the summary was last extended (Unix time)."""
    updated_turn: int = 0
    """The conversation's user-turn count when the summary was last extended."""
    extensions: int = 0
    """How many times turns were folded in after the first time."""
    compactions: int = 0
    """How many times the summary was re-summarized to stay within its bound."""

    def render(self) -> str:
        """The summary as the answering model reads it."""
        lines = [f"Summary of the earlier conversation ({self.turns} turns):", *self.notes]
        if self.details:
            lines.append("Details the user gave, in their words:")
            lines.extend(f"- {detail}" for detail in self.details)
        return "\n".join(lines)


def conversation_digests(conversation: Sequence[BaseMessage]) -> list[str]:
    """``digests[i]`` identifies ``conversation[:i]`` (chained, so each costs one hash)."""
    digests = [""]
    state = hashlib.blake2b(digest_size=16)
    for message in conversation:
        calls = [(c.get("name"), c.get("args")) for c in getattr(message, "tool_calls", ())]
        piece = [message.type, message.text, calls, getattr(message, "tool_call_id", None)]
        state.update(json.dumps(piece, sort_keys=True, default=str).encode("utf-8"))
        digests.append(state.copy().hexdigest())
    return digests


def transcript(messages: Sequence[BaseMessage]) -> str:
    """Messages as plain text for the summarizer (system messages are kept elsewhere)."""
    lines: list[str] = []
    for message in messages:
        if isinstance(message, SystemMessage):
            continue
        if isinstance(message, HumanMessage):
            lines.append(f"User: {message.text}")
        elif isinstance(message, ToolMessage):
            lines.append(f"Tool {message.name or message.tool_call_id} returned: {message.text}")
        elif isinstance(message, AIMessage):
            if message.text:
                lines.append(f"Assistant: {message.text}")
            for call in message.tool_calls:
                args = json.dumps(call.get("args", {}), ensure_ascii=False)
                lines.append(f"Assistant called {call.get('name')} with {args}")
        else:
            lines.append(f"{message.type}: {message.text}")
    return "\n".join(lines)


def split_turns(messages: Sequence[BaseMessage]) -> list[list[BaseMessage]]:
    """Messages grouped into turns, each starting at a user message."""
    turns: list[list[BaseMessage]] = []
    for message in messages:
        if isinstance(message, HumanMessage) or not turns:
            turns.append([])
        turns[-1].append(message)
    return turns


def user_details(messages: Sequence[BaseMessage], note: str) -> list[str]:
    """The user's sentences that state a detail about themselves which ``note`` does not carry.

    A detail sentence speaks in the first person and holds a number, a name (a capitalized word
    inside the sentence) or says what the user's something is ("my … is …").
    """
    kept: list[str] = []
    have = note.lower()
    for message in messages:
        if not isinstance(message, HumanMessage):
            continue
        for sentence in _SENTENCE_END.split(message.text.strip()):
            sentence = " ".join(sentence.split())
            if not sentence or not _FIRST_PERSON.search(sentence):
                continue
            names = [
                m.group()
                for m in _CAPITALIZED.finditer(sentence)
                if m.start() > 0 and m.group() not in _NOT_NAMES  # not the sentence's first word
            ]
            terms = _NUMBER.findall(sentence) + names
            if not terms and not _STATES_OWN.search(sentence):
                continue
            if terms and all(t.lower() in have for t in terms):
                continue  # the note already says it
            kept.append(_shorten(sentence, MAX_DETAIL_CHARS))
            if len(kept) == MAX_DETAILS_PER_TURN:
                return kept
    return kept


class Summarizer:
    """Folds turns into a :class:`ConversationSummary` with a (local) chat model.

    Args:
        model: the model that writes the notes; the router uses the local tier's.
        counter: counts a prompt for ``model``.
        window: prompt and answer tokens ``model`` accepts; every call it gets fits.
        note_tokens: most tokens written for one note.
        max_tokens: bound of the rendered summary; past it the summary is re-summarized, and
            if that is not enough its oldest notes, then its oldest details, are dropped.
    """

    def __init__(
        self,
        model: BaseChatModel,
        *,
        counter: TokenCounter,
        window: int,
        note_tokens: int,
        max_tokens: int,
    ) -> None:
        self.model, self.counter, self.window = model, counter, window
        self.note_tokens, self.max_tokens = note_tokens, max_tokens
        self._empty = counter([HumanMessage("")])

    def text_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone, without the chat template's framing."""
        return max(self.counter([HumanMessage(text)]) - self._empty, 0)

    def extend(
        self,
        summary: ConversationSummary | None,
        conversation: Sequence[BaseMessage],
        upto: int,
        *,
        digest: str,
        turn: int,
    ) -> ConversationSummary:
        """Fold ``conversation[summary.covered:upto]`` into the summary (a new one if none).

        Args:
            summary: the summary so far, covering a prefix of ``conversation``; ``None``.
            conversation: the messages after the leading system messages.
            upto: fold up to this index (exclusive).
            digest: the digest of ``conversation[:upto]``.
            turn: the conversation's user-turn count now, for the summary's age.
        """
        base = summary or ConversationSummary()
        notes, details = list(base.notes), list(base.details)
        new_turns = 0
        for segment in split_turns(conversation[base.covered : upto]):
            new_turns += any(isinstance(m, HumanMessage) for m in segment)
            if not transcript(segment):
                continue  # only system messages: they stay in the prompt as they are
            segment_notes = self._notes(segment)
            notes.extend(segment_notes)
            for detail in user_details(segment, " ".join(segment_notes)):
                if detail not in details:
                    details.append(detail)
        now = time.time()
        extended = base.model_copy(
            update={
                "notes": notes,
                "details": details,
                "covered": upto,
                "digest": digest,
                "turns": base.turns + new_turns,
                "updated_at": now,
                "updated_turn": turn,
                "extensions": base.extensions + (1 if summary is not None else 0),
            }
        )
        if summary is None:
            extended.created_at = now
        return self.bound(extended)

    def bound(self, summary: ConversationSummary) -> ConversationSummary:
        """The summary within :attr:`max_tokens`: its older notes re-summarized into one, then,
        if that is not enough, its oldest sentences trimmed."""
        summary = summary.model_copy(update={"tokens": self.text_tokens(summary.render())})
        for _ in range(_COMPACT_ROUNDS):
            if summary.tokens <= self.max_tokens or len(summary.notes) < 2:
                break
            older = summary.notes[: max(len(summary.notes) // 2, 2)]
            merged = self._compact(" ".join(older))
            summary = summary.model_copy(
                update={
                    "notes": [merged, *summary.notes[len(older) :]],
                    "compactions": summary.compactions + 1,
                }
            )
            summary.tokens = self.text_tokens(summary.render())
        return summary if summary.tokens <= self.max_tokens else self._trim(summary)

    # --- model calls --------------------------------------------------------------------------

    def _notes(self, segment: Sequence[BaseMessage]) -> list[str]:
        chunks = self._chunks(transcript(segment), NOTE_PROMPT, self.note_tokens)
        return [self._write(NOTE_PROMPT, chunk, self.note_tokens) for chunk in chunks]

    def _compact(self, text: str) -> str:
        """Re-summarize notes; notes longer than the model's window go in chunks, in rounds."""
        reply = min(max(self.max_tokens // 4, self.note_tokens), 128)
        for _ in range(_COMPACT_ROUNDS):
            chunks = self._chunks(text, COMPACT_PROMPT, reply)
            text = " ".join(self._write(COMPACT_PROMPT, c, reply) for c in chunks)
            if len(chunks) == 1:
                break
        return text

    def _chunks(self, text: str, prompt: str, reply_tokens: int) -> list[str]:
        """``text`` in pieces that each fit the model's window with ``prompt`` and the reply."""
        framing = self.counter(self._prompt(prompt, ""))
        budget = self.window - reply_tokens - framing - _CHUNK_MARGIN_TOKENS
        if self.text_tokens(text) <= budget:
            return [text]
        from langchain_text_splitters import RecursiveCharacterTextSplitter

        splitter = RecursiveCharacterTextSplitter(
            chunk_size=max(budget, 32), chunk_overlap=0, length_function=self.text_tokens
        )
        return splitter.split_text(text)

    def _prompt(self, prompt: str, text: str) -> list[BaseMessage]:
        return [SystemMessage(NOTE_SYSTEM), HumanMessage(prompt.format(text=text))]

    def _write(self, prompt: str, text: str, max_tokens: int) -> str:
        from langgraph.constants import TAG_NOSTREAM

        # Tagged so that a graph streaming its messages does not show the summarizer's tokens.
        config: Any = {"tags": [TAG_NOSTREAM], "run_name": SUMMARIZE_RUN_NAME}
        reply = self.model.invoke(
            self._prompt(prompt, text), config, max_tokens=max_tokens, temperature=0.0
        )
        note = _whole_sentences(" ".join(reply.text.split()))
        return note or _shorten(text.replace("\n", " "), 160)

    def _trim(self, summary: ConversationSummary) -> ConversationSummary:
        """Drop the oldest note sentences, then the oldest details, until within the bound."""
        sentences = [s for n in summary.notes for s in _SENTENCE_END.split(n) if s]
        details = list(summary.details)
        while True:
            candidate = summary.model_copy(
                update={"notes": [" ".join(sentences)] if sentences else [], "details": details}
            )
            candidate.tokens = self.text_tokens(candidate.render())
            if candidate.tokens <= self.max_tokens or not (sentences or details):
                return candidate
            if sentences:
                sentences.pop(0)
            else:
                details.pop(0)


def _whole_sentences(text: str) -> str:
    """Cut a note that ran out of tokens back to its last complete sentence."""
    if not text or text[-1] in ".!?":
        return text
    cut = max(text.rfind(". "), text.rfind("! "), text.rfind("? "))
    return text[: cut + 1] if cut > 0 else text


def _shorten(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1].rsplit(" ", 1)[0] + "…"
