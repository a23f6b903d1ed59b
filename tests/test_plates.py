"""Plates: the label format, file-name parsing, the cp437 repair, encoding and CTC decoding."""

import numpy as np
import pytest
import torch

from plate_lib.inference import decode_logits, decode_readings
from plate_lib.plates import (
    PROVINCES,
    SYMBOL_CLASS,
    PlateError,
    _logaddexp,
    check_plate,
    ctc_beam_search,
    ctc_greedy_decode,
    decode,
    encode,
    is_issued_format,
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
    ("粤B1234学", "a driving-school plate, which plate_lib does not read"),
    ("使1234567", "an embassy plate, which plate_lib does not read"),
    ("WJ12345", "an armed-police plate"),
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


@pytest.mark.parametrize("name, plate", [
    ("crops/0001_苏E12345.jpg", "苏E12345"),      # an id joined by an underscore
    ("苏E12345_2.jpg", "苏E12345"),               # copies of one plate
    ("苏E12345 (2).jpg", "苏E12345"),
    ("苏E12345(2).png", "苏E12345"),
    ("cam3_20240601-苏E12345_1.jpg", "苏E12345"),
    ("IMG_0001.jpg", "IMG_0001"),                 # no plate in it: the part after the last dash, checked as before
    ("苏E12345_苏E12346.jpg", "苏E12345_苏E12346"),  # two plates: which is meant? the check says it is none
    ("京A12345-京A1234.jpg", "京A1234"),          # the last part tries a plate: its check names what is wrong
    ("x/皖A12345-京A1234I.jpg", "京A1234I"),
    ("京A1234I_2.jpg", "京A1234I"),               # the one part that tries a plate, mistyped: its check names the I
])
def test_a_name_whose_last_part_is_no_plate_gives_the_one_part_that_is(name, plate):
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


def log_probs(rows: list[dict[str, float]]) -> np.ndarray:
    """CTC log-probabilities from per-step {symbol: prob} (``"-"`` the blank; the rest spread evenly)."""
    out = np.full((len(rows), len(SYMBOL_CLASS) + 1), 1e-6)
    for t, row in enumerate(rows):
        for sym, p in row.items():
            out[t, 0 if sym == "-" else SYMBOL_CLASS[sym]] = p
    return np.log(out / out.sum(1, keepdims=True))


def _province_sure() -> torch.Tensor:
    """Province logits with the first province (皖) at 0.9986."""
    prov = torch.zeros(1, len(PROVINCES))
    prov[0, 0] = 10.0
    return prov


def test_beam_search_reads_a_confident_path_like_greedy_decoding():
    lp = log_probs([{"A": 1}, {"-": 1}, {"8": 1}, {"-": 1}, {"8": 1}])
    best, logp = ctc_beam_search(lp)[0]
    assert best == "A88" and logp > -1e-3


def test_beam_search_sums_alignments_where_the_best_path_misleads():
    # best path: "-" "-" = "" (0.36); but "A" has paths A-, -A, AA: 0.16 + 0.24 + 0.24 = 0.64
    lp = log_probs([{"-": 0.6, "A": 0.4}, {"-": 0.6, "A": 0.4}])
    readings = dict(ctc_beam_search(lp))
    assert ctc_greedy_decode(lp.argmax(1)) == ""
    assert max(readings, key=readings.get) == "A"
    assert np.exp(readings["A"]) == pytest.approx(0.64, abs=1e-3)


def test_beam_search_trying_the_top_classes_reads_as_trying_every_class_on_a_trained_models_output():
    # peaked per-step distributions, as a trained model gives: the 8 most probable classes a step hold the readings
    rng = np.random.default_rng(0)
    for _ in range(20):
        logits = rng.normal(0, 4, (18, len(SYMBOL_CLASS) + 1))
        lp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        top8, every = ctc_beam_search(lp), ctc_beam_search(lp, top=len(SYMBOL_CLASS))
        assert [t for t, _ in top8[:3]] == [t for t, _ in every[:3]]
        assert top8[0][1] == pytest.approx(every[0][1], abs=0.05)


def test_beam_search_log_probabilities_add_up_as_numpy_does():
    for a, b in [(0.0, 0.0), (-1.5, -30.0), (-np.inf, -2.0), (-3.0, -np.inf), (-np.inf, -np.inf)]:
        assert _logaddexp(a, b) == pytest.approx(np.logaddexp(a, b))


def test_decoding_prefers_the_most_probable_plate_to_a_best_path_that_is_no_plate():
    # "AD197889" (9 characters with the province) if step 10 is a blank (0.55), "AD19789" if it is an 8 (0.45)
    lp = log_probs([{"A": 1}, {"-": 1}, {"D": 1}, {"-": 1}, {"1": 1}, {"9": 1}, {"7": 1}, {"-": 1}, {"8": 1},
                    {"-": 0.55, "8": 0.45}, {"8": 1}, {"9": 1}])
    assert "皖" + ctc_greedy_decode(lp.argmax(1)) == "皖AD197889"
    prov = _province_sure()
    texts, conf = decode_logits(prov, torch.from_numpy(lp)[None].float(), PROVINCES)
    assert texts == ["皖AD19789"] and float(conf[0]) == pytest.approx(0.45, abs=0.01)
    # a best path that is a plate is kept as it is
    texts, _ = decode_logits(prov, torch.from_numpy(log_probs([{"A": 1}, {"1": 1}, {"2": 1}, {"3": 1},
                                                                  {"4": 1}, {"5": 1}]))[None].float(), PROVINCES)
    assert texts == ["皖A12345"]


def test_the_weakest_character_is_the_least_sure_character_not_the_hesitation_beside_it():
    # each character clear at its best step (0.99, 0.97), the steps between hesitating with the blank (0.55):
    # the confidence multiplies every step and falls to ~0.1; the weakest character is 0.97 (the "5")
    steps = [{"A": 0.99, "-": 0.01}, {"A": 0.55, "-": 0.45}, {"1": 0.99, "-": 0.01}, {"-": 0.55, "2": 0.45},
             {"2": 0.99, "-": 0.01}, {"3": 0.99, "-": 0.01}, {"-": 0.55, "4": 0.45}, {"4": 0.99, "-": 0.01},
             {"-": 0.55, "5": 0.45}, {"5": 0.97, "-": 0.03}]
    prov = _province_sure()  # the province 0.9986
    texts, conf, weakest, _ = decode_readings(prov, torch.from_numpy(log_probs(steps))[None].float(), PROVINCES)
    assert texts == ["皖A12345"]
    assert float(conf[0]) < 0.2
    assert float(weakest[0]) == pytest.approx(0.97, abs=0.005)
    # an unsure province bounds it too
    prov[0, 1] = 10.0  # two provinces at 0.5 each
    assert float(decode_readings(prov, torch.from_numpy(log_probs(steps))[None].float(), PROVINCES)[2][0]) == \
        pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("text, issued", [
    ("皖A12345", True), ("苏BD1234", True), ("新ZABCDE", True),  # 7 characters: any letters and digits
    ("沪AD12345", True), ("皖AFK1234", True), ("粤B12345D", True),  # new-energy: small cars, a large vehicle
    ("京AA12345", True), ("京AKA1234", True), ("京AC03583", True),  # small cars' A-K since 2021 (D, F before)
    ("皖AL03583", False), ("皖AD1A234", False), ("皖A123456", False),  # 8 characters in no new-energy format
    ("皖A1234", False), ("皖1A2345", False), ("X皖12345", False),
    ("皖AI2345", False), ("皖AO2345", False), ("皖A1234O", False),  # I and O are on no plate
])
def test_the_formats_china_issues_are_what_decoding_accepts(text, issued):
    assert is_issued_format(text) is issued
    if len(text) == 8:
        assert check_plate(text) == text  # as a label, any 8 letters and digits pass: a source is never refused


def test_an_eight_character_reading_in_no_issued_format_is_read_as_the_likeliest_plate():
    # best path "AL03583" after the province: 8 characters, no new-energy plate; the beam search's likeliest
    # plate in an issued format drops the doubtful 8 (0.6 against the blank's 0.4)
    lp = log_probs([{"A": 1}, {"L": 1}, {"0": 1}, {"3": 1}, {"5": 1}, {"-": 1}, {"8": 0.6, "-": 0.4}, {"3": 1}])
    assert "皖" + ctc_greedy_decode(lp.argmax(1)) == "皖AL03583"
    prov = _province_sure()
    texts, conf, weakest, _ = decode_readings(prov, torch.from_numpy(lp)[None].float(), PROVINCES)
    assert texts == ["皖AL0353"] and float(conf[0]) == pytest.approx(0.4, abs=0.01) and float(weakest[0]) == 0.0


def test_a_reading_holding_i_or_o_is_read_as_the_likeliest_plate_without_them():
    lp = log_probs([{"A": 1}, {"O": 0.6, "0": 0.4}, {"1": 1}, {"2": 1}, {"3": 1}, {"4": 1}])  # best path AO1234
    prov = _province_sure()
    texts, _, _, _ = decode_readings(prov, torch.from_numpy(lp)[None].float(), PROVINCES)
    assert texts == ["皖A01234"]


def test_a_plate_followed_by_a_line_break_is_no_plate():
    with pytest.raises(PlateError, match=r"after the city letter"):
        check_plate("皖A12345\n")
    assert not is_issued_format("皖A12345\n")


def test_a_reading_the_beam_search_stood_in_for_has_no_sure_character():
    lp = log_probs([{"A": 1}, {"-": 1}, {"D": 1}, {"-": 1}, {"1": 1}, {"9": 1}, {"7": 1}, {"-": 1}, {"8": 1},
                    {"-": 0.55, "8": 0.45}, {"8": 1}, {"9": 1}])  # best path 9 characters: no plate
    prov = _province_sure()
    texts, _, weakest, _ = decode_readings(prov, torch.from_numpy(lp)[None].float(), PROVINCES)
    assert texts == ["皖AD19789"] and float(weakest[0]) == 0.0


# a green plate 皖AD12345 whose reading lost a character: between 3 and 5 a blank (0.6) or the 4 (0.4)
GREEN_STEPS = [{"A": 1}, {"D": 1}, {"1": 1}, {"2": 1}, {"3": 1}, {"-": 0.6, "4": 0.4}, {"5": 1}]


def test_a_green_crop_is_read_as_the_likeliest_eight_character_plate():
    lp = torch.from_numpy(log_probs(GREEN_STEPS))[None].float()
    assert decode_readings(_province_sure(), lp, PROVINCES)[0] == ["皖AD1235"]  # a blue plate's 7 characters
    texts, conf, weakest, _ = decode_readings(_province_sure(), lp, PROVINCES, np.array([8]))
    assert texts == ["皖AD12345"] and float(conf[0]) == pytest.approx(0.4, abs=0.01)
    assert float(weakest[0]) == 0.0  # read again by the second look


def test_a_reading_of_the_colours_length_or_a_colour_that_says_nothing_is_kept():
    lp = torch.from_numpy(log_probs(GREEN_STEPS))[None].float()
    for lengths in (np.array([7]), np.array([0]), None):  # blue, yellow or unknown, colour decoding off
        texts, _, weakest, _ = decode_readings(_province_sure(), lp, PROVINCES, lengths)
        assert texts == ["皖AD1235"] and float(weakest[0]) > 0.5


def test_a_colours_length_no_reading_holds_keeps_the_plate_read():
    # every step sure: no 8-character plate among the readings, the 7-character plate stands
    lp = torch.from_numpy(log_probs([{"A": 1}, {"1": 1}, {"2": 1}, {"3": 1}, {"4": 1}, {"5": 1}]))[None].float()
    texts, _, weakest, _ = decode_readings(_province_sure(), lp, PROVINCES, np.array([8]))
    assert texts == ["皖A12345"] and float(weakest[0]) == 0.0


def test_ccpd_indices_decode_with_ccpds_tables():
    assert plate_from_ccpd_indices([0, 0, 22, 10, 27, 31, 29]) == "皖AYL375"  # ads[22]=Y, ads[10]=L, ads[27]=3
    assert plate_from_ccpd_indices([0, 0, 3, 24, 24, 24, 29, 28]) == "皖AD00054"
    with pytest.raises(PlateError, match="index 40"):
        plate_from_ccpd_indices([0, 0, 40, 1, 1, 1, 1])


@pytest.mark.parametrize("label, likely", [("京N84I28", "京N84128"), ("京NMVO02", "京NMV002"), ("苏OA1234", None)])
def test_a_label_holding_i_or_o_is_refused_as_the_typo_it_is(label, likely):
    with pytest.raises(PlateError, match="which Chinese plates never use") as e:
        check_plate(label)
    assert (f"the plate is likely '{likely}'" in str(e.value)) if likely else "likely" not in str(e.value)


def test_names_zip_tools_on_chinese_windows_store_in_gbk_are_repaired_too():
    stored = "test/0-京N84E28.jpg".encode("gbk").decode("cp437")  # no UTF-8 flag: zipfile reads GBK bytes as cp437
    assert repair_zip_name(stored, utf8_flag=False) == "test/0-京N84E28.jpg"
    for name in ("Ä.jpg", "café_1.jpg", "Müller.jpg", "naïve.png"):  # cp437 names, some also GBK, none a plate
        assert repair_zip_name(name, utf8_flag=False) == name


def test_gbk_names_whose_bytes_are_utf8_too_are_read_as_the_plate_they_name():
    for plate in ("鲁B12345", "豫A54321"):  # GBK's 鲁 (C2 B3) and 豫 (D4 A5) are UTF-8 for ³ and ԥ
        stored = f"test/0-{plate}.jpg".encode("gbk").decode("cp437")
        assert repair_zip_name(stored, utf8_flag=False) == f"test/0-{plate}.jpg"
    utf8 = "test/0-鲁B12345.jpg".encode().decode("cp437")  # the same plate stored in UTF-8 stays UTF-8
    assert repair_zip_name(utf8, utf8_flag=False) == "test/0-鲁B12345.jpg"


def test_a_word_after_the_plate_that_starts_like_a_province_does_not_hide_the_plate():
    assert label_from_filename("皖AD12345_新能源.jpg") == "皖AD12345"  # 新 (Xinjiang) starts "new energy"
    assert label_from_filename("苏E12345_黑.jpg") == "苏E12345"  # 黑 (Heilongjiang) is also "black"
    assert label_from_filename("苏E12345_苏E54321.jpg") == "苏E12345_苏E54321"  # two plates: which is meant?
