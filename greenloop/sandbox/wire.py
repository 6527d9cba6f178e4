"""Length-prefixed JSON messages between the verifier and its fork servers."""

from __future__ import annotations

import json
import os
import struct

HEADER = struct.Struct("!I")
MAX_MESSAGE = 256 << 20
READ_BYTES = 1 << 16  # larger buffers are fresh mappings from malloc (mmap, then mremap) per read


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def send(fd: int, message: dict) -> None:
    body = json.dumps(message, separators=(",", ":")).encode()
    write_all(fd, HEADER.pack(len(body)) + body)


class Reader:
    """Accumulates bytes from a pipe and yields whole messages."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()
        self.eof = False

    def fill(self) -> None:
        chunk = os.read(self.fd, READ_BYTES)
        if not chunk:
            self.eof = True
        self.buffer += chunk

    def messages(self) -> list[dict]:
        out = []
        while len(self.buffer) >= HEADER.size:
            (size,) = HEADER.unpack_from(self.buffer)
            if size > MAX_MESSAGE:
                raise ValueError(f"message of {size} bytes exceeds the limit")
            if len(self.buffer) < HEADER.size + size:
                break
            body = bytes(self.buffer[HEADER.size:HEADER.size + size])
            del self.buffer[:HEADER.size + size]
            out.append(json.loads(body))
        return out

    def read_one(self) -> dict | None:
        """Block until one message arrives; None at end of file."""
        while True:
            msgs = self.messages()
            if msgs:
                if len(msgs) > 1:  # put the rest back in order
                    rest = b"".join(HEADER.pack(len(b)) + b for b in (json.dumps(m, separators=(",", ":")).encode() for m in msgs[1:]))
                    self.buffer[:0] = rest
                return msgs[0]
            if self.eof:
                return None
            self.fill()
