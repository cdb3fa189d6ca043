"""HMAC-SHA256 signatures of shared entries: only a holder of the secret makes one that verifies,
for that key and that body; secrets rotate; a secret anyone could guess is refused."""

from __future__ import annotations

import base64
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vix_ttl._signing import SIGNATURE_LENGTH, Signer, signer_of

OURS = "an application secret of 32 chars"
OLD = "the secret used before rotation!!"
keys = st.one_of(st.none(), st.binary(max_size=40))


def signer(*secrets: str) -> Signer:
    made = signer_of(list(secrets), owner="test")
    assert made is not None
    return made


@given(key=keys, body=st.binary(max_size=200))
def test_a_signature_verifies_for_its_key_and_body(key: bytes | None, body: bytes) -> None:
    signature = signer(OURS).sign(key, body)
    assert len(signature) == SIGNATURE_LENGTH
    assert set(signature) <= set(string.ascii_letters + string.digits + "-_")  # safe in any header
    assert signer(OURS).verify(key, body, signature)


@given(key=keys, body=st.binary(min_size=1, max_size=200), data=st.data())
def test_any_byte_changed_fails_verification(key: bytes | None, body: bytes, data: st.DataObject) -> None:
    signature = signer(OURS).sign(key, body)
    at = data.draw(st.integers(0, len(body) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = body[:at] + bytes([body[at] ^ flip]) + body[at + 1 :]
    assert not signer(OURS).verify(key, tampered, signature)


@given(key=keys, other=keys, body=st.binary(max_size=50))
def test_an_entry_moved_to_another_key_fails_verification(
    key: bytes | None, other: bytes | None, body: bytes
) -> None:
    if other == key:
        return
    assert not signer(OURS).verify(other, body, signer(OURS).sign(key, body))


@given(st.binary(max_size=30), st.binary(max_size=30), st.integers(0, 30))
def test_no_other_split_of_the_same_bytes_into_key_and_body_verifies(
    key: bytes, body: bytes, cut: int
) -> None:
    whole = key + body
    cut = min(cut, len(whole))
    if cut == len(key):
        return
    signature = signer(OURS).sign(key, body)
    assert not signer(OURS).verify(whole[:cut], whole[cut:], signature)


def test_an_unknown_key_is_not_the_empty_key() -> None:
    # VixSerializer without VixPlugin signs without the key: such a signature is not one for b"".
    assert not signer(OURS).verify(b"", b"body", signer(OURS).sign(None, b"body"))
    assert not signer(OURS).verify(None, b"body", signer(OURS).sign(b"", b"body"))


def test_another_secret_fails_verification() -> None:
    assert not signer(OLD).verify(b"k", b"body", signer(OURS).sign(b"k", b"body"))


def test_rotation_the_first_secret_signs_and_every_one_verifies() -> None:
    rotating = signer(OURS, OLD)
    assert rotating.verify(b"k", b"body", signer(OLD).sign(b"k", b"body"))  # entries written before
    fresh = rotating.sign(b"k", b"body")
    assert fresh == signer(OURS).sign(b"k", b"body")
    assert not signer(OLD).verify(b"k", b"body", fresh)  # the old secret can be retired after


@pytest.mark.parametrize(
    "signature",
    [
        "",
        "-",  # an unsigned entry's field
        "x" * (SIGNATURE_LENGTH - 1),
        "x" * (SIGNATURE_LENGTH + 1),
        "!" * SIGNATURE_LENGTH,  # not base64
        "é" * SIGNATURE_LENGTH,
        base64.urlsafe_b64encode(b"\0" * 32).decode().rstrip("="),  # well-formed, wrong
    ],
)
def test_a_malformed_or_wrong_signature_is_refused_never_an_exception(signature: str) -> None:
    assert not signer(OURS).verify(b"k", b"body", signature)


def test_no_secret_no_signer_and_a_str_secret_is_its_utf8_bytes() -> None:
    assert signer_of(None, owner="test") is None
    as_bytes = signer_of(OURS.encode(), owner="test")
    assert as_bytes is not None
    assert as_bytes.sign(b"k", b"v") == signer(OURS).sign(b"k", b"v")


@pytest.mark.parametrize(
    ("secret", "error", "message"),
    [
        ("short", ValueError, "at least 16 bytes"),
        ("ab" * 16, ValueError, "at least 8 different bytes"),
        (b"\0" * 64, ValueError, "at least 8 different bytes"),
        ([OURS, "short"], ValueError, "each secret must be at least 16 bytes"),  # every one, not the first
        ([], TypeError, "secret must be a str or bytes, or a non-empty list of them .*, got list"),
        (42, TypeError, "got int"),
        ([OURS, 42], TypeError, "got list"),
        ({OURS}, TypeError, "got set"),  # no order: which one would sign?
    ],
)
def test_a_secret_anyone_could_guess_or_of_the_wrong_type_is_refused_naming_its_owner(
    secret: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^vix_cached: .*{message}"):
        signer_of(secret, owner="vix_cached")  # type: ignore[arg-type]
