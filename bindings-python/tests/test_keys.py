"""shmsock.Keypair and shmsock.PublicKey."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import shmsock


def test_generate_and_text_forms() -> None:
    kp = shmsock.Keypair.generate()
    pk = kp.public_key
    assert isinstance(pk, shmsock.PublicKey)
    assert pk.text.startswith("shmsock-pk:") and len(pk.text) == len("shmsock-pk:") + 43
    assert str(pk) == pk.text
    assert len(bytes(pk)) == 32 and pk.bytes == bytes(pk)
    assert len(pk.fingerprint) == 19 and pk.fingerprint.count(":") == 3
    assert kp.fingerprint == pk.fingerprint
    assert "shmsock-pk:" in repr(kp) and "secret" not in repr(kp).lower()
    assert repr(pk) == f"PublicKey('{pk.text}')"
    assert len(kp.secret_bytes()) == 32
    assert shmsock.Keypair.generate().public_key != pk


def test_public_key_round_trips_and_equality() -> None:
    pk = shmsock.Keypair.generate().public_key
    assert shmsock.PublicKey(pk.text) == pk
    assert shmsock.PublicKey(bytes(pk)) == pk
    assert shmsock.PublicKey(pk) == pk
    assert shmsock.PublicKey.from_text("  " + pk.text + "\n") == pk
    assert shmsock.PublicKey.from_bytes(bytearray(bytes(pk))) == pk
    assert len({pk, shmsock.PublicKey(pk.text)}) == 1
    assert pk != pk.text  # a key is not equal to its text
    assert (pk == 3) is False


def test_from_secret_bytes_is_deterministic() -> None:
    kp = shmsock.Keypair.generate()
    again = shmsock.Keypair.from_secret_bytes(kp.secret_bytes())
    assert again.public_key == kp.public_key
    with pytest.raises(shmsock.InvalidKey, match="32 bytes"):
        shmsock.Keypair.from_secret_bytes(b"short")


@pytest.mark.parametrize(
    "bad, match",
    [
        ("", "starts with"),
        ("pk:AAAA", "starts with"),
        ("shmsock-pk:!!!!", "base64url"),
        ("shmsock-pk:AAAA", "holds 3 bytes"),
    ],
)
def test_malformed_public_key_text(bad: str, match: str) -> None:
    with pytest.raises(shmsock.InvalidKey, match=match) as info:
        shmsock.PublicKey(bad)
    assert isinstance(info.value, ValueError)
    assert info.value.code == "INVALID_KEY"


def test_wrong_types() -> None:
    with pytest.raises(shmsock.InvalidKey, match="32 bytes"):
        shmsock.PublicKey(b"\0" * 31)
    with pytest.raises(TypeError, match="PublicKey"):
        shmsock.PublicKey(12)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        shmsock.Keypair.load(12)  # type: ignore[arg-type]


def test_save_and_load(tmp_path: Path) -> None:
    kp = shmsock.Keypair.generate()
    path = tmp_path / "server.key"
    kp.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    loaded = shmsock.Keypair.load(str(path))
    assert loaded.public_key == kp.public_key
    assert loaded.secret_bytes() == kp.secret_bytes()
    with pytest.raises(shmsock.InvalidArgument, match="already exists") as info:
        kp.save(path)
    assert isinstance(info.value, ValueError)


def test_insecure_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "id.key"
    shmsock.Keypair.generate().save(path)
    os.chmod(path, 0o644)
    with pytest.raises(shmsock.InsecureKeyFile, match="chmod 600"):
        shmsock.Keypair.load(path)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(shmsock.NotFound, match="does not exist") as info:
        shmsock.Keypair.load(tmp_path / "nope.key")
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "no 'secret-key:'"),
        ("garbage line\n", "not 'field: value'"),
        ("public-key: x\nsecret-key: y\n", "starts with"),
        ("colour: blue\n", "unknown field"),
    ],
)
def test_malformed_key_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    with pytest.raises(shmsock.InvalidKey, match=match):
        shmsock.Keypair.load(path)
