"""The audit spool: append-only segment files that hold every record from the moment a call is acknowledged
until the flusher has committed it to the database.

A spool directory belongs to one process at a time (an exclusive `flock` on `lock`, released by the kernel even
on kill -9). It holds numbered segments, `0000000001.seg`, `0000000002.seg`, …; records are appended to the
newest one, one JSON line each, with a single `os.write` (into the OS page cache: it survives the process dying,
not the machine losing power unless `fsync` is on). The reader walks the segments in order, handing complete
lines to the flusher; a segment is deleted once everything in it is committed and a newer one exists.

A line with no newline at the end of a closed segment is a torn write (the process died or the disk filled
mid-write): it is skipped and logged, never glued to the next line, because writes resume in a new segment.
"""

from __future__ import annotations

import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SUFFIX = ".seg"
_READ_CHUNK = 1 << 20


class SpoolLockedError(OSError):
    """Another process holds this spool directory."""


@dataclass(slots=True)
class _Segment:
    index: int
    path: Path
    read_pos: int = 0


class Spool:
    """Segment files in one directory: `write` for the hot path, `read`/`consume` for the flusher.

    Not thread-safe: use from one thread (the event loop's).
    """

    def __init__(self, directory: Path, *, fsync: bool = False, segment_max_bytes: int = 4 << 20) -> None:
        self.directory = directory
        self.fsync = fsync
        self.segment_max_bytes = segment_max_bytes
        self._segments: list[_Segment] = []  # oldest first; the last one is being written
        self._fd = -1
        self._size = 0
        self._lock_fd = -1

    def open(self) -> None:
        """Lock the directory, adopt any segments left by an earlier run, and start a fresh segment.

        Raises:
            SpoolLockedError: another live process uses this directory.
            OSError: the directory cannot be created or written.
        """
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise SpoolLockedError(f"audit spool {self.directory} is in use by another process") from None
        for path in sorted(self.directory.glob(f"*{_SUFFIX}")):
            if path.stem.isdigit():
                self._segments.append(_Segment(int(path.stem), path))
        self._start_segment()

    @property
    def leftover(self) -> bool:
        """Whether segments from an earlier run (or unread data) are still waiting to be consumed."""
        if not self._segments:
            return False
        return len(self._segments) > 1 or self._segments[0].read_pos < self._size

    def write(self, line: bytes) -> None:
        """Append one record line (ending in a newline). Returns once the OS holds it (or disk, with fsync).

        Raises:
            OSError: the write failed (disk full, I/O error). Writing continues in a new segment.
        """
        try:
            written = os.write(self._fd, line)
            while written < len(line):  # rare on regular files, but a short write must not tear the line
                written += os.write(self._fd, line[written:])
            if self.fsync:
                os.fsync(self._fd)
        except OSError:
            # Whatever reached the file is now a torn tail of a closed segment, skipped by the reader.
            self._start_segment()
            raise
        self._size += len(line)

    def read(self, max_lines: int) -> tuple[list[bytes], int]:
        """Up to `max_lines` complete lines from the oldest unconsumed point, plus a token for `consume`.

        Torn or blank lines at the end of closed segments are skipped here (and logged).
        """
        while self._segments:
            seg = self._segments[0]
            closed = seg is not self._segments[-1]
            lines, end = self._read_lines(seg, max_lines)
            if lines or not closed:
                return lines, end
            size = seg.path.stat().st_size if seg.path.exists() else 0
            if end < size:
                log.warning("audit spool: skipped a torn record at the end of %s (%d bytes)", seg.path, size - end)
            seg.path.unlink(missing_ok=True)  # fully consumed and closed
            self._segments.pop(0)
        return [], 0

    def consume(self, end: int) -> None:
        """Mark everything `read` returned as committed (up to byte offset `end` of the oldest segment)."""
        if self._segments:
            self._segments[0].read_pos = end

    def maybe_rotate(self) -> None:
        """Start a new segment if the current one is large, so consumed data can be deleted."""
        if self._size >= self.segment_max_bytes:
            self._start_segment()

    def close(self, *, remove: bool) -> None:
        """Stop writing; with `remove`, delete every segment (the caller has committed them all)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if remove:
            for seg in self._segments:
                seg.path.unlink(missing_ok=True)
        self._segments.clear()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = -1

    def _start_segment(self) -> None:
        index = self._segments[-1].index + 1 if self._segments else 1
        path = self.directory / f"{index:010d}{_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        if self.fsync:
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # make the new file's name durable too
            finally:
                os.close(dir_fd)
        if self._fd >= 0:
            os.close(self._fd)
        self._fd, self._size = fd, 0
        self._segments.append(_Segment(index, path))

    def _read_lines(self, seg: _Segment, max_lines: int) -> tuple[list[bytes], int]:
        lines: list[bytes] = []
        pos = seg.read_pos
        with open(seg.path, "rb") as f:
            f.seek(pos)
            buf = b""
            while len(lines) < max_lines:
                chunk = f.read(_READ_CHUNK)
                if not chunk:
                    break  # whatever is left in `buf` has no newline yet: not a whole record
                buf += chunk
                start = 0
                while len(lines) < max_lines and (nl := buf.find(b"\n", start)) >= 0:
                    line = buf[start : nl + 1]
                    if line.strip():
                        lines.append(line)
                    start = nl + 1
                pos += start
                buf = buf[start:]
        return lines, pos
