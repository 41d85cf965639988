"""The messages between the server and an allocation's worker: pickled tuples, each behind its length.

Framed here rather than by multiprocessing's `Connection` so that the server reads a worker's
answers on its event loop, from whatever bytes its socket holds (`FrameReader`), instead of on a
thread per worker. Such a thread must take the GIL from the event loop to hand an answer over, and
the loop must take it back: under bulk load a query's answer waited for that handoff (up to the
interpreter's switch interval each way) while the loop had nothing else to do.
"""

from __future__ import annotations

import pickle
import socket
import struct

_LENGTH = struct.Struct("!Q")


def send(sock: socket.socket, message: tuple) -> None:
    """One message, whole (blocking until the socket has taken it)."""
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_LENGTH.pack(len(payload)) + payload)


def recv(sock: socket.socket) -> tuple:
    """The next message (blocking); EOFError once the other end has closed."""
    (length,) = _LENGTH.unpack(_exactly(sock, _LENGTH.size))
    return pickle.loads(_exactly(sock, length))


def _exactly(sock: socket.socket, size: int) -> bytearray:
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:])
        if count == 0:
            raise EOFError("the other end closed its socket")
        received += count
    return buffer


class FrameReader:
    """The messages in a byte stream that arrives in pieces of any size, in order."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple]:
        """The messages `data` completes (none while one is still partial)."""
        self._buffer += data
        messages = []
        while len(self._buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self._buffer)
            end = _LENGTH.size + length
            if len(self._buffer) < end:
                break
            messages.append(pickle.loads(bytes(self._buffer[_LENGTH.size : end])))
            del self._buffer[:end]
        return messages
