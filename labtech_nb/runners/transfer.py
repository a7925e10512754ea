"""Moving objects between processes with as few copies as possible.

Values are pickled with protocol 5 and out-of-band buffers, so a large array travels as its raw
memory: the sender never copies it into the pickle, and the receiver reads it straight into a
writable buffer that the unpickled array then uses. A payload (the list of frames) can be kept
and forwarded to other processes without pickling the value again.

A message is a small header (sent with ``Connection.send_bytes``) that lists the frame sizes,
followed by the frames' raw bytes written straight to the connection's file descriptor (small
frames ride along in the header's message instead). The
receiver reads each frame directly into its final buffer: no intermediate copy, so receiving
a 50 MB array needs 50 MB, not twice that.
"""

from __future__ import annotations

import os
import pickle
import select
import struct
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import cloudpickle

#: A pickled value: its pickle stream followed by its out-of-band buffers.
Payload = list[Any]


def encode(value: Any, *, by_value: bool = False) -> Payload:
    """Pickle ``value`` into frames (``by_value`` pickles classes from ``__main__`` by value)."""
    buffers: list[pickle.PickleBuffer] = []
    dumps: Callable[..., bytes] = cloudpickle.dumps if by_value else pickle.dumps
    stream = dumps(value, protocol=5, buffer_callback=buffers.append)
    return [stream, *(buffer.raw() for buffer in buffers)]


def decode(payload: Payload) -> Any:
    """Rebuild a value from its frames."""
    return pickle.loads(payload[0], buffers=payload[1:])


#: Payloads up to this many bytes in total travel inside the header's message: one write, one read.
INLINE_LIMIT = 64 * 1024
_HEAD_LENGTH = struct.Struct("!I")


def send_message(connection: Connection, header: Any, payloads: list[Payload] = (), *, by_value: bool = False) -> None:  # type: ignore[assignment]
    """Send a header object followed by any number of payloads, each frame as it is.

    Small payloads go in the same message as the header. Large frames follow it as raw bytes,
    written straight from their memory.
    """
    views = [[memoryview(frame).cast("B") for frame in payload] for payload in payloads]
    sizes = [[len(view) for view in payload_views] for payload_views in views]
    head = encode_small((header, sizes), by_value=by_value)
    if _inline(sizes):
        connection.send_bytes(b"".join([_HEAD_LENGTH.pack(len(head)), head, *(view for group in views for view in group)]))
        return
    connection.send_bytes(_HEAD_LENGTH.pack(len(head)) + head)
    descriptor = connection.fileno()
    for payload_views in views:
        for view in payload_views:
            _write_all(descriptor, view)


def receive_message(connection: Connection) -> tuple[Any, list[Payload]]:
    """Receive what `send_message` sent: the header and the payloads (frames in writable buffers)."""
    message = memoryview(connection.recv_bytes())
    (head_length,) = _HEAD_LENGTH.unpack_from(message)
    offset = _HEAD_LENGTH.size + head_length
    header, sizes = pickle.loads(message[_HEAD_LENGTH.size : offset])
    inline = _inline(sizes)
    descriptor = connection.fileno()
    payloads = []
    for payload_sizes in sizes:
        payload: Payload = []
        for size in payload_sizes:
            if inline:
                frame = bytearray(message[offset : offset + size])
                offset += size
            else:
                frame = bytearray(size)
                _read_exactly(descriptor, memoryview(frame))
            payload.append(frame)
        payloads.append(payload)
    return header, payloads


def data_waiting(connection: Connection) -> Callable[[], bool]:
    """Return a check, without waiting, whether ``connection`` has something to read (or was closed).

    ``Connection.poll()`` builds a selector on every call; this registers the descriptor once.
    """
    poller = select.poll()
    poller.register(connection.fileno(), select.POLLIN)
    return lambda: bool(poller.poll(0))


def _inline(sizes: list[list[int]]) -> bool:
    return sum(size for payload_sizes in sizes for size in payload_sizes) <= INLINE_LIMIT


def _write_all(descriptor: int, view: memoryview) -> None:
    while view:
        view = view[os.write(descriptor, view) :]


def _read_exactly(descriptor: int, view: memoryview) -> None:
    while view:
        count = os.readv(descriptor, [view])
        if count == 0:
            raise EOFError("the connection closed in the middle of a message")
        view = view[count:]


def encode_small(value: Any, *, by_value: bool = False) -> bytes:
    """Pickle a small object in one piece."""
    if by_value:
        return bytes(cloudpickle.dumps(value, protocol=5))
    return pickle.dumps(value, protocol=5)
