"""Single key presses from the terminal (standard library only: termios, tty, select).

``KeyReader`` puts the terminal in cbreak mode (keys arrive one by one, not echoed;
Ctrl-C still interrupts) and restores it on exit. ``read(timeout)`` returns a key
name ("up", "down", "left", "right", "pageup", "pagedown", "home", "end",
"enter", "esc", "backspace", "tab") or the character typed, or None when no key
came within ``timeout`` seconds.
"""

from __future__ import annotations

import os
import select
import sys
import time

ESCAPES = {
    "[A": "up", "[B": "down", "[C": "right", "[D": "left", "OA": "up", "OB": "down", "OC": "right", "OD": "left",
    "[5~": "pageup", "[6~": "pagedown", "[H": "home", "[F": "end", "OH": "home", "OF": "end",
    "[1~": "home", "[4~": "end", "[7~": "home", "[8~": "end", "[Z": "backtab",
}
SINGLE = {"\r": "enter", "\n": "enter", "\t": "tab", "\x7f": "backspace", "\x08": "backspace", "\x1b": "esc"}


def decode_key(data: bytes) -> str | None:
    """The key a terminal sent as ``data`` (one key press)."""
    text = data.decode("utf-8", errors="ignore")
    if not text:
        return None
    if text.startswith("\x1b") and len(text) > 1:
        return ESCAPES.get(text[1:])
    return SINGLE.get(text, text)


class KeyReader:
    def __init__(self, stream=None):
        self.stream = stream or sys.stdin
        try:
            self.fd = self.stream.fileno()
            self.is_tty = os.isatty(self.fd)
        except (AttributeError, OSError, ValueError):
            self.fd, self.is_tty = None, False
        self._saved = None

    def __enter__(self) -> "KeyReader":
        if self.is_tty:
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)
            self._saved = None

    def _ready(self, timeout: float) -> bool:
        return bool(select.select([self.fd], [], [], timeout)[0])

    def read(self, timeout: float) -> str | None:
        if not self.is_tty:
            time.sleep(timeout)  # no keyboard: only the display refreshes
            return None
        if not self._ready(timeout):
            return None
        data = os.read(self.fd, 1)
        if data == b"\x1b":
            while len(data) < 8 and self._ready(0.03):  # the rest of an escape sequence
                data += os.read(self.fd, 1)
                if len(data) >= 3 and (data[-1:].isalpha() or data[-1:] == b"~"):
                    break
        elif data and data[0] >= 0x80:  # the rest of a UTF-8 character
            while len(data) < 4 and self._ready(0.01):
                data += os.read(self.fd, 1)
        return decode_key(data)
