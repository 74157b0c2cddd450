"""Encrypted key files (spec 14.1): every bad file is a typed error and is never modified."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentauth import FileError, Identity, InvalidArgument, KeyFileError, crypto, keyfile, wire

ROOT = Path(__file__).resolve().parents[2]
PASS = "correct horse battery staple"


def fast_file(identity: Identity, passphrase: bytes = PASS.encode(), *, version: int = 1,
              opslimit: int = 1, memlimit: int = 8192, recorded_memlimit: int | None = None
              ) -> bytes:
    """A key file built from the spec's description, with the cheapest Argon2id limits a
    loader accepts: an independent check of the format, fast enough to mutate each byte."""
    salt, nonce = bytes(range(16)), bytes(range(24))
    recorded = memlimit if recorded_memlimit is None else recorded_memlimit
    fields = ["agentauth-key", version, opslimit, recorded, salt, nonce,
              identity.public_bytes]
    header = wire.encode_value([*fields, bytes(48)])[:-50]
    key = crypto.argon2id(passphrase, salt, opslimit, memlimit)
    box = crypto.xaead_seal(key, nonce, identity.export_seed(), header)
    return header + wire.encode_value(box)


@pytest.fixture
def identity() -> Identity:
    return Identity.from_seed(bytes(range(32)))


def write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    return path


def load_fails(path: Path, code: str, passphrase: str | bytes | None = PASS,
               **kwargs: bool) -> KeyFileError:
    before = path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_mode
    with pytest.raises(KeyFileError) as info:
        Identity.load(path, passphrase, **kwargs)
    assert info.value.code == code, info.value
    assert (path.read_bytes(), path.stat().st_mtime_ns, path.stat().st_mode) == before
    assert PASS not in str(info.value)
    return info.value


def test_round_trip_with_each_preset_name(tmp_path: Path, identity: Identity) -> None:
    identity.save(tmp_path / "a.key", PASS, preset="interactive")
    assert Identity.load(tmp_path / "a.key", PASS) == identity
    assert (tmp_path / "a.key").stat().st_mode & 0o777 == 0o600
    data = (tmp_path / "a.key").read_bytes()
    assert identity.export_seed() not in data and identity.export_seed().hex().encode() \
        not in data
    assert len(data) == 150
    assert sorted(keyfile.PRESETS) == ["interactive", "moderate", "sensitive"]
    fields = wire.decode_array(data, 512, "key file")
    assert fields[:4] == ["agentauth-key", 1, *keyfile.PRESETS["interactive"]]
    with pytest.raises(InvalidArgument):
        identity.save(tmp_path / "b.key", PASS, preset="quick")


def test_the_spec_form_opens(tmp_path: Path, identity: Identity) -> None:
    path = write(tmp_path / "a.key", fast_file(identity))
    assert Identity.load(path, PASS) == identity


def test_wrong_passphrase(tmp_path: Path, identity: Identity) -> None:
    path = write(tmp_path / "a.key", fast_file(identity))
    load_fails(path, "wrong_passphrase", "Correct horse battery staple")
    load_fails(path, "wrong_passphrase", PASS.encode() + b"\x00")


def test_unicode_passphrases_are_normalized(tmp_path: Path, identity: Identity) -> None:
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    path = write(tmp_path / "a.key", fast_file(identity, composed.encode()))
    assert Identity.load(path, decomposed) == identity
    with pytest.raises(InvalidArgument):
        Identity.load(path, "")


def test_every_truncation_is_refused(tmp_path: Path, identity: Identity) -> None:
    data = fast_file(identity)
    for length in range(len(data)):
        path = write(tmp_path / f"t{length}.key", data[:length])
        load_fails(path, "key_file_corrupt")


def test_trailing_bytes_are_refused(tmp_path: Path, identity: Identity) -> None:
    load_fails(write(tmp_path / "a.key", fast_file(identity) + b"\x00"), "key_file_corrupt")


REGIONS = {  # byte offsets in the fast file: where each field's value starts
    "magic": 2, "version": 15, "opslimit": 16, "memlimit": 18, "salt": 23, "nonce": 41,
    "public key": 67, "box": 101,
}


def test_each_byte_tampered_is_refused(tmp_path: Path, identity: Identity) -> None:
    data = fast_file(identity)
    codes = set()
    for i in range(len(data)):
        for flip in (0x01, 0x80):
            forged = bytearray(data)
            forged[i] ^= flip
            path = write(tmp_path / "x.key", bytes(forged))
            with pytest.raises(KeyFileError) as info:
                Identity.load(path, PASS)
            codes.add(info.value.code)
            assert path.read_bytes() == bytes(forged)
            path.unlink()
    assert codes == {"key_file_corrupt", "key_file_version", "wrong_passphrase"}


@pytest.mark.parametrize("region", sorted(REGIONS))
def test_each_region_tampered_is_refused_with_its_code(tmp_path: Path, identity: Identity,
                                                       region: str) -> None:
    data = bytearray(fast_file(identity))
    data[REGIONS[region]] ^= 0x01
    expected = {"magic": "key_file_corrupt", "version": "key_file_version",
                "opslimit": "key_file_corrupt"}
    load_fails(write(tmp_path / "x.key", bytes(data)),
               expected.get(region, "wrong_passphrase"))


def test_header_limits_cannot_be_raised_or_lowered_unseen(tmp_path: Path,
                                                        identity: Identity) -> None:
    too_costly = fast_file(identity, recorded_memlimit=2**31)
    load_fails(write(tmp_path / "big.key", too_costly), "key_file_corrupt")
    # A consistent file with other limits opens, but the same box under new limits does not.
    cheap = fast_file(identity, opslimit=2)
    moved = cheap[:16] + b"\x01" + cheap[17:]
    load_fails(write(tmp_path / "moved.key", moved), "wrong_passphrase")


def test_unknown_version(tmp_path: Path, identity: Identity) -> None:
    error = load_fails(write(tmp_path / "v2.key", fast_file(identity, version=2)),
                       "key_file_version")
    assert "version 2" in str(error)
    odd = wire.encode_value(["agentauth-key", 7])
    load_fails(write(tmp_path / "v7.key", odd), "key_file_version")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o700 | 0o004])
def test_group_or_world_readable_files_are_refused(tmp_path: Path, identity: Identity,
                                                   mode: int) -> None:
    path = write(tmp_path / "a.key", fast_file(identity), mode)
    error = load_fails(path, "key_file_permissions")
    assert "chmod 600" in str(error)


def test_unencrypted_files_only_when_asked(tmp_path: Path, identity: Identity) -> None:
    with pytest.raises(InvalidArgument):
        identity.save(tmp_path / "a.key")
    with pytest.raises(InvalidArgument):
        identity.save(tmp_path / "a.key", PASS, unencrypted=True)
    assert not (tmp_path / "a.key").exists()
    identity.save(tmp_path / "plain.key", unencrypted=True)
    load_fails(tmp_path / "plain.key", "key_file_unencrypted")
    load_fails(tmp_path / "plain.key", "key_file_unencrypted", None)
    assert Identity.load(tmp_path / "plain.key", unencrypted=True) == identity
    encrypted = write(tmp_path / "e.key", fast_file(identity))
    with pytest.raises(InvalidArgument):  # an encrypted file always needs its passphrase
        Identity.load(encrypted, unencrypted=True)


def test_never_overwritten(tmp_path: Path, identity: Identity) -> None:
    path = write(tmp_path / "a.key", b"anything")
    with pytest.raises(FileError) as info:
        identity.save(path, PASS, preset="interactive")
    assert info.value.code == "file_exists"
    assert path.read_bytes() == b"anything"


def test_not_a_regular_file_or_too_large(tmp_path: Path, identity: Identity) -> None:
    (tmp_path / "dir.key").mkdir(mode=0o700)
    with pytest.raises(FileError) as info:
        Identity.load(tmp_path / "dir.key", PASS)
    assert info.value.code == "file_not_regular"
    with pytest.raises(FileError) as info:
        Identity.load(write(tmp_path / "big.key", b"\x00" * 600), PASS)
    assert info.value.code == "file_too_large"
    with pytest.raises(FileError) as info:
        Identity.load(tmp_path / "missing.key", PASS)
    assert info.value.code == "file_not_found"


def test_a_seed_that_does_not_match_its_public_key(tmp_path: Path,
                                                   identity: Identity) -> None:
    other = Identity.from_seed(bytes(32))
    salt, nonce = bytes(16), bytes(24)
    header = wire.encode_value(["agentauth-key", 1, 1, 8192, salt, nonce,
                                other.public_bytes, bytes(48)])[:-50]
    box = crypto.xaead_seal(crypto.argon2id(PASS.encode(), salt, 1, 8192), nonce,
                            identity.export_seed(), header)
    load_fails(write(tmp_path / "a.key", header + wire.encode_value(box)), "key_file_corrupt")


def test_written_by_one_process_read_by_another(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "KEY_PASS": PASS}
    script = ("import os, sys; from agentauth import Identity; i = Identity.generate(); "
              "i.save(sys.argv[1], os.environ['KEY_PASS'], preset='interactive'); "
              "print(i.agent_id)")
    made = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a.key")], env=env,
                          capture_output=True, text=True, timeout=60, check=True)
    assert Identity.load(tmp_path / "a.key", PASS).agent_id == made.stdout.strip()
    read = subprocess.run(
        [sys.executable, "-c", "import os, sys; from agentauth import Identity; "
         "print(Identity.load(sys.argv[1], os.environ['KEY_PASS']).agent_id)",
         str(tmp_path / "a.key")], env=env, capture_output=True, text=True, timeout=60,
        check=True)
    assert read.stdout == made.stdout


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_are_a_typed_error(data: bytes) -> None:
    with contextlib.suppress(KeyFileError):
        keyfile.open_seed(data, PASS)
    if not keyfile.is_encrypted(data):
        with contextlib.suppress(KeyFileError):
            keyfile.open_plain(data)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_files_are_a_typed_error(data: st.DataObject) -> None:
    good = fast_file(Identity.from_seed(bytes(range(32))))
    cut = data.draw(st.integers(0, len(good)))
    insert = data.draw(st.binary(max_size=8))
    skip = data.draw(st.integers(0, 8))
    mutated = good[:cut] + insert + good[cut + skip:]
    try:
        seed, _ = keyfile.open_seed(mutated, PASS)
    except KeyFileError:
        return
    assert mutated == good and seed == bytes(range(32))


def test_the_claimed_public_key_needs_no_passphrase_and_is_only_a_claim(
        identity: Identity) -> None:
    data = fast_file(identity)
    assert keyfile.claimed_public_key(data) == identity.public_bytes
    other = Identity.from_seed(bytes(32))
    forged = data.replace(identity.public_bytes, other.public_bytes)
    assert keyfile.claimed_public_key(forged) == other.public_bytes  # what it claims
    with pytest.raises(KeyFileError) as info:  # refused once opened
        keyfile.open_seed(forged, PASS)
    assert info.value.code == "wrong_passphrase"
    for broken, code in ((data[:40], "key_file_corrupt"),
                         (fast_file(identity, version=2), "key_file_version"),
                         (fast_file(identity, recorded_memlimit=1), "key_file_corrupt")):
        with pytest.raises(KeyFileError) as info:  # the form is checked as a load does
            keyfile.claimed_public_key(broken)
        assert info.value.code == code
