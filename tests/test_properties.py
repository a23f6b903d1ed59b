"""Property-based tests: label parsing, the cp437 repair and the image decoder never misbehave."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plate_lib.images import DataError, decode_image
from plate_lib.plates import (
    NOT_ON_PLATES,
    PROVINCES,
    SYMBOLS,
    PlateError,
    check_plate,
    label_from_filename,
    repair_zip_name,
)

ON_PLATES = [s for s in SYMBOLS if s not in NOT_ON_PLATES]  # no I, no O
plates = st.builds(
    lambda p, c, rest: p + c + rest,
    st.sampled_from(PROVINCES),
    st.sampled_from([s for s in ON_PLATES if s.isalpha()]),
    st.text(alphabet=ON_PLATES, min_size=5, max_size=6),
)


@given(plates, st.text(alphabet="0123456789abc-_", max_size=12))
def test_any_valid_plate_survives_a_file_name_round_trip(plate, ident):
    name = f"{ident}-{plate}.jpg" if ident else f"{plate}.jpg"
    assert check_plate(label_from_filename(f"root/train/{name}")) == plate


@given(st.text(max_size=12))
def test_check_plate_accepts_or_raises_plate_error_only(text):
    try:
        assert check_plate(text) == text
    except PlateError as e:
        assert repr(text) in str(e)


@given(st.text(min_size=1, max_size=40))
def test_cp437_repair_inverts_zipfiles_decoding_of_utf8_bytes(name):
    mangled = name.encode("utf-8").decode("cp437")
    assert repair_zip_name(mangled, utf8_flag=False) == name
    assert repair_zip_name(name, utf8_flag=True) == name


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_decoder_fed_random_bytes_returns_an_image_or_a_data_error(buf):
    try:
        img = decode_image(buf, "random.jpg")
    except DataError as e:
        assert "random.jpg" in str(e)
    else:
        assert img.ndim == 3 and img.shape[2] == 3


@pytest.mark.parametrize("prefix", [b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n"])
@settings(max_examples=50, deadline=None)
@given(tail=st.binary(max_size=512))
def test_decoder_fed_truncated_headers_raises_data_error(prefix, tail):
    with pytest.raises(DataError, match="header.jpg"):
        decode_image(prefix + tail, "header.jpg")
