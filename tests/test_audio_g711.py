import audioop
import struct

import pytest
from hypothesis import given, strategies as st

from offhook.audio import MAX_INPUT_BYTES, ulaw_decode, ulaw_encode, ulaw_level_db, pcm_level_db


def test_decode_matches_g711_for_all_256_codes():
    codes = bytes(range(256))
    assert ulaw_decode(codes) == audioop.ulaw2lin(codes, 2)


def test_encode_matches_g711_for_all_65536_values():
    pcm = struct.pack("<65536h", *range(-32768, 32768))
    assert ulaw_encode(pcm) == audioop.lin2ulaw(pcm, 2)


def test_known_points():
    # 0xFF and 0x7F are the two zeros of mu-law; 0x80 and 0x00 the extremes.
    assert struct.unpack("<4h", ulaw_decode(b"\xff\x7f\x80\x00")) == (0, 0, 32124, -32124)
    assert ulaw_encode(struct.pack("<h", 0)) == b"\xff"


@given(st.binary(max_size=2000))
def test_roundtrip_is_idempotent_on_codes(data):
    # decode -> encode gives back the same codes, except that the negative zero 0x7F maps to 0xFF.
    assert ulaw_encode(ulaw_decode(data)) == data.replace(b"\x7f", b"\xff")


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_accepts_any_bytes_like(kind):
    data = bytes(range(256))
    assert ulaw_decode(kind(data)) == audioop.ulaw2lin(data, 2)
    pcm = audioop.ulaw2lin(data, 2)
    assert ulaw_encode(kind(pcm)) == audioop.lin2ulaw(pcm, 2)


def test_empty_input():
    assert ulaw_decode(b"") == b""
    assert ulaw_encode(b"") == b""
    assert ulaw_level_db(b"") == -100.0
    assert pcm_level_db(b"") == -100.0


def test_bad_input_gets_clear_errors():
    with pytest.raises(ValueError, match="even byte length"):
        ulaw_encode(b"\x00\x01\x02")
    with pytest.raises(ValueError, match="even byte length"):
        ulaw_encode(bytearray(3))
    for bad in ("text", 123, None, 1.5, [1, 2]):
        with pytest.raises(TypeError, match="bytes-like"):
            ulaw_decode(bad)
        with pytest.raises(TypeError, match="bytes-like"):
            ulaw_encode(bad)
    strided = memoryview(bytes(range(100)))[::2]
    with pytest.raises(ValueError, match="contiguous"):
        ulaw_decode(strided)


def test_huge_input_is_refused_not_allocated():
    big = bytearray(MAX_INPUT_BYTES + 2)
    with pytest.raises(ValueError, match="refused"):
        ulaw_decode(big)
    with pytest.raises(ValueError, match="refused"):
        ulaw_encode(big)


def test_levels():
    full = struct.pack("<2h", 32767, -32767) * 80
    assert pcm_level_db(full) == pytest.approx(0.0, abs=0.01)
    assert ulaw_level_db(ulaw_encode(full)) == pytest.approx(-0.17, abs=0.1)  # mu-law peak is 32124
    assert ulaw_level_db(b"\xff" * 160) == -100.0
