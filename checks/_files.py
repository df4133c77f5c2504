"""Reading the project's own files: policy, pages, notebooks. Light on purpose: the notebook
reader is on the path to an on-call engineer's first result."""

from __future__ import annotations

from pathlib import Path

from checks._errors import UnreadableFile

__all__ = ["read_utf8"]


def read_utf8(path: Path) -> str:
    """The text of a project file; `UnreadableFile` naming the file, and the line where the
    first byte that is not UTF-8 sits, instead of a decoding traceback."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        reason = f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); save the file as UTF-8"
        raise UnreadableFile(path, line, reason) from exc
    except OSError as exc:
        raise UnreadableFile(path, 1, f"cannot read it: {exc.strerror or exc}") from exc
