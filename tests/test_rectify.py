"""rectify: the plate's coloured rectangle found in a bounding-box crop of a tilted plate, and warped level."""

import cv2
import numpy as np
import pytest
from conftest import SHIPPED

from plate_lib.preprocess import letterbox
from plate_lib.rectify import PLATE_SIZE, model_input, plate_quad, plate_quads, rectify
from plate_lib.synth import render_plate


def tilted_bbox_crop(colour: str, angle: float, seed: int = 0) -> np.ndarray:
    """A clean level plate rotated by ``angle`` degrees on a grey car, cut by its axis-aligned bounding box."""
    plate = render_plate("皖A12345" if colour != "green" else "皖AD12345", np.random.default_rng(seed), degrade=0,
                         rectified=True, colour=colour)
    h, w = plate.shape[:2]
    canvas = np.full((3 * h, 2 * w, 3), 90, np.uint8)
    canvas[h:2 * h, w // 2:w // 2 + w] = plate
    rot = cv2.getRotationMatrix2D((w, 1.5 * h), angle, 1.0)
    turned = cv2.warpAffine(canvas, rot, canvas.shape[1::-1], flags=cv2.INTER_LINEAR, borderValue=(90, 90, 90))
    corners = np.array([[w // 2, h], [w // 2 + w, h], [w // 2 + w, 2 * h], [w // 2, 2 * h]], np.float32)
    moved = cv2.transform(corners[None], rot)[0]
    x0, y0 = np.floor(moved.min(0)).astype(int)
    x1, y1 = np.ceil(moved.max(0)).astype(int)
    return turned[y0:y1, x0:x1]


def levelness(quad: np.ndarray) -> float:
    """Angle of the quad's top edge, degrees."""
    dx, dy = quad[1] - quad[0]
    return float(np.degrees(np.arctan2(dy, dx)))


@pytest.mark.parametrize("colour", ["blue", "yellow", "green"])
@pytest.mark.parametrize("angle", [-12, 8])
def test_finds_the_tilted_plate_of_each_colour(colour, angle):
    crop = tilted_bbox_crop(colour, angle)
    quad = plate_quad(crop)
    assert quad is not None
    assert abs(levelness(quad) + angle) < 3  # the top edge runs at the plate's tilt (image y points down)


def test_warps_to_a_level_plate_at_a_plates_aspect():
    out = rectify(tilted_bbox_crop("blue", 12))
    assert out.shape == (PLATE_SIZE[1], PLATE_SIZE[0], 3)
    hsv = cv2.cvtColor(out, cv2.COLOR_BGR2HSV)
    blue = (hsv[..., 0] >= 95) & (hsv[..., 0] <= 130) & (hsv[..., 1] > 70)
    assert blue.mean() > 0.6  # the plate fills the warp; the grey car is gone


@pytest.mark.parametrize("grayscale", [True, False])
def test_the_second_look_reads_the_level_plate_as_the_models_input(grayscale):
    crop = tilted_bbox_crop("blue", 12)
    x = model_input(crop, 48, 144, grayscale)
    assert x.shape == (48, 144, 1 if grayscale else 3) and x.dtype == np.uint8
    # the same picture as letterboxing the 440×140 warp, to within resampling (rows 1-46: a plate's 3.14:1)
    expected = letterbox(rectify(crop), 48, 144, grayscale)
    assert np.abs(x.astype(int) - expected.astype(int))[1:47].mean() < 4
    assert model_input(np.full((40, 120, 3), 128, np.uint8), 48, 144, grayscale) is None


def test_no_plate_colour_no_rectification():
    assert rectify(np.full((40, 120, 3), 128, np.uint8)) is None  # grey: nothing to find
    assert rectify(np.full((40, 120, 1), 128, np.uint8)) is None  # a grey crop carries no colour
    small = np.full((40, 120, 3), 128, np.uint8)
    small[15:25, 50:70] = (200, 60, 0)  # a blue patch, far too narrow to be the plate
    assert rectify(small) is None


def loose_crop(colour: str, margin: float, angle: float = 6.0, panel: bool = True,
               car: tuple[int, int, int] = (90, 90, 90)) -> tuple[np.ndarray, str, tuple]:
    """A clean plate with ``margin`` of its size of car (BGR ``car``) on every side (a detector's padded box), turned
    ``angle`` degrees, a square blue panel of the car in a corner: (crop, text, the plate's (x, y, w, h))."""
    text = "沪AD12345" if colour == "green" else "苏E6J209"
    plate = render_plate(text, np.random.default_rng(0), degrade=0, rectified=True, colour=colour)
    h, w = plate.shape[:2]
    rows, cols = round(h * (1 + 2 * margin)), round(w * (1 + 2 * margin))
    canvas = np.full((rows, cols, 3), car, np.uint8)
    y, x = (rows - h) // 2, (cols - w) // 2
    canvas[y:y + h, x:x + w] = plate
    if panel:
        canvas[:rows // 3, :cols // 5] = (160, 80, 20)
    turn = cv2.getRotationMatrix2D((cols / 2, rows / 2), angle, 1.0)
    return cv2.warpAffine(canvas, turn, (cols, rows), borderValue=car), text, (x, y, w, h)


@pytest.mark.parametrize("colour", ["blue", "yellow", "green"])
def test_finds_the_plate_in_a_loose_crop_with_car_around_it(colour):
    crop, _, (x, y, w, h) = loose_crop(colour, margin=0.75)  # the plate is 40 % of the crop's width
    quad = plate_quad(crop)
    assert quad is not None
    assert np.abs(quad.mean(0) - (x + w / 2, y + h / 2)).max() < 0.05 * w  # the plate, not the blue panel
    assert 0.95 * w < np.linalg.norm(quad[1] - quad[0]) < 1.15 * w
    assert abs(levelness(quad) + 6) < 3


def test_a_car_of_a_plate_colour_filling_the_crop_is_one_candidate_and_the_plate_inside_it_another():
    from plate_lib.inference import load_model, read_plates

    crop, text, (x, y, w, h) = loose_crop("blue", margin=0.75, panel=False, car=(140, 160, 120))  # greenish grey
    car, plate = plate_quads(crop)
    assert np.linalg.norm(car[1] - car[0]) > 0.95 * crop.shape[1]  # colour alone cannot tell the car from a plate
    assert np.abs(plate.mean(0) - (x + w / 2, y + h / 2)).max() < 0.05 * w
    assert np.linalg.norm(plate[1] - plate[0]) < 1.15 * w
    model, cfg = load_model(SHIPPED)
    assert read_plates(model, cfg, [crop], rectify_below=1)[0][0] == text  # the second look reads both


def test_a_plate_coloured_panel_not_shaped_like_a_plate_is_not_taken():
    car = np.full((175, 550, 3), 90, np.uint8)
    car[40:140, 200:330] = (160, 80, 20)  # a blue square, a quarter of the crop's width
    assert plate_quad(car) is None


def test_the_second_look_reads_the_plate_of_a_loose_crop():
    from plate_lib.inference import load_model, read_plates

    model, cfg = load_model(SHIPPED)
    crops, texts = zip(*[loose_crop(colour, margin=0.75)[:2] for colour in ("blue", "yellow", "green")], strict=True)
    readings = read_plates(model, cfg, list(crops), rectify_below=1)
    assert [t for t, _ in readings] == list(texts)
    assert min(c for _, c in readings) > 0.5


def test_read_plates_keeps_the_more_confident_reading():
    from plate_lib.inference import load_model, read_plates

    model, cfg = load_model(SHIPPED)
    crops = [tilted_bbox_crop("blue", 12), np.full((40, 120, 3), 128, np.uint8)]
    plain = read_plates(model, cfg, crops, rectify_below=0)
    both = read_plates(model, cfg, crops, rectify_below=1)
    assert both[1] == plain[1]  # nothing to rectify: the reading as given
    assert both[0][1] >= plain[0][1]


def test_no_crops_no_readings():
    from plate_lib.inference import load_model, read_plates

    model, cfg = load_model(SHIPPED)
    assert read_plates(model, cfg, []) == []


def test_the_second_look_goes_only_to_crops_with_an_unsure_character():
    from plate_lib.inference import unsure

    weakest = np.array([0.5, 0.97, 0.99, 1.0], np.float32)
    assert unsure(weakest, 0.98).tolist() == [True, True, False, False]
    assert not unsure(weakest, 0).any()
    assert unsure(weakest, 1).all()  # 1: every crop, the certain ones too


def test_views_vote_by_summed_confidence_and_keep_the_winners_best_confidence():
    from plate_lib.inference import vote

    readings = [("皖A12345", 0.5), ("皖A12346", 0.8), ("皖A12345", 0.4),  # two agreeing views outvote a surer one
                ("苏E1W8MQ", 0.9), ("苏E1W8MQ", 0.95), ("苏E1W8MO", 0.2)]
    assert vote(readings, 3) == [("皖A12345", 0.5), ("苏E1W8MQ", 0.95)]


def test_read_plates_with_test_time_views_gives_one_reading_a_crop():
    from plate_lib.inference import load_model, read_plates

    model, cfg = load_model(SHIPPED)
    crops = [tilted_bbox_crop("blue", 12), tilted_bbox_crop("yellow", -8, seed=3), np.full((40, 120, 3), 128, np.uint8)]
    once, voted = read_plates(model, cfg, crops), read_plates(model, cfg, crops, tta=True)
    assert len(voted) == len(crops)
    assert [t for t, _ in voted[:2]] == [t for t, _ in once[:2]] == ["皖A12345"] * 2
    # the views go only to crops the first look is unsure of: with rectify_below 0, to none
    assert read_plates(model, cfg, crops, rectify_below=0, tta=True) == read_plates(model, cfg, crops, rectify_below=0)


def test_a_source_can_give_its_crops_rectified_under_its_own_cache_key(tmp_path):
    from plate_lib.sources import open_source

    folder = tmp_path / "crops"
    folder.mkdir()
    cv2.imwrite(str(folder / "皖A12345.png"), tilted_bbox_crop("blue", 12))
    cv2.imwrite(str(folder / "皖A54321.png"), np.full((40, 120, 3), 128, np.uint8))
    as_given, rectified = open_source(folder), open_source(folder, rectify=True)
    assert rectified.fingerprint() != as_given.fingerprint()
    recs = {r.text: r for r in rectified.records("all")}
    assert rectified.load(recs["皖A12345"]).shape == (PLATE_SIZE[1], PLATE_SIZE[0], 3)
    assert rectified.load(recs["皖A54321"]).shape == (40, 120, 3)  # nothing found: the crop as it is


def test_a_train_source_says_rectify_in_the_config():
    from plate_lib.config import TrainSource

    assert TrainSource(path="crops", rectify=True).rectify
    assert not TrainSource(path="crops").rectify


def tilted_crops_source(folder):
    """A folder source of two tilted box crops of 皖A12345, its split and the shipped model."""
    from plate_lib.dataset import load_split
    from plate_lib.inference import load_model
    from plate_lib.sources import open_source

    model, cfg = load_model(SHIPPED)
    folder.mkdir()
    for angle in (-14, 12):
        cv2.imwrite(str(folder / f"{angle + 20:02d}-皖A12345.png"), tilted_bbox_crop("blue", angle, seed=angle + 20))
    source = open_source(folder)
    return source, load_split(source, "all", cfg.preprocess), model, cfg


def test_evaluate_takes_the_second_look_when_given_the_source(tmp_path):
    from plate_lib.inference import evaluate

    source, data, model, cfg = tilted_crops_source(tmp_path / "crops")
    _, alone = evaluate(model, data, list(cfg.provinces))
    _, looked = evaluate(model, data, list(cfg.provinces), source=source, rectify_below=1.0)
    assert (looked["confidence"] >= alone["confidence"]).all()
    assert (looked["confidence"] > alone["confidence"]).any()  # the level warp reads some plate more surely


def test_evaluate_with_test_time_views_reads_as_read_plates_does(tmp_path):
    from plate_lib.inference import evaluate, read_plates

    source, data, model, cfg = tilted_crops_source(tmp_path / "crops")
    _, rows = evaluate(model, data, list(cfg.provinces), source=source, rectify_below=0.98, tta=True)
    crops = [source.load(r) for r in source.records("all")]
    expected = read_plates(model, cfg, crops, rectify_below=0.98, tta=True)
    assert list(rows["pred"]) == [t for t, _ in expected]
    assert list(rows["confidence"]) == pytest.approx([c for _, c in expected], abs=1e-6)


def test_the_second_look_prefers_a_reading_of_the_crops_colour_length_to_a_surer_one():
    from plate_lib.inference import second_look

    crop = tilted_bbox_crop("green", 12)

    def read_batch(batch, lengths):  # the warp read as the green plate it is, less surely than the first look
        return (["皖AD12345"] * len(batch), np.full(len(batch), 0.3, np.float32), np.zeros(len(batch), np.float32),
                np.zeros((len(batch), 31), np.float32))

    first = [("皖AD1235", 0.6)]  # 7 characters: a blue plate's length
    assert second_look(read_batch, (48, 144, 1), [crop], first, np.array([8])) == [("皖AD12345", pytest.approx(0.3))]
    assert second_look(read_batch, (48, 144, 1), [crop], first) == first  # colour unsaid: the surer reading


def test_the_second_look_pools_the_province_over_the_views_weighted_by_their_confidence():
    from plate_lib.plates import PROVINCES
    from plate_lib.reading import second_look

    crop = tilted_bbox_crop("blue", 12)
    wan, su = PROVINCES.index("皖"), PROVINCES.index("苏")

    def logp(p_wan: float, p_su: float) -> np.ndarray:
        p = np.full(31, (1 - p_wan - p_su) / 29)
        p[wan], p[su] = p_wan, p_su
        return np.log(p).astype(np.float32)

    def read_batch(batch, lengths):  # the warp reads the same characters, its province surely 苏
        return ["皖A12345"] * len(batch), np.full(len(batch), 0.4, np.float32), np.zeros(len(batch), np.float32), \
            np.stack([logp(0.05, 0.9)] * len(batch))

    first = [("皖A12345", 0.5)]  # surer, but 皖 only just before 苏
    (text, conf), = second_look(read_batch, (48, 144, 1), [crop], first, first=(PROVINCES, logp(0.45, 0.4)[None]))
    pooled = (0.5 * np.log(0.4) + 0.4 * np.log(0.9)) / 0.9  # each view weighted by its reading's confidence
    assert text == "苏A12345" and conf == pytest.approx(0.5 / 0.45 * np.exp(pooled), rel=1e-4)
    assert second_look(read_batch, (48, 144, 1), [crop], first) == first  # without the first look's: as before


def test_evaluate_decoding_by_colour_reads_as_read_plates_does(tmp_path):
    from plate_lib.dataset import load_split
    from plate_lib.inference import evaluate, load_model, read_plates
    from plate_lib.sources import open_source

    model, cfg = load_model(SHIPPED)
    folder = tmp_path / "crops"
    folder.mkdir()
    for i, (colour, angle) in enumerate([("green", 10), ("blue", -12), ("green", -6)]):
        text = "皖AD12345" if colour == "green" else "皖A12345"
        cv2.imwrite(str(folder / f"{i}-{text}.png"), tilted_bbox_crop(colour, angle, seed=i))
    source = open_source(folder)
    data = load_split(source, "all", cfg.preprocess)
    _, rows = evaluate(model, data, list(cfg.provinces), source=source, rectify_below=0.95, by_colour=True)
    expected = read_plates(model, cfg, [source.load(r) for r in source.records("all")], by_colour=True)
    assert list(rows["pred"]) == [t for t, _ in expected]
    assert list(rows["confidence"]) == pytest.approx([c for _, c in expected], abs=1e-6)


# --- whole photos ------------------------------------------------------------------------------------------


def street_photo(colour: str = "blue", angle: float = 10, seed: int = 0) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A 1280×720 grey photo with a blue panel of a car (large, square: not plate-shaped) and a plate of ``colour``
    turned by ``angle`` degrees; and the plate's axis-aligned box in it."""
    crop = tilted_bbox_crop(colour, angle, seed)
    photo = np.full((720, 1280, 3), 90, np.uint8)
    photo[50:350, 100:400] = (160, 60, 20)  # BGR: a blue car door, as blue as a plate
    y, x = 430, 700
    photo[y:y + crop.shape[0], x:x + crop.shape[1]] = crop
    return photo, (x, y, x + crop.shape[1], y + crop.shape[0])


@pytest.mark.parametrize("colour", ["blue", "yellow", "green"])
def test_photo_boxes_find_a_turned_plate_of_each_colour_and_not_a_square_panel_of_its_colour(colour):
    from plate_lib.rectify import photo_boxes

    photo, (x1, y1, x2, y2) = street_photo(colour)
    boxes = photo_boxes(photo)
    assert boxes and all(b[0] >= 450 for b in boxes)  # the door at x 100-400 is no plate
    bx1, by1, bx2, by2 = boxes[0]
    assert bx1 <= x1 + 12 and by1 <= y1 + 12 and bx2 >= x2 - 12 and by2 >= y2 - 12  # the whole plate, turned
    assert (bx2 - bx1) * (by2 - by1) <= 1.5 * (x2 - x1) * (y2 - y1)


def test_a_photo_without_colour_or_plate_has_no_boxes():
    from plate_lib.rectify import photo_boxes

    assert photo_boxes(np.full((720, 1280, 3), 90, np.uint8)) == []
    assert photo_boxes(cv2.cvtColor(street_photo()[0], cv2.COLOR_BGR2GRAY)) == []  # grey: no colour to find it by


def test_read_photos_reads_the_plate_found_and_says_where_and_nothing_where_none_is():
    from plate_lib.graph import open_reader
    from plate_lib.reading import read_photos

    model, cfg, _ = open_reader(SHIPPED, "cpu")
    photo, (x1, y1, x2, y2) = street_photo("blue", angle=6)
    (text, conf, box), empty = read_photos(model, cfg, [photo, np.full((720, 1280, 3), 90, np.uint8)])
    assert text == "皖A12345" and conf > 0.5 and box[0] <= x1 + 12 and box[2] >= x2 - 12
    assert empty == ("", 0.0, None)
