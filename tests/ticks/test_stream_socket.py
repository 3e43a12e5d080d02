"""The stream's direct frame writer (ticks.stream_socket): the frames it writes are websockets' own."""

import pytest
from websockets.frames import Frame, Opcode

from ticks.stream_socket import text_frame_header


@pytest.mark.parametrize("length", [0, 1, 125, 126, 9000, 65535, 65536, 70000])
def test_a_text_frame_is_the_header_and_the_bytes_as_websockets_frames_them(length: int) -> None:
    data = b"x" * length

    assert text_frame_header(length) + data == Frame(Opcode.TEXT, data).serialize(mask=False)
