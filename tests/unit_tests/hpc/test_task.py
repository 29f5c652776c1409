"""The task contract: pieces on the relay and the layout of requests and summaries."""

from __future__ import annotations

import pytest

from langchain_stream.errors import RelayProtocolError
from langchain_stream.hpc.task import CONTROL_PREFIX, decode_piece, encode_piece


@pytest.mark.parametrize("text", ["Hello", " world", "", "é✓🙂", "x\x00y"])
def test_text_pieces_travel_as_themselves(text: str) -> None:
    assert encode_piece(text) == text
    assert decode_piece(encode_piece(text)) == text


def test_text_that_looks_like_a_control_piece_is_escaped() -> None:
    text = CONTROL_PREFIX + '{"tool_call_chunks": []}'
    encoded = encode_piece(text)
    assert encoded != text
    assert decode_piece(encoded) == text


def test_control_pieces_round_trip() -> None:
    piece = {"tool_call_chunks": [{"name": "add", "args": '{"a": 1', "id": "c1", "index": 0}]}
    assert decode_piece(encode_piece(piece)) == piece
    metadata = {"response_metadata": {"model_name": "m", "finish_reason": "stop"}}
    assert decode_piece(encode_piece(metadata)) == metadata


@pytest.mark.parametrize("token", [CONTROL_PREFIX + "{not json", CONTROL_PREFIX + "[1, 2]"])
def test_malformed_control_pieces_are_protocol_errors(token: str) -> None:
    with pytest.raises(RelayProtocolError):
        decode_piece(token)
