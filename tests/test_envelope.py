"""The envelope of a shared store's entry: what it says of its value, readable only as it was written
(and signed); a tombstone never opens as an entry, nor an entry as a tombstone."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vix_ttl._envelope import GONE, Header, open_envelope, seal, seal_local
from vix_ttl._signing import Signer, signer_of

SIGNER = signer_of("an application secret of 32 chars", owner="test")
OTHER = signer_of("another application's own secret", owner="test")
assert SIGNER is not None and OTHER is not None
KEY = b"odds:match-7"
HEADER = Header(1_000_000.5, 60.0, 60.0, "normal", 0.25, 1_000_000.75)

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
ttls = st.one_of(st.floats(min_value=0, max_value=1e9), st.just(math.inf))
headers = st.builds(
    Header,
    stored_at=finite,
    ttl=ttls,
    base_ttl=ttls,
    status=st.sampled_from(["normal", "warning", "panic"]),
    delta=st.floats(min_value=0, max_value=1e6),
    order=st.one_of(st.just(math.nan), finite),
)
payloads = st.one_of(st.text(), st.binary())


def opened_as(header: Header) -> Header:
    """*header* as it reads back: an order of NaN is its stored-at time."""
    return header._replace(order=header.stored_at) if math.isnan(header.order) else header


@given(header=headers, payload=payloads, signed=st.booleans())
def test_an_envelope_opens_to_the_header_and_payload_it_was_sealed_with(
    header: Header, payload: str | bytes, signed: bool
) -> None:
    signer = SIGNER if signed else None
    sealed = seal(header, payload, signer=signer, key=KEY)
    assert type(sealed) is type(payload)  # crosses any serializer: str stays str, bytes bytes
    assert open_envelope(sealed, signer=signer, key=KEY) == (opened_as(header), payload)


@given(header=headers, payload=st.one_of(payloads, st.integers(), st.lists(st.integers())))
def test_an_in_process_envelope_is_a_tuple_that_needs_no_signature(header: Header, payload: Any) -> None:
    sealed = seal_local(header, payload)
    assert isinstance(sealed, tuple)  # no network backend can hand back a tuple: nobody else wrote it
    assert open_envelope(sealed, signer=SIGNER, key=KEY) == (opened_as(header), payload)


def test_a_payload_neither_str_nor_bytes_is_sealed_in_process_or_refused_when_signed() -> None:
    assert seal(HEADER, [1, 2]) == seal_local(HEADER, [1, 2])
    with pytest.raises(
        TypeError, match="a signed entry needs a serializer that makes str or bytes, got list"
    ):
        seal(HEADER, [1, 2], signer=SIGNER, key=KEY)


@given(payload=st.binary(max_size=50), data=st.data())
def test_a_signed_envelope_with_any_byte_changed_never_opens(payload: bytes, data: st.DataObject) -> None:
    sealed = seal(HEADER, payload, signer=SIGNER, key=KEY)
    at = data.draw(st.integers(0, len(sealed) - 1))
    tampered = sealed[:at] + bytes([sealed[at] ^ data.draw(st.integers(1, 255))]) + sealed[at + 1 :]
    assert open_envelope(tampered, signer=SIGNER, key=KEY) is None
    text = seal(HEADER, "1.85", signer=SIGNER, key=KEY)
    at = data.draw(st.integers(0, len(text) - 1))
    changed = text[:at] + data.draw(st.characters().filter(lambda c: c != text[at])) + text[at + 1 :]
    assert open_envelope(changed, signer=SIGNER, key=KEY) is None


@pytest.mark.parametrize("payload", ["1.85", b"\x81\xa4odds"])
def test_a_signed_envelope_opens_under_its_own_key_with_its_own_secret_only(payload: str | bytes) -> None:
    sealed = seal(HEADER, payload, signer=SIGNER, key=KEY)
    assert open_envelope(sealed, signer=SIGNER, key=KEY) is not None
    assert open_envelope(sealed, signer=SIGNER, key=b"odds:match-8") is None  # copied to another key
    assert open_envelope(sealed, signer=OTHER, key=KEY) is None  # another application's secret
    assert open_envelope(sealed, signer=Signer([b"an application secret of 32 chars"]), key=None) is None
    assert open_envelope(sealed, key=KEY) is not None  # without a signer nothing is checked


@pytest.mark.parametrize("payload", ["1.85", b"1.85"])
def test_an_unsigned_envelope_never_opens_for_a_reader_with_a_secret(payload: str | bytes) -> None:
    assert open_envelope(seal(HEADER, payload), signer=SIGNER, key=KEY) is None


@pytest.mark.parametrize("signer", [None, SIGNER])
@pytest.mark.parametrize("payload", ["", b""])
def test_a_tombstone_never_opens_as_an_entry_nor_an_entry_as_a_tombstone(
    signer: Signer | None, payload: str | bytes
) -> None:
    tombstone = seal(HEADER._replace(status=GONE), payload, signer=signer, key=KEY)
    entry = seal(HEADER, payload, signer=signer, key=KEY)
    assert open_envelope(tombstone, signer=signer, key=KEY) is None
    assert open_envelope(tombstone, signer=signer, key=KEY, tombstone=True) is not None
    assert open_envelope(entry, signer=signer, key=KEY, tombstone=True) is None
    local = seal_local(HEADER._replace(status=GONE), None)
    assert open_envelope(local) is None and open_envelope(local, tombstone=True) is not None


@pytest.mark.parametrize(
    "head",
    [
        "nan|60.0|60.0|normal|0.0|1.0",  # no time to age it from
        "inf|60.0|60.0|normal|0.0|1.0",
        "1.0|-1.0|60.0|normal|0.0|1.0",  # a negative TTL
        "1.0|nan|60.0|normal|0.0|1.0",
        "1.0|60.0|-0.5|normal|0.0|1.0",
        "1.0|60.0|60.0|calm|0.0|1.0",  # no such status
        "1.0|60.0|60.0|normal|-1.0|1.0",  # a computation that took negative time
        "1.0|60.0|60.0|normal|inf|1.0",
        "1.0|60.0|60.0|normal|0.0|inf",  # a place no later value could follow
        "1.0|60.0|60.0|normal|0.0|nan",
        "1.0|60.0|60.0|normal",  # fields missing
        "1.0|60.0|60.0|normal|0.0|1.0|7",  # one too many
        "1.0|sixty|60.0|normal|0.0|1.0",
    ],
)
def test_an_envelope_whose_header_does_not_parse_or_is_out_of_range_never_opens(head: str) -> None:
    assert open_envelope(f"vix_ttl:2|-|{head}\n1.85") is None
    assert open_envelope(f"vix_ttl:2|-|{head}\n".encode() + b"1.85") is None


def test_a_header_of_0_2_has_no_place_and_takes_its_stored_at_time() -> None:
    opened = open_envelope("vix_ttl:2|-|1000.0|60.0|60.0|normal|0.5\n1.85")
    assert opened == (Header(1000.0, 60.0, 60.0, "normal", 0.5, 1000.0), "1.85")


@pytest.mark.parametrize(
    "raw",
    [
        "vix_ttl:1|1000.0|60.0|normal\n1.85",  # 0.1's envelopes (pickled by default) are not read
        "1.85",
        b"\x80\x04K\x01.",  # a bare pickle
        ("vix_ttl:2|", 1.0, 60.0, 60.0, "normal", 0.0),  # a tuple one field short
        ("not the mark", 1.0, 60.0, 60.0, "normal", 0.0, 1.0, "1.85"),
        None,
        42,
        b"vix_ttl:2|-|\xff\xfe|60|60|normal|0|1\n",  # not ASCII
    ],
)
def test_anything_else_is_not_an_envelope(raw: Any) -> None:
    assert open_envelope(raw) is None
    assert open_envelope(raw, signer=SIGNER, key=KEY) is None


@given(st.one_of(st.text(), st.binary()).map(lambda tail: ("vix_ttl:2|", tail)))
def test_opening_never_raises_whatever_follows_the_mark(parts: tuple[str, str | bytes]) -> None:
    mark, tail = parts
    raw = mark + tail if isinstance(tail, str) else mark.encode() + tail
    for signer in (None, SIGNER):
        opened = open_envelope(raw, signer=signer, key=KEY)
        assert opened is None or signer is None
