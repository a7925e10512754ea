"""Moving objects between processes with as few copies as possible.

Values are pickled with protocol 5 and out-of-band buffers, so a large array travels as its raw
memory: the sender never copies it into the pickle, and the receiver reads it straight into a
writable buffer that the unpickled array then uses. A payload (the list of frames) can be kept
and forwarded to other processes without pickling the value again.
"""

from __future__ import annotations

import pickle
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


def send_message(connection: Connection, header: Any, payloads: list[Payload] = (), *, by_value: bool = False) -> None:  # type: ignore[assignment]
    """Send a header object followed by any number of payloads, each frame as it is."""
    frames = [frame for payload in payloads for frame in payload]
    sizes = [[len(memoryview(frame).cast("B")) for frame in payload] for payload in payloads]
    connection.send_bytes(encode_small((header, sizes), by_value=by_value))
    for frame in frames:
        connection.send_bytes(frame)


def receive_message(connection: Connection) -> tuple[Any, list[Payload]]:
    """Receive what `send_message` sent: the header and the payloads (frames in writable buffers)."""
    header, sizes = pickle.loads(connection.recv_bytes())
    payloads = []
    for payload_sizes in sizes:
        payload: Payload = []
        for size in payload_sizes:
            frame = bytearray(size)
            if size:
                connection.recv_bytes_into(frame)
            else:
                connection.recv_bytes()
            payload.append(frame)
        payloads.append(payload)
    return header, payloads


def encode_small(value: Any, *, by_value: bool = False) -> bytes:
    """Pickle a small object in one piece."""
    if by_value:
        return bytes(cloudpickle.dumps(value, protocol=5))
    return pickle.dumps(value, protocol=5)
