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


def next_key(data: bytes) -> tuple[str | None, int]:
    """The first key press in ``data`` and how many bytes it takes; (None, 0) when it is incomplete.

    Keys typed quickly (or sent together) arrive in one read, so ``data`` may hold several:
    an escape starts a sequence only when "[" or "O" follows it, otherwise it is the Esc key."""
    if not data:
        return None, 0
    first = data[0]
    if first == 0x1B:
        if len(data) == 1 or data[1:2] not in (b"[", b"O"):
            return "esc", 1
        if data[1:2] == b"O":
            return (ESCAPES.get(data[1:3].decode("latin-1")), 3) if len(data) >= 3 else (None, 0)
        for end in range(2, len(data)):
            if 0x40 <= data[end] <= 0x7E:  # the final byte of a CSI sequence
                seq = data[1:end + 1].decode("latin-1")
                return ESCAPES.get(seq, ESCAPES.get("[" + seq[-1])), end + 1  # Ctrl/Shift + arrow: the arrow
        return None, 0
    if first >= 0x80:  # a UTF-8 character: its lead byte gives its length
        size = 2 if first >> 5 == 0b110 else 3 if first >> 4 == 0b1110 else 4 if first >> 3 == 0b11110 else 1
        if len(data) < size:
            return None, 0
        return data[:size].decode("utf-8", errors="replace"), size
    char = chr(first)
    return SINGLE.get(char, char), 1


class KeyReader:
    def __init__(self, stream=None):
        self.stream = stream or sys.stdin
        try:
            self.fd = self.stream.fileno()
            self.is_tty = os.isatty(self.fd)
        except (AttributeError, OSError, ValueError):
            self.fd, self.is_tty = None, False
        self._saved = None
        self._pending = b""

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
        if not self._pending:
            if not self._ready(timeout):
                return None
            self._pending = os.read(self.fd, 64)
        if self._pending == b"\x1b" and self._ready(0.03):  # Esc, or the start of an arrow key's sequence
            self._pending += os.read(self.fd, 64)
        key, used = next_key(self._pending)
        if not used and self._ready(0.05):  # the rest of a sequence is on its way
            self._pending += os.read(self.fd, 64)
            key, used = next_key(self._pending)
        self._pending = self._pending[used:] if used else b""
        return key
