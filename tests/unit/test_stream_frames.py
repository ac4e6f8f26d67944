"""common.streams.framed / unframed: the worker-to-manager follow framing, with heartbeats."""
from __future__ import annotations

import pytest

from common.streams import HEARTBEAT, framed, unframed

CHUNKS = [HEARTBEAT, b"line one\n", HEARTBEAT, HEARTBEAT, b"\x00\n0\n", b"x" * 70000, HEARTBEAT, b"last"]


@pytest.mark.parametrize("cut", [1, 2, 3, 7, 1000, 1 << 20])
def test_chunks_come_back_whole_and_without_heartbeats_however_the_bytes_are_cut(cut):
    wire = b"".join(framed(CHUNKS))
    pieces = [wire[i:i + cut] for i in range(0, len(wire), cut)]
    assert list(unframed(pieces)) == [c for c in CHUNKS if c]


def test_a_heartbeat_is_a_zero_length_frame():
    assert list(framed([HEARTBEAT, b"ab"])) == [b"0\n", b"2\nab"]


@pytest.mark.parametrize("wire", [b"hello world\n", b"x" * 100])
def test_an_unframed_stream_is_refused(wire):
    with pytest.raises(ValueError):
        list(unframed([wire]))
