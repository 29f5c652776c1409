"""A key's conversations, as the chat page lists, reopens and deletes them.

Nothing here keeps records of its own. Which conversations a key owns comes from the policy
store's ledger (each answer names its user, the key's name, and its conversation): a
conversation belongs to the key of its first answer, and no other key's answers in it (the
chat API lets any key name any conversation id) make it theirs. What a conversation says,
and the summary compression kept of it, comes from the router graph's checkpointer, where
every conversation with an id is saved (docs/design.md#context).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from langchain_stream.chat_model import StreamChatModel
from langchain_stream.context.summary import ConversationSummary
from langchain_stream.graph import conversation_graph
from langchain_stream.policies.store import PolicyStore

TITLE_CHARS = 80
"""A conversation is listed under the start of its first question, cut to this length."""


@dataclass(frozen=True)
class ConversationLimits:
    """How much of the ledger a listing reads."""

    listed: int = 200
    """Conversations listed, the latest first."""


def _config(conversation_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": conversation_id}}


def _role(message: BaseMessage) -> str | None:
    if isinstance(message, HumanMessage):
        return "user"
    if isinstance(message, AIMessage):
        return "assistant"
    if isinstance(message, SystemMessage):
        return "system"
    return None  # tool messages are not shown


def _title(messages: list[BaseMessage]) -> str:
    for message in messages:
        if isinstance(message, HumanMessage):
            text = " ".join(message.text.split())
            return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"
    return "(empty)"


class Conversations:
    """The conversations of the router's policy store and checkpointer, by owner."""

    def __init__(self, model: StreamChatModel, limits: ConversationLimits | None = None) -> None:
        self.model = model
        self.limits = limits or ConversationLimits()

    @property
    def store(self) -> PolicyStore | None:
        """The policy store; ``None`` when the database is off (nothing is kept then)."""
        return self.model.policy_engine().store

    def _messages(self, conversation_id: str) -> tuple[list[BaseMessage], dict[str, Any] | None]:
        values = conversation_graph().get_state(_config(conversation_id)).values
        return list(values.get("messages") or []), values.get("summary")

    def listing(self, owner: str) -> list[dict[str, Any]]:
        """``owner``'s conversations, the latest first: id, title, updated, answers."""
        store = self.store
        if store is None:
            return []
        listed = []
        for row in store.conversations_of(owner, limit=self.limits.listed):
            messages, _ = self._messages(row["id"])
            if messages:  # an answer stopped before it was saved leaves nothing to reopen
                listed.append({**row, "title": _title(messages)})
        return listed

    def read(self, owner: str, conversation_id: str) -> dict[str, Any] | None:
        """The messages of ``owner``'s conversation (each answer with its ledger row) and its
        summary; ``None`` when ``owner`` has no such conversation."""
        store = self.store
        if store is None or store.conversation_owner(conversation_id) != owner:
            return None
        answers = store.answers_in(owner, conversation_id)
        messages, summary = self._messages(conversation_id)
        shown = [
            {"role": role, "content": message.text}
            for message in messages
            if (role := _role(message)) is not None
        ]
        # One ledger row per answer, in order; an answer stopped mid-stream is in neither, so
        # the saved answers and the rows match from the end.
        replies = [item for item in shown if item["role"] == "assistant"]
        for item, row in zip(reversed(replies), reversed(answers), strict=False):
            item["ledger"] = row
        return {
            "id": conversation_id,
            "messages": shown,
            "summary": _summary_view(summary),
        }

    def delete(self, owner: str, conversation_id: str) -> bool:
        """Delete ``owner``'s conversation: its saved history and summary, its routing state,
        and its link from the ledger (whose spend stays counted). ``False`` when ``owner`` has
        no such conversation."""
        store = self.store
        if store is None or store.conversation_owner(conversation_id) != owner:
            return False
        checkpointer = conversation_graph().checkpointer
        if checkpointer is not None and not isinstance(checkpointer, bool):
            checkpointer.delete_thread(conversation_id)
        store.forget_conversation(conversation_id)
        return True


def _summary_view(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """What compression kept of the older turns, as the page shows it."""
    if not summary:
        return None
    kept = ConversationSummary.model_validate(summary)
    return {
        "turns": kept.turns,
        "tokens": kept.tokens,
        "notes": kept.notes,
        "details": kept.details,
        "updated_at": kept.updated_at,
    }
