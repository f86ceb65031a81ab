"""Key presses decoded from the bytes a terminal sends."""

from __future__ import annotations

import io

from hmxfeel_mlx.ui.keys import KeyReader, next_key


def test_keys_and_sequences():
    assert next_key(b"\x1b[A") == ("up", 3) and next_key(b"\x1bOB") == ("down", 3)
    assert next_key(b"\x1b[5~x") == ("pageup", 4)  # the next key stays for the next read
    assert next_key(b"\x1b[1;5C") == ("right", 6)  # Ctrl-Right is Right
    assert next_key(b"\r") == ("enter", 1) and next_key(b"\x7f") == ("backspace", 1) and next_key(b"\t") == ("tab", 1)
    assert next_key("é".encode()) == ("é", 2) and next_key(b"q") == ("q", 1)


def test_escape_then_a_key_sent_together_is_two_presses():
    assert next_key(b"\x1be") == ("esc", 1) and next_key(b"\x1b") == ("esc", 1)


def test_incomplete_sequence_waits_for_more():
    assert next_key(b"\x1b[") == (None, 0) and next_key(b"\xe2\x86") == (None, 0) and next_key(b"") == (None, 0)


def test_reader_without_a_terminal_reads_nothing():
    with KeyReader(io.StringIO()) as keys:
        assert not keys.is_tty and keys.read(0) is None
