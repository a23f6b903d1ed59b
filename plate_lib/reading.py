"""Reading plates: the network's outputs decoded to plates, confidences and each plate's weakest character,
the second look at the crops it was unsure of, and test-time views; raw crops in, (plate, confidence) out.

No torch here: a model is anything ``predict_images`` can run, a ``torch.nn.Module`` (``inference``; torch is
imported only to run one) or an ONNX Runtime reader with ``run_images`` (``graph.OnnxReader``, ``export.OnnxModel``),
so that ``plate predict`` on a cached graph starts without importing torch (README, "Models")."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .colours import colour_lengths
from .config import Config, PredictConfig, TrainingConfig
from .images import as_bgr
from .plates import BLANK, ctc_beam_search, ctc_greedy_decode, is_issued_format
from .preprocess import TTA_VIEWS, letterbox, tta_views

EVAL_BATCH: int = TrainingConfig.model_fields["eval_batch_size"].default  # training.eval_batch_size's default
RECTIFY_BELOW: float = PredictConfig.model_fields["rectify_below"].default  # predict.rectify_below's default
BY_COLOUR: bool = PredictConfig.model_fields["by_colour"].default  # predict.by_colour's default


def decode_logits(prov_logits, ctc_logits, provinces: list[str]) -> tuple[list[str], np.ndarray]:
    """Model outputs → plates and confidences (province prob × CTC prob; float32 [B]).

    Best-path decoding first; where that is not a plate in a format China issues (``plates.is_issued_format``:
    9 characters from a doubled 8, a digit as city letter, 8 characters that are no new-energy plate…), the
    most probable such plate among the CTC beam search's readings (``plates.ctc_beam_search``), with its
    sequence probability. A plate is never traded for a non-plate, so word accuracy can only rise.
    """
    texts, conf, _, _ = decode_readings(prov_logits, ctc_logits, provinces)
    return texts, conf


def decode_readings(prov_logits, ctc_logits, provinces: list[str],
                    lengths: np.ndarray | None = None) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """``decode_logits``'s plates and confidences, each plate's ``weakest_character`` (0 where the best path was
    not a plate and the beam search's reading stands in: the network's own reading was no plate), and the
    province head's log-probabilities (float32 [B, provinces]: what ``second_look`` pools over a crop's views).

    ``lengths`` (``predict.by_colour``): the number of characters each crop's colour says its plate has
    (``colours.colour_length``: 8 green, 7 blue; 0 where the colour does not say). A reading of another length
    gives way to the most probable plate of that length among the beam search's readings, where one is there,
    else stands; either way its weakest character is 0, so that the second look reads the crop again.

    In numpy: on one plate, a dozen small torch operations cost more than the network's last layers."""
    prov, ctc = (np.asarray(t.detach().cpu() if hasattr(t, "detach") else t, np.float64)  # torch or numpy
                 for t in (prov_logits, ctc_logits))
    prov_i = prov.argmax(-1)
    prov_shifted = prov - prov.max(-1, keepdims=True)
    prov_lse = np.log(np.exp(prov_shifted).sum(-1))
    prov_p = np.exp(-prov_lse)  # softmax at the argmax
    ctc_i = ctc.argmax(-1)  # [B, T]
    shifted = ctc - ctc.max(-1, keepdims=True)
    lse = np.log(np.exp(shifted).sum(-1))  # log-softmax of class c: shifted[c] - lse
    best_lp = -lse  # the best class's log-probability at each step
    conf = prov_p * np.exp(best_lp.sum(-1))
    best, best_p = ctc_i.tolist(), np.exp(best_lp).tolist()
    weakest = np.array([weakest_character(p, b, bp) for p, b, bp in zip(prov_p.tolist(), best, best_p, strict=True)])
    texts = [provinces[p] + ctc_greedy_decode(row) for p, row in zip(prov_i.tolist(), best, strict=True)]
    for i, text in enumerate(texts):
        want = int(lengths[i]) if lengths is not None else 0
        issued = is_issued_format(text, provinces)
        if issued and (not want or len(text) == want):
            continue
        readings = [(t, lp) for t, lp in ctc_beam_search(shifted[i] - lse[i][:, None])
                    if is_issued_format(text[0] + t, provinces)]
        found = next(((t, lp) for t, lp in readings if len(t) + 1 == want), None)
        if found is None and not issued:
            found = readings[0] if readings else None
        weakest[i] = 0.0  # no plate, or not of the crop's colour: the second look reads it again
        if found:
            texts[i], conf[i] = text[0] + found[0], prov_p[i] * float(np.exp(found[1]))
    province_logp = (prov_shifted - prov_lse[:, None]).astype(np.float32)
    return texts, conf.astype(np.float32), weakest.astype(np.float32), province_logp


def weakest_character(prov_p: float, best: list[int], best_p: list[float]) -> float:
    """The probability of a plate's least sure character on the CTC best path: the province's probability
    ``prov_p``, and for each character the path emits (a run of one non-blank class in ``best``, a class per
    step) the highest of its steps' probabilities ``best_p``. Unlike the confidence (a product over all the
    steps, low wherever a step hesitates between a character and the blank beside it), it is high for a crop
    whose every character is read clearly: what ``unsure`` asks before a crop is read again. (A loop in
    Python: on one plate, cheaper than the dozen numpy calls that would do it for a batch.)"""
    weakest, prev, run_max = prov_p, BLANK, 0.0
    for c, p in zip(best, best_p, strict=True):
        if c != prev:
            if prev != BLANK:
                weakest = min(weakest, run_max)
            run_max = p
        elif p > run_max:
            run_max = p
        prev = c
    return min(weakest, run_max) if prev != BLANK else weakest


def predict_images(model, images: np.ndarray, provinces: list[str], batch_size: int = EVAL_BATCH,
                   device="cpu", lengths: np.ndarray | None = None
                   ) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """uint8 [N, H, W, C] (already letterboxed) → plates, confidences, weakest characters and province
    log-probabilities (``decode_readings``, with each crop's colour ``lengths`` where given), in batches.
    ``model``: a ``torch.nn.Module`` (run on ``device``) or a reader with ``run_images`` (ONNX Runtime)."""
    direct = getattr(model, "run_images", None)  # ONNX Runtime: uint8 arrays in, numpy logits out, no torch
    if direct is None:  # a torch.nn.Module
        import torch

        from .inference import predict_tensor

        model.eval()
    texts, confs, weakest, logps = [], [], [], []
    for i in range(0, len(images), batch_size):
        want = None if lengths is None else lengths[i:i + batch_size]
        if direct is not None:
            t, c, w, lp = decode_readings(*direct(images[i:i + batch_size]), provinces, want)
        else:
            chunk = torch.from_numpy(np.array(images[i:i + batch_size])).to(device)  # a copy: memmaps are read-only
            t, c, w, lp = predict_tensor(model, chunk.permute(0, 3, 1, 2).float().div_(255), provinces, want)
        texts += t
        confs.append(c)
        weakest.append(w)
        logps.append(lp)
    if not confs:
        return [], np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros((0, len(provinces)), np.float32)
    return texts, np.concatenate(confs), np.concatenate(weakest), np.concatenate(logps)


def read_plates(model, cfg: Config, bgr_images: list[np.ndarray], device="cpu",
                rectify_below: float = RECTIFY_BELOW, tta: bool = False,
                batch_size: int = EVAL_BATCH, by_colour: bool = BY_COLOUR) -> list[tuple[str, float]]:
    """Raw BGR crops of any size → (plate, confidence) each.

    Each crop whose least sure character (``weakest_character``, the province included) is read with a
    probability below ``rectify_below`` is read again warped level where ``rectify.plate_quad`` finds the
    plate, and the more confident reading is kept: bounding-box crops of tilted plates gain most (README,
    "Measured results"; docs/experiments.md, "The rectified second look"). 0 reads every crop once, as given; 1
    looks twice at every crop. With ``tta``, such a crop is also read in the other ``preprocess.tta_views``
    (padded, cut; each with its own second look) and the three readings vote (``other_views``). With
    ``by_colour``, a green crop is read as an 8-character plate and a blue one as a 7-character plate where the
    network's readings hold one (``decode_readings``). ``model`` may be ``export.OnnxModel`` (ONNX Runtime in its
    place). The network reads ``batch_size`` crops at a time.
    """
    pre = cfg.preprocess
    return read_crops(model, list(cfg.provinces), (pre.height, pre.width, pre.channels), bgr_images, device,
                      rectify_below, batch_size, tta, by_colour)


def read_photos(model, cfg: Config, photos: list[np.ndarray], device="cpu",
                rectify_below: float = RECTIFY_BELOW, tta: bool = False, batch_size: int = EVAL_BATCH,
                by_colour: bool = BY_COLOUR) -> list[tuple[str, float, tuple[int, int, int, int] | None]]:
    """Whole photos (BGR; a car, a street, no annotation) → (plate, confidence, box) each: every place a plate of
    a plate colour may be (``rectify.photo_boxes``) cut out and read as ``read_plates`` reads a crop, and the most
    confident reading in a format China issues (``plates.is_issued_format``; else the most confident) kept, with
    its box ``(x1, y1, x2, y2)`` in the photo's pixels; ``("", 0.0, None)`` where no place is found. One plate a
    photo: the surest (README, "Whole photos")."""
    from .rectify import photo_boxes

    photos = [as_bgr(im, f"image {i}") for i, im in enumerate(photos)]
    boxes = [photo_boxes(im) for im in photos]
    crops = [im[y1:y2, x1:x2] for im, found in zip(photos, boxes, strict=True) for x1, y1, x2, y2 in found]
    readings = read_plates(model, cfg, crops, device, rectify_below, tta, batch_size, by_colour)
    out, k = [], 0
    for found in boxes:
        mine, k = readings[k:k + len(found)], k + len(found)
        best = max(range(len(mine)), key=lambda j: (is_issued_format(mine[j][0], cfg.provinces), mine[j][1]),
                   default=None)  # a plate before a part of one (a box of half a plate reads a short plate surely)
        out.append(("", 0.0, None) if best is None else (*mine[best], found[best]))
    return out


def read_crops(model, provinces: list[str], input_shape: tuple[int, int, int],
               bgr_images: list[np.ndarray], device="cpu", rectify_below: float = RECTIFY_BELOW,
               batch_size: int = EVAL_BATCH, tta: bool = False,
               by_colour: bool = BY_COLOUR) -> list[tuple[str, float]]:
    """``read_plates`` for a model taking ``input_shape`` (H, W, C). A model with ``in_parts``
    (``export.OnnxModel``) reads a batch in parts at once, each end to end on a worker of its own. Each image is
    checked first (``images.as_bgr``: grey, 16-bit and BGRA converted; None or anything else an error naming it)."""
    height, width, channels = input_shape
    bgr_images = [as_bgr(im, f"image {i}") for i, im in enumerate(bgr_images)]

    def read(crops: list[np.ndarray]) -> list[tuple[str, float]]:
        if len(crops) == 0:
            return []
        batch = np.stack([letterbox(im, height, width, channels == 1) for im in crops])
        lengths = colour_lengths(crops) if by_colour else None
        texts, conf, weakest, logp = predict_images(model, batch, provinces, batch_size, device, lengths)
        return look_again(model, provinces, input_shape, crops.__getitem__, texts, conf, weakest, device,
                          rectify_below, batch_size, tta, lengths, logp)

    in_parts = getattr(model, "in_parts", None)
    return read(bgr_images) if in_parts is None else [r for part in in_parts(read, bgr_images) for r in part]


def look_again(model, provinces: list[str], input_shape: tuple[int, int, int],
               crop: Callable[[int], np.ndarray], texts: list[str], conf: np.ndarray, weakest: np.ndarray,
               device="cpu", rectify_below: float = RECTIFY_BELOW, batch_size: int = EVAL_BATCH,
               tta: bool = False, lengths: np.ndarray | None = None,
               province_logp: np.ndarray | None = None) -> list[tuple[str, float]]:
    """First readings (``texts``, ``conf``, ``weakest`` of each crop) → (plate, confidence) each: a crop whose
    weakest character is below ``rectify_below`` (``unsure``) gets the second look (``second_look``) and, with
    ``tta``, its other views (``other_views``). ``crop(i)``: crop ``i``, raw BGR, loaded once, a batch of unsure
    crops at a time (a split may not fit in memory). ``lengths``: each crop's colour length, where the first
    readings were decoded by colour (``predict.by_colour``), so that the second readings are too.
    ``province_logp``: the first readings' province log-probabilities, pooled with the second look's."""
    def read_batch(batch: np.ndarray, want: np.ndarray | None) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        return predict_images(model, batch, provinces, batch_size, device, want)

    def read_views(views: list[np.ndarray]) -> list[tuple[str, float]]:
        return read_crops(model, provinces, input_shape, views, device, rectify_below, batch_size,
                          by_colour=lengths is not None)

    readings = list(zip(texts, np.asarray(conf, np.float32).tolist(), strict=True))
    todo = np.flatnonzero(unsure(weakest, rectify_below)).tolist()
    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        crops = [crop(i) for i in chunk]
        looked = second_look(read_batch, input_shape, crops, [readings[i] for i in chunk],
                             None if lengths is None else lengths[chunk],
                             None if province_logp is None else (provinces, province_logp[chunk]))
        if tta:
            looked = other_views(read_views, crops, looked)
        for i, reading in zip(chunk, looked, strict=True):
            readings[i] = reading
    return readings


def other_views(read: Callable[[list[np.ndarray]], list[tuple[str, float]]], crops: list[np.ndarray],
                readings: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """Test-time views (``predict.tta``): each crop (raw BGR) read in its other ``preprocess.tta_views`` too
    (``read``: ``read_crops`` without views), and its three readings voting (``vote``); the winners. Given only
    the crops the first look was unsure of: on the train and val splits, voting on every crop read the same real
    plates (docs/experiments.md, "Test-time views")."""
    others = read([v for im in crops for v in tta_views(im)[1:]])
    k = len(TTA_VIEWS) - 1
    return [vote([reading, *others[j * k:(j + 1) * k]], len(TTA_VIEWS))[0] for j, reading in enumerate(readings)]


def vote(readings: list[tuple[str, float]], views: int) -> list[tuple[str, float]]:
    """Readings of ``views`` consecutive views of each crop → one (plate, confidence) per crop: the plate whose
    views' confidences sum highest (two views agreeing outvote one surer view), with the highest confidence a
    view gave it (so ``predict.min_confidence`` keeps its meaning)."""
    out = []
    for start in range(0, len(readings), views):
        total: dict[str, float] = {}
        best: dict[str, float] = {}
        for text, conf in readings[start:start + views]:
            total[text] = total.get(text, 0.0) + conf
            best[text] = max(best.get(text, 0.0), conf)
        text = max(total, key=total.__getitem__)
        out.append((text, best[text]))
    return out


def unsure(weakest: np.ndarray, rectify_below: float) -> np.ndarray:
    """Which readings get a second look: weakest character below ``rectify_below``; every one at 1."""
    return weakest < rectify_below if rectify_below < 1 else np.ones(len(weakest), bool)


def _ranked(text: str, conf: float, lengths: np.ndarray | None, j: int) -> tuple[bool, float]:
    """How ``second_look`` ranks crop ``j``'s readings: one of its colour's length (``lengths``) first, then the
    more confident."""
    return (lengths is None or not lengths[j] or len(text) == lengths[j]), conf


def second_look(read_batch: Callable[[np.ndarray, np.ndarray | None],
                                     tuple[list[str], np.ndarray, np.ndarray, np.ndarray]],
                input_shape: tuple[int, ...], crops: list[np.ndarray], readings: list[tuple[str, float]],
                lengths: np.ndarray | None = None,
                first: tuple[list[str], np.ndarray] | None = None) -> list[tuple[str, float]]:
    """Each crop (raw BGR) read again warped level where it shows the plate (``rectify.model_inputs``: one warp,
    or two where colour cannot tell a tight crop's plate from a car around a small one); the most confident of
    its readings and the one given. ``read_batch``: ``predict_images`` on a batch and its crops' colour lengths
    (``lengths`` of the crops, or None); ``input_shape``: the model's (H, W, C).

    ``first``: the province table and the given readings' province log-probabilities [crops, provinces]. Then the
    province of the reading kept is the one most probable over all of the crop's views (the mean of their
    log-probabilities, each view weighted by its reading's confidence: a loose crop's view as given, the whole car,
    has a flat province and a low confidence), and its confidence the reading's with that pooled probability in
    place of its own view's: a province one view hesitates over, the others can settle (docs/experiments.md, "The
    province over a crop's views")."""
    from .rectify import model_inputs

    height, width, channels = input_shape
    out = list(readings)
    warped = [(j, w) for j, im in enumerate(crops) for w in model_inputs(im, height, width, channels == 1)]
    if not warped:
        return out
    want = None if lengths is None else np.array([lengths[j] for j, _ in warped])
    texts_w, conf_w, _, logp_w = read_batch(np.stack([w for _, w in warped]), want)
    views = [[] if first is None else [(first[1][j], out[j][1])] for j in range(len(crops))]  # (log-probs, conf)
    kept = [None if first is None else first[1][j] for j in range(len(crops))]  # of the view of the reading kept
    for (j, _), text, conf, logp in zip(warped, texts_w, np.asarray(conf_w, np.float32).tolist(), logp_w, strict=True):
        views[j].append((logp, conf))
        if _ranked(text, conf, lengths, j) > _ranked(*out[j], lengths, j):
            out[j], kept[j] = (text, conf), logp
    for j, (text, conf) in enumerate(out if first is not None else []):
        if len(views[j]) > 1 and text:
            weights = np.array([max(c, 0.0) for _, c in views[j]]) + 1e-6  # a given reading may be ("", -1)
            pooled = np.average([lp for lp, _ in views[j]], axis=0, weights=weights)
            best = int(pooled.argmax())
            own = kept[j][first[0].index(text[0])]
            out[j] = (first[0][best] + text[1:], float(conf * np.exp(pooled[best] - own)))
    return out
