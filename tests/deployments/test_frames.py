"""The worker socket's framing: whole messages out of a stream cut anywhere."""

from __future__ import annotations

import random
import socket
import threading

import numpy as np
import pytest

from elserve.deployments import frames


def _stream(messages: list[tuple]) -> bytes:
    left, right = socket.socketpair()
    with left, right:
        received = bytearray()

        def read() -> None:
            while chunk := right.recv(1 << 16):
                received.extend(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        for message in messages:
            frames.send(left, message)
        left.shutdown(socket.SHUT_WR)
        reader.join()
    return bytes(received)


def test_messages_come_out_whole_and_in_order_however_the_bytes_are_cut() -> None:
    rng = random.Random(5)
    messages = [
        ("ready", 123, {"head": "exact"}),
        ("result", 7, [(np.arange(300, dtype=np.int32), np.linspace(2, 0.1, 300, dtype=np.float32))], 0.004),
        ("error", 8, "RuntimeError: boom"),
        ("result", 9, [], 0.0),
    ]
    data = _stream(messages)
    for cut in [1, 2, 7, 8, 9, len(data) // 2, len(data)] + [rng.randint(1, 4096) for _ in range(20)]:
        reader = frames.FrameReader()
        out = []
        for start in range(0, len(data), cut):
            out.extend(reader.feed(data[start : start + cut]))
        assert [m[0] for m in out] == ["ready", "result", "error", "result"]
        assert out[0] == messages[0] and out[2] == messages[2]
        assert np.array_equal(out[1][2][0][0], messages[1][2][0][0])
        assert np.array_equal(out[1][2][0][1], messages[1][2][0][1])


def test_send_and_recv_carry_a_message_larger_than_the_socket_buffer() -> None:
    big = ("encode", 1, [np.arange(2_000_000, dtype=np.int32)])  # 8 MB: several buffers' worth
    left, right = socket.socketpair()
    with left, right:
        sender = threading.Thread(target=frames.send, args=(left, big))
        sender.start()
        message = frames.recv(right)
        sender.join()
        assert message[0] == "encode" and np.array_equal(message[2][0], big[2][0])
        left.close()
        with pytest.raises(EOFError):
            frames.recv(right)
