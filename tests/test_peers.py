"""Peers: each reader runs in a process of its own and decodes a known crop; absent peers are named, not fatal."""

import sys

import numpy as np
import pytest
from conftest import CCPD_SAMPLE, REPO, SHIPPED, needs_sample

from plate_lib import peers
from plate_lib.sources import open_source

sys.path.insert(0, str(REPO / "benchmarks"))
import peer_readers  # noqa: E402
from peer_readers import read_images  # noqa: E402

KNOWN = "皖A931Y9"  # the first photo of the CCPD sample's test split: every reader reads it from its corners


def skip_unless_installed(reader: str) -> None:
    why = peers.missing(reader)
    if why:
        pytest.skip(f"{reader}: {why}")


@pytest.fixture(scope="module")
def known_crop() -> np.ndarray:
    if not CCPD_SAMPLE.is_dir():
        pytest.skip(f"real CCPD2019 sample not found at {CCPD_SAMPLE} (../shared is absent)")
    src = open_source(CCPD_SAMPLE)
    rec = next(r for r in src.records("test") if r.text == KNOWN)
    return src.load(rec)


def test_crops_of_any_size_travel_to_a_reader_unchanged(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in ((36, 136), (24, 94), (70, 220))]
    back = read_images(peers.write_images(tmp_path / "x.npz", images))
    assert len(back) == 3 and all(np.array_equal(a, b) for a, b in zip(images, back, strict=True))


def test_a_timing_round_another_process_disturbed_does_not_count(monkeypatch):
    """Each timing is the best of ``ROUNDS`` rounds (as timeit's): the latency of the round with the lowest p50,
    the plates/s of the fastest round. Fake clocks here: the middle round runs twice as slow."""
    monkeypatch.setattr(peer_readers, "set_threads", lambda n: None)  # this process's threads stay as they are
    rounds = iter([1.0] * 200 + [2.0] * 200 + [1.1] * 200)  # ms a plate, round by round (warm-up reads aside)
    monkeypatch.setattr(peer_readers, "timed", lambda fn, *args: next(rounds) / 1000)
    got = peer_readers.latency_ms(lambda img: None, [None] * 7, threads=1, min_s=0)
    assert got == {"p50": 1.0, "p95": 1.0}
    passes = iter([0.5, 0.5, 1.0, 0.4, 0.4])  # seconds a pass over 10 plates: rounds of 1.0, 1.0 and 0.8 s
    monkeypatch.setattr(peer_readers, "timed", lambda fn, *args: next(passes))
    assert peer_readers.throughput(lambda ims: None, [None] * 10, threads=1, min_s=0.7) == 25.0  # 20 plates in 0.8 s


def test_a_fast_readers_timing_round_lasts_as_long_as_a_slow_ones(monkeypatch):
    """A round of one-plate readings goes on past its 200 readings until ``ROUND_S`` seconds have passed, so that a
    fast reader's round samples a machine whose speed flips as long as a slow reader's does."""
    monkeypatch.setattr(peer_readers, "set_threads", lambda n: None)
    calls = []
    monkeypatch.setattr(peer_readers, "timed", lambda fn, img: calls.append(img) or 2 ** -10)  # about 1 ms a reading
    peer_readers.latency_ms(lambda img: None, list(range(7)), threads=1, rounds=1, min_s=1.0)
    assert len(calls) == 1024 and calls[:9] == [0, 1, 2, 3, 4, 5, 6, 0, 1]  # the plates in turn
    calls.clear()
    monkeypatch.setattr(peer_readers, "timed", lambda fn, img: calls.append(img) or 2 ** -6)  # about 16 ms a reading
    peer_readers.latency_ms(lambda img: None, list(range(7)), threads=1, rounds=1, min_s=1.0)
    assert len(calls) == 200  # at least n readings, however long they take


def test_timings_are_the_best_of_passes_taken_in_turn_and_readings_the_first_pass():
    """``make peers`` times every reader in passes taken in turn; a reader's figures are the best pass's each (a
    slow spell of the machine then slows one pass of every reader), its readings the first pass's, and crops a
    later pass read otherwise are counted."""
    def run(texts, per_s, p50_1, p50_2, rss):
        return {"texts": texts, "plates_per_s": per_s, "latency_ms_1_thread": {"p50": p50_1, "p95": p50_1 + 1},
                "latency_ms_2_thread": {"p50": p50_2, "p95": p50_2 + 1}, "peak_rss_mb": rss}

    got = peers.best_timings([run(["A", "B"], 900.0, 1.5, 1.2, 600.0), run(["A", "B"], 1200.0, 1.9, 1.0, 610.0),
                              run(["A", "C"], 1000.0, 1.1, 1.4, 590.0)])
    assert got["texts"] == ["A", "B"] and got["readings_differ"] == 1
    assert got["plates_per_s"] == 1200.0 and got["peak_rss_mb"] == 610.0
    assert got["latency_ms_1_thread"] == {"p50": 1.1, "p95": 2.1}  # p50 and p95 of one pass, not mixed
    assert got["latency_ms_2_thread"] == {"p50": 1.0, "p95": 2.0}


@pytest.mark.parametrize("reader", ["plate_lib", "plate_lib_onnx", "plate_lib_tta"])
def test_plate_lib_in_its_own_process_reads_what_it_reads_in_this_one(reader):
    from plate_lib.inference import load_model, read_plates

    if reader != "plate_lib":
        pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (40, 130, 3), dtype=np.uint8) for _ in range(3)]
    got = peers.run_reader(reader, images, checkpoint=SHIPPED)
    model, cfg = load_model(SHIPPED)
    assert got["texts"] == [t for t, _ in read_plates(model, cfg, images, tta=reader == "plate_lib_tta")]
    assert set("皖苏A0Z9") <= set(got["alphabet"])


def test_a_reader_that_is_not_installed_is_named_with_what_to_do(monkeypatch, tmp_path):
    monkeypatch.setattr(peers, "PEERS_VENV", tmp_path / "no-venv")
    assert "make peers" in peers.missing("hyperlpr")
    assert "not found" in peers.missing("lprnet", tmp_path / "none.pth")
    readings, absent = peers.peer_readings([], readers=["hyperlpr"])
    assert readings == {} and "make peers" in absent["hyperlpr"]
    with pytest.raises(peers.PeerError, match="make peers"):
        peers.run_reader("hyperlpr", [])


@needs_sample
@pytest.mark.parametrize("reader", peers.PEERS)
def test_each_peer_decodes_a_known_crop(reader, known_crop):
    skip_unless_installed(reader)
    got = peers.run_reader(reader, [known_crop])
    assert got["texts"] == [KNOWN]
    assert set(KNOWN) <= set(got["alphabet"])


@needs_sample
def test_lprnet_reads_one_plate_the_same_alone_or_twice(known_crop):
    skip_unless_installed("lprnet")
    assert peers.run_reader("lprnet", [known_crop, known_crop])["texts"] == [KNOWN, KNOWN]
