"""Reading a Stack Exchange dump file (`Posts.xml` and its siblings) as a stream of rows.

A dump file is one root element (`<posts>`, `<comments>`, ...) holding a `<row .../>` per
record. It may be plain XML, `.bz2`, `.gz`, or a `.7z` (as the Internet Archive serves them)
read from the stdout of the `7z`, `7za`, `7zr` or `7zz` command (the standard library reads
no 7z archive); from a site's archive, which holds all its files, the one asked for. Bytes are fed to expat a megabyte at a time and only the current megabyte's rows
are held, so memory stays the same however large the file; expat (rather than an
ElementTree built and cleared) also gives each row's line, so a bad value is reported
as FILE:LINE. Malformed XML raises `DataError` with the parser's line and column, after
the rows before it.
"""

from __future__ import annotations

import bz2
import gzip
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.parsers import expat

from greenloop.io import DataError

CHUNK_BYTES = 1 << 20
SEVEN_ZIP_COMMANDS = ("7z", "7za", "7zr", "7zz")


class DumpStream:
    """A dump file's XML bytes, decompressed as they are read. `position()` is how far into
    the file on disk the reading is (for progress against `total`); for a .7z, which another
    process reads, it is the bytes of XML so far and `total` is None. `member` names the
    file wanted from a .7z that holds more than one."""

    def __init__(self, path: str, member: str = "Posts.xml"):
        self.path, self.member, self.xml_bytes = path, member, 0
        self.total: int | None = None
        self._process: subprocess.Popen | None = None
        self._raw = None
        if path.endswith(".7z"):
            self._data = self._start_7z()
            return
        self._raw = open(path, "rb")  # noqa: SIM115 closed by close()
        self.total = os.path.getsize(path)
        opener = {".bz2": bz2.open, ".gz": gzip.open}.get(Path(path).suffix)
        self._data = opener(self._raw) if opener else self._raw

    def _start_7z(self):
        exe = next((shutil.which(name) for name in SEVEN_ZIP_COMMANDS if shutil.which(name)), None)
        if exe is None:
            raise DataError(self.path, None, "reading a .7z needs the 7z command (apt install p7zip-full, "
                                             "brew install p7zip), or extract the .xml first")
        member = seven_zip_member(exe, self.path, self.member)
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 closed by close(); not a pipe: an unread pipe could stall 7z
        self._process = subprocess.Popen([exe, "x", "-so", "-bd", "--", self.path, member],
                                         stdout=subprocess.PIPE, stderr=self._stderr)
        return self._process.stdout

    def read(self) -> bytes:
        try:
            chunk = self._data.read(CHUNK_BYTES)
        except (OSError, EOFError) as exc:
            raise DataError(self.path, None, f"cannot decompress: {exc}") from None
        self.xml_bytes += len(chunk)
        if not chunk and self._process is not None and self._process.wait() != 0:
            self._stderr.seek(0)
            detail = self._stderr.read().decode(errors="replace").strip().splitlines()[-3:]
            raise DataError(self.path, None, f"7z failed (exit {self._process.returncode}): {' '.join(detail)}")
        return chunk

    def position(self) -> int:
        return self._raw.tell() if self._raw is not None else self.xml_bytes

    def close(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()  # the pass stopped before the end
            self._process.stdout.close()
            self._process.wait()
            self._stderr.close()
        else:
            self._data.close()
            self._raw.close()


def seven_zip_member(exe: str, path: str, wanted: str) -> str:
    """The archive's file named `wanted` (in any folder, any case), or else its only file."""
    listing = subprocess.run([exe, "l", "-slt", "--", path], capture_output=True, text=True,
                             errors="replace", check=False)
    if listing.returncode != 0:
        detail = " ".join((listing.stderr or listing.stdout).strip().splitlines()[-3:])
        raise DataError(path, None, f"7z cannot list the archive: {detail}")
    files = listing.stdout.split("\n----------\n", 1)[-1]
    members = [line[len("Path = "):] for line in files.splitlines() if line.startswith("Path = ")]
    named = [m for m in members if re.split(r"[\\/]", m)[-1].lower() == wanted.lower()]
    if len(named) == 1:
        return named[0]
    if len(members) == 1:
        return members[0]
    held = ", ".join(members[:6]) or "nothing"
    raise DataError(path, None, f"the archive holds no single {wanted} (it holds {held})")


def iter_rows(stream: DumpStream, root_name: str = "posts",
              on_chunk: Callable[[], None] | None = None) -> Iterator[tuple[dict[str, str], int]]:
    """Each `<row>`'s attributes and line, in file order, a chunk's worth at a time; the
    root element must be `<root_name>`. `on_chunk()` is called after each chunk (progress)."""
    parser = expat.ParserCreate()
    rows: list[tuple[dict[str, str], int]] = []
    root: list[str] = []

    def start(name: str, attrs: dict[str, str]) -> None:
        if name == "row":
            rows.append((attrs, parser.CurrentLineNumber))
        elif not root:
            root.append(name)

    parser.StartElementHandler = start
    while True:
        chunk = stream.read()
        error = None
        try:
            parser.Parse(chunk, not chunk)
        except expat.ExpatError as exc:  # the rows before it are still good
            message = f"malformed XML: {expat.ErrorString(exc.code)} (column {exc.offset + 1})"
            error = DataError(stream.path, exc.lineno, message)
        if root and root[0] != root_name:
            raise DataError(stream.path, None, f"expected a dump of <{root_name}>, found <{root[0]}>")
        yield from rows
        rows.clear()
        if error is not None:
            raise error
        if on_chunk is not None:
            on_chunk()
        if not chunk:
            return
