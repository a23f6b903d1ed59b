"""Plates: the label format, file-name parsing, the cp437 repair, encoding and CTC decoding."""

import pytest

from plate_lib.plates import (
    PROVINCES,
    SYMBOL_CLASS,
    PlateError,
    check_plate,
    ctc_greedy_decode,
    decode,
    encode,
    label_from_filename,
    plate_from_ccpd_indices,
    repair_zip_name,
)


@pytest.mark.parametrize("text", ["皖A12345", "苏BD1234", "沪AD12345", "新Z00000", "皖AF12345"])
def test_valid_blue_and_green_plates_pass(text):
    assert check_plate(text) == text


@pytest.mark.parametrize("text, why", [
    ("皖A1234", "has 6 characters"),
    ("皖A1234567", "has 9 characters"),
    ("XA12345", "starts with 'X'"),
    ("皖112345", "city letter"),
    ("皖A12a45", "after the city letter"),
    ("皖A12.45", "after the city letter"),
])
def test_invalid_plates_say_what_is_wrong(text, why):
    with pytest.raises(PlateError, match=why):
        check_plate(text)


@pytest.mark.parametrize("name, plate", [
    ("000123-皖AD1234.jpg", "皖AD1234"),
    ("CCPD2019-dl1/train/000123-皖AD1234.jpg", "皖AD1234"),
    ("皖A12345.jpg", "皖A12345"),
    ("some-id-with-dashes-沪B88888.png", "沪B88888"),
])
def test_label_is_the_part_after_the_last_dash(name, plate):
    assert label_from_filename(name) == plate


def test_cp437_mangled_names_are_repaired_and_flagged_names_kept():
    original = "CCPD2019-dl1/test/000001-皖A12345.jpg"
    mangled = original.encode("utf-8").decode("cp437")  # what zipfile shows without the UTF-8 flag
    assert mangled != original
    assert repair_zip_name(mangled, utf8_flag=False) == original
    assert repair_zip_name(original, utf8_flag=True) == original
    # a genuine cp437 name that is not UTF-8 underneath stays as it is
    assert repair_zip_name("café.jpg", utf8_flag=False) == "café.jpg"


def test_encode_then_decode_round_trips():
    prov, classes = encode("皖A88888")
    assert prov == PROVINCES.index("皖")
    assert classes == [SYMBOL_CLASS[c] for c in "A88888"]
    # interleave blanks as CTC would emit them
    path = []
    for c in classes:
        path += [c, 0]
    assert decode(prov, path) == "皖A88888"


def test_ctc_decode_keeps_doubled_characters_separated_by_blank():
    eight = SYMBOL_CLASS["8"]
    assert ctc_greedy_decode([eight, eight, 0, eight]) == "88"
    assert ctc_greedy_decode([eight, eight, eight]) == "8"
    assert ctc_greedy_decode([0, 0, 0]) == ""


def test_ccpd_indices_decode_with_ccpds_tables():
    assert plate_from_ccpd_indices([0, 0, 22, 10, 27, 31, 29]) == "皖AYL375"  # ads[22]=Y, ads[10]=L, ads[27]=3
    assert plate_from_ccpd_indices([0, 0, 3, 24, 24, 24, 29, 28]) == "皖AD00054"
    with pytest.raises(PlateError, match="index 40"):
        plate_from_ccpd_indices([0, 0, 40, 1, 1, 1, 1])
