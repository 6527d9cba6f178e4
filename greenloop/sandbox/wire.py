"""Length-prefixed messages between the verifier and its fork servers: a JSON object, and
optionally bytes attached after it (a job's payload for the child, which the server
passes on unread)."""

from __future__ import annotations

import array
import fcntl
import json
import os
import struct
import termios
from collections import deque

HEADER = struct.Struct("!II")  # JSON size, attached bytes size
MAX_MESSAGE = 256 << 20
READ_BYTES = 1 << 16  # larger buffers are fresh mappings from malloc (mmap, then mremap) per read


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def frame(message: dict, attached: bytes = b"") -> bytes:
    """`message` as sent; the reader finds `attached` (if any) under the key "attached"."""
    body = json.dumps(message, separators=(",", ":")).encode()
    return HEADER.pack(len(body), len(attached)) + body + attached


def send(fd: int, message: dict) -> None:
    write_all(fd, frame(message))


def pipe_room(fd: int) -> int:
    """Bytes a write to the pipe `fd` can add now without blocking (we being its only writer)."""
    unread = array.array("i", [0])
    fcntl.ioctl(fd, termios.FIONREAD, unread)
    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) - unread[0]


class Reader:
    """Accumulates bytes from a pipe and yields whole messages."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()
        self.eof = False
        self.ready: deque[dict] = deque()

    def fill(self) -> None:
        chunk = os.read(self.fd, READ_BYTES)
        if not chunk:
            self.eof = True
        self.buffer += chunk

    def _parse(self) -> None:
        """Move every whole message in the buffer to `ready`."""
        while len(self.buffer) >= HEADER.size:
            size, attached = HEADER.unpack_from(self.buffer)
            if size + attached > MAX_MESSAGE:
                raise ValueError(f"message of {size + attached} bytes exceeds the limit")
            end = HEADER.size + size + attached
            if len(self.buffer) < end:
                break
            message = json.loads(bytes(self.buffer[HEADER.size:HEADER.size + size]))
            if not isinstance(message, dict):
                raise ValueError("a message must be a JSON object")
            if attached:
                message["attached"] = bytes(self.buffer[HEADER.size + size:end])
            del self.buffer[:end]
            self.ready.append(message)

    def take(self, wanted) -> dict | None:
        """The first message received so far for which `wanted(message)` holds, removed;
        the others stay, in order, for `read_one`."""
        self._parse()
        for message in self.ready:
            if wanted(message):
                self.ready.remove(message)
                return message
        return None

    def messages(self) -> list[dict]:
        """Every whole message received so far (after a `fill`)."""
        self._parse()
        out = list(self.ready)
        self.ready.clear()
        return out

    def read_one(self) -> dict | None:
        """Block until one message arrives; None at end of file."""
        while True:
            self._parse()
            if self.ready:
                return self.ready.popleft()
            if self.eof:
                return None
            self.fill()
