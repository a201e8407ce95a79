"""A one-line progress bar on a terminal; plain stage lines everywhere else."""

from __future__ import annotations

import shutil
from typing import TextIO


class ProgressBar:
    def __init__(self, stream: TextIO, *, width: int = 24) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._width = width
        self._last_stage = ""
        self._drawn = False

    def update(self, percent: int, stage: str, message: str = "") -> None:
        percent = max(0, min(100, percent))
        if not self._tty:
            if stage != self._last_stage:
                self._stream.write(f"{percent:3d}% {stage}{': ' + message if message else ''}\n")
                self._stream.flush()
            self._last_stage = stage
            return
        self._last_stage = stage
        filled = round(self._width * percent / 100)
        bar = "#" * filled + "." * (self._width - filled)
        line = f"[{bar}] {percent:3d}% {stage}{': ' + message if message else ''}"
        columns = shutil.get_terminal_size((80, 20)).columns
        self._stream.write("\r" + line[: columns - 1].ljust(columns - 1))
        self._stream.flush()
        self._drawn = True

    def finish(self) -> None:
        if self._tty and self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
