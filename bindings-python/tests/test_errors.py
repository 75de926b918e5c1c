"""The exception hierarchy: one base, one class per core error kind, built-in
bases where they fit, stable codes."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import shmsock

KINDS = [
    # (class, code, numeric code, built-in base or None)
    (shmsock.Timeout, "TIMEOUT", 1, TimeoutError),
    (shmsock.WouldBlock, "WOULD_BLOCK", 2, BlockingIOError),
    (shmsock.Closed, "CLOSED", 3, None),
    (shmsock.PeerClosed, "PEER_CLOSED", 4, ConnectionError),
    (shmsock.PeerGone, "PEER_GONE", 5, ConnectionResetError),
    (shmsock.HandshakeRejected, "HANDSHAKE_REJECTED", 6, ConnectionRefusedError),
    (shmsock.ServerKeyMismatch, "SERVER_KEY_MISMATCH", 7, ConnectionError),
    (shmsock.AuthenticationFailed, "AUTHENTICATION_FAILED", 8, ConnectionError),
    (shmsock.ProtocolVersion, "PROTOCOL_VERSION", 9, ConnectionError),
    (shmsock.NoCommonCipher, "NO_COMMON_CIPHER", 10, ConnectionError),
    (shmsock.ProtocolViolation, "PROTOCOL_VIOLATION", 11, ConnectionError),
    (shmsock.MessageTooLarge, "MESSAGE_TOO_LARGE", 12, ValueError),
    (shmsock.BufferTooSmall, "BUFFER_TOO_SMALL", 13, ValueError),
    (shmsock.InvalidName, "INVALID_NAME", 14, ValueError),
    (shmsock.AddressInUse, "ADDRESS_IN_USE", 15, OSError),
    (shmsock.NotFound, "NOT_FOUND", 16, FileNotFoundError),
    (shmsock.InvalidKey, "INVALID_KEY", 17, ValueError),
    (shmsock.InsecureKeyFile, "INSECURE_KEY_FILE", 18, None),
    (shmsock.InvalidArgument, "INVALID_ARGUMENT", 19, ValueError),
    (shmsock.ResourceExhausted, "RESOURCE_EXHAUSTED", 20, OSError),
    (shmsock.PermissionDenied, "PERMISSION_DENIED", 21, PermissionError),
    (shmsock.Io, "IO", 22, OSError),
]


@pytest.mark.parametrize("cls, code, number, builtin", KINDS)
def test_hierarchy_and_codes(cls: type, code: str, number: int, builtin: type) -> None:
    assert issubclass(cls, shmsock.Error) and issubclass(cls, Exception)
    if builtin is not None:
        assert issubclass(cls, builtin)
    assert cls.code == code and cls.numeric_code == number  # type: ignore[attr-defined]
    assert cls.__module__ == "shmsock" and cls.__doc__
    e = cls("what happened; what to do")
    assert str(e) == "what happened; what to do"
    assert e.code == code
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is cls and str(again) == str(e)


def test_every_core_kind_has_a_class_in_code_order() -> None:
    classes = shmsock._shmsock._error_classes
    numbers = [cls.numeric_code for cls in classes]  # type: ignore[attr-defined]
    assert numbers == sorted(set(numbers)) and numbers[0] == 1
    for cls in classes:
        assert getattr(shmsock, cls.__name__) is cls and cls.__name__ in shmsock.__all__
        assert issubclass(cls, shmsock.Error) and cls.__doc__


def test_the_stubs_have_the_error_classes_of_the_module() -> None:
    """The stubs' copy of the classes (made from the core's table) is current."""
    tool = Path(__file__).resolve().parent.parent / "tools" / "gen_error_stubs.py"
    result = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_codes_are_unique() -> None:
    assert len({k[1] for k in KINDS}) == len({k[2] for k in KINDS}) == len(KINDS)


def test_base_and_callback_error() -> None:
    assert shmsock.Error.code == "ERROR" and shmsock.Error.numeric_code == 0
    assert issubclass(shmsock.CallbackError, shmsock.Error)
    assert shmsock.CallbackError.code == "CALLBACK_ERROR"


def test_buffer_too_small_carries_needed() -> None:
    assert shmsock.BufferTooSmall("x").needed is None
