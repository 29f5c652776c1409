"""The summary's model-free parts: digests, turns, transcripts and the details kept verbatim."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from langchain_stream.context.summary import (
    ConversationSummary,
    conversation_digests,
    split_turns,
    transcript,
    user_details,
)

TURNS = [
    HumanMessage("How do glaciers move? My bike is a green Brompton."),
    AIMessage("Ice creeps downhill under its own weight."),
    HumanMessage("Check the weather."),
    AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Oslo"}, "id": "c1"}]),
    ToolMessage("rain", tool_call_id="c1", name="weather"),
    AIMessage("It rains in Oslo."),
]


def test_digests_identify_every_prefix_and_notice_an_edit() -> None:
    digests = conversation_digests(TURNS)
    assert len(digests) == len(TURNS) + 1
    assert len(set(digests)) == len(digests)
    assert conversation_digests(TURNS[:3]) == digests[:4]
    edited = [HumanMessage("How do rivers move?"), *TURNS[1:]]
    assert conversation_digests(edited)[1] != digests[1]
    # Ids are not content: the same messages with new ids have the same digests.
    renamed = [m.model_copy(update={"id": f"x{i}"}) for i, m in enumerate(TURNS)]
    assert conversation_digests(renamed) == digests


def test_turns_start_at_user_messages_and_keep_tool_exchanges_whole() -> None:
    turns = split_turns(TURNS)
    assert [len(t) for t in turns] == [2, 4]
    assert isinstance(turns[1][2], ToolMessage)


def test_transcript_names_speakers_calls_and_results_and_skips_system() -> None:
    text = transcript([SystemMessage("secret rules"), *TURNS])
    assert "secret rules" not in text
    assert "User: Check the weather." in text
    assert 'Assistant called weather with {"city": "Oslo"}' in text
    assert "Tool weather returned: rain" in text


def test_details_are_first_person_sentences_with_names_numbers_or_my_x_is() -> None:
    said = [
        HumanMessage(
            "I have been reading about bridges. The Roman engineers built arches. "
            "My locker code is 4821. My favourite colour is teal. I like walks."
        ),
        AIMessage("My answer mentions 1234, but assistants' words are not the user's."),
    ]
    assert user_details(said, note="") == [
        "My locker code is 4821.",
        "My favourite colour is teal.",
    ]
    # A detail the model's note already carries is not repeated.
    assert user_details(said, note="The user's code is 4821.") == ["My favourite colour is teal."]


def test_render_shows_notes_then_details() -> None:
    summary = ConversationSummary(
        notes=["The user asked about glaciers."], details=["My bike is a Brompton."], turns=1
    )
    text = summary.render()
    assert text.index("glaciers") < text.index("Brompton")
    assert "(1 turns)" in text
