"""Degradations: what cameras, light and weather do to a plate crop.

Two uses share these functions:

- ``synth`` draws random ones for each synthetic plate (``lighting``, ``colour_matrix``, ``noise`` and, on a
  share of the plates, one adverse condition: ``adverse``);
- the robustness benchmark (``benchmarks/robustness.py``) applies one at a time at fixed strengths
  (``ROBUSTNESS``) to real crops, to find where a model breaks.

Images are BGR; the random ones work on float32 in 0..255 (``synth`` clips and converts at the end), the
fixed ones take and return uint8.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import cv2
import numpy as np

# --- random, for synthetic plates (float32 BGR in 0..255) ---------------------------------------------------


@functools.lru_cache(maxsize=1)
def _noise_bank() -> np.ndarray:
    """Standard normal noise to cut per-plate patches from: far cheaper than drawing it for every plate."""
    return np.random.default_rng(2019).standard_normal((384, 768, 3), dtype=np.float32)


def noise(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """An h x w x 3 patch of standard normal noise, grey (same in all channels) or coloured."""
    bank = _noise_bank()
    if h > bank.shape[0] or w > bank.shape[1]:
        return rng.standard_normal((h, w, 3), dtype=np.float32)
    y, x = rng.integers(0, bank.shape[0] - h + 1), rng.integers(0, bank.shape[1] - w + 1)
    patch = bank[y:y + h, x:x + w]
    return cv2.cvtColor(np.ascontiguousarray(patch[..., 0]), cv2.COLOR_GRAY2BGR) if rng.random() < 0.5 else patch


def _grid(w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    xs = np.arange(w, dtype=np.float32)[None, :] * np.float32(2 / max(w - 1, 1)) - 1
    ys = np.arange(h, dtype=np.float32)[:, None] * np.float32(2 / max(h - 1, 1)) - 1
    return xs, ys


def lighting(rng: np.random.Generator, w: int, h: int, d: float) -> np.ndarray:
    """A gain field: overall exposure, a gradient, sometimes a vignette and a shadow band."""
    xs, ys = _grid(w, h)
    exposure = float(np.exp(rng.normal(-0.03, 0.2 * d)))
    phi, slope = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.35 * d)
    gain = exposure * (1 + slope * np.cos(phi) * xs) + (exposure * slope * np.sin(phi)) * ys  # a linear ramp
    if rng.random() < 0.3 * d:
        gain = gain * (1 - rng.uniform(0.1, 0.4) * min(1.0, d) * (xs ** 2 + ys ** 2) / 2)
    if rng.random() < 0.2 * d:  # a shadow band with soft edges across the plate
        psi, c = rng.uniform(0, np.pi), rng.uniform(-0.8, 0.8)
        dist = np.cos(psi) * xs * (w / max(h, 1)) + np.sin(psi) * ys - c
        half, soft = rng.uniform(0.2, 1.5), rng.uniform(0.05, 0.3)
        band = np.clip((half - np.abs(dist)) / soft, 0, 1)
        gain = gain * (1 - rng.uniform(0.25, 0.6) * min(1.0, d) * band)
    return np.ascontiguousarray(np.broadcast_to(gain, (h, w)), dtype=np.float32)


def colour_matrix(rng: np.random.Generator, d: float, mean: float) -> np.ndarray:
    """Saturation, white balance and contrast (about the image's ``mean``) as one 3x4 affine colour map."""
    saturation = float(np.exp(rng.normal(0.15, 0.15 * d)))
    gray = np.full((3, 3), 1 / 3)
    balance = np.diag(np.exp(rng.normal(0, 0.05 * d, 3)))
    contrast = float(np.exp(rng.normal(0, 0.15 * d)))
    linear = contrast * balance @ (gray + saturation * (np.eye(3) - gray))
    return np.hstack([linear, np.full((3, 1), mean * (1 - contrast))]).astype(np.float32)


def motion_kernel(length: float, angle: float) -> np.ndarray:
    """A normalised line of ``length`` pixels at ``angle`` radians: the blur of a plate moving that far."""
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    c = size // 2
    dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
    cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1, cv2.LINE_AA)
    return kernel / kernel.sum()


def glare_field(w: int, h: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """A soft bright spot (0..1) centred at (cx, cy) in the -1..1 crop frame: a headlight or the sun on the plate."""
    xs, ys = _grid(w, h)
    aspect = w / max(h, 1)
    return np.exp(-(((xs - cx) * aspect) ** 2 + (ys - cy) ** 2) / (2 * radius ** 2)).astype(np.float32)


def rain_streaks(rng: np.random.Generator, w: int, h: int, density: float) -> np.ndarray:
    """Thin slanted bright streaks (0..1), about ``density`` of the crop's area covered, softened."""
    layer = np.zeros((h, w), np.float32)
    slant = rng.uniform(-0.4, 0.4)
    n = int(density * w * h / max(4.0, 0.5 * h))
    for _ in range(n):
        x, y = rng.uniform(-0.2 * w, 1.2 * w), rng.uniform(-0.2 * h, h)
        length = rng.uniform(0.2, 0.7) * h
        cv2.line(layer, (round(x), round(y)), (round(x + slant * length), round(y + length)),
                 float(rng.uniform(0.3, 1.0)), 1, cv2.LINE_AA)
    return cv2.GaussianBlur(layer, (0, 0), 0.7)


def adverse(image: np.ndarray, rng: np.random.Generator, d: float) -> tuple[np.ndarray, str]:
    """One adverse condition, as CCPD's challenge subsets show them (db: dark or bright; blur; weather; fn:
    far): low light with sensor noise, over-exposure, glare, haze, rain, or a strong motion blur. Returns
    the image and the condition's name."""
    h, w = image.shape[:2]
    kind = ("low_light", "overexposed", "glare", "haze", "rain", "motion")[int(rng.integers(6))]
    if kind == "low_light":  # a dark frame, a warm street-lamp cast, then the noise of a high gain
        gain = rng.uniform(0.1, 0.4) ** min(1.0, d)
        tint = np.array([rng.uniform(0.7, 1.0), rng.uniform(0.85, 1.0), 1.0], np.float32)
        image = image * (gain * tint)
        image += noise(rng, w, h) * np.float32(rng.uniform(3, 12) * d)
    elif kind == "overexposed":
        gain = rng.uniform(1.5, 3.0)
        image = 255 * (1 - np.exp(-gain * image / 255)) / (1 - np.exp(-gain))  # highlights saturate smoothly
    elif kind == "glare":
        spot = glare_field(w, h, rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(0.15, 0.6))
        image = image + cv2.cvtColor(spot, cv2.COLOR_GRAY2BGR) * np.float32(rng.uniform(80, 255) * min(1.0, d))
    elif kind == "haze":  # scattered light: the scene fades towards a bright grey
        t = np.float32(rng.uniform(0.35, 0.75) ** min(1.0, d))
        air = np.full(3, rng.uniform(160, 235), np.float32) + rng.uniform(-10, 10, 3).astype(np.float32)
        image = image * t + air * (1 - t)
    elif kind == "rain":
        streaks = rain_streaks(rng, w, h, rng.uniform(0.01, 0.05) * d)
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.0)) * np.float32(rng.uniform(0.6, 0.9))
        image = image + cv2.cvtColor(streaks, cv2.COLOR_GRAY2BGR) * np.float32(rng.uniform(60, 160))
    else:
        image = cv2.filter2D(image, -1, motion_kernel(rng.uniform(0.03, 0.09) * d * w, rng.normal(0, 0.3)))
    return image, kind


# --- fixed, for the robustness benchmark (uint8 BGR in, uint8 BGR out) ---------------------------------------


def _u8(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0, 255).astype(np.uint8)


def at_height(image: np.ndarray, height: float) -> np.ndarray:
    """The crop resized to ``height`` pixels, keeping its aspect ratio (a farther or cheaper camera)."""
    h, w = image.shape[:2]
    if height >= h:
        return image
    s = height / h
    return cv2.resize(image, (max(1, round(w * s)), max(1, round(height))), interpolation=cv2.INTER_AREA)


def jpeg(image: np.ndarray, quality: float) -> np.ndarray:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Turned in the image plane about the centre, on a canvas large enough to keep the corners (edge pixels
    repeated into the new border, as a bounding-box crop of a turned plate holds the car around it)."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(round(h * sin + w * cos)), int(round(h * cos + w * sin))
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    return cv2.warpAffine(image, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def tilt(image: np.ndarray, degrees: float) -> np.ndarray:
    """Turned about the vertical axis by ``degrees`` (a camera off to one side): the far side shrinks, by a
    pinhole projection at a focal length of the crop's width, and the crop is the warped plate's bounding box."""
    h, w = image.shape[:2]
    a, f = np.radians(degrees), float(w)
    corners = np.float32([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    z = f + corners[:, 0] * np.sin(a)
    proj = np.stack([corners[:, 0] * np.cos(a) * f / z, corners[:, 1] * f / z], 1)
    proj -= proj.min(0)
    size = np.ceil(proj.max(0)).astype(int) + 1
    m = cv2.getPerspectiveTransform((corners + [w / 2, h / 2]).astype(np.float32), proj.astype(np.float32))
    return cv2.warpPerspective(image, m, (int(size[0]), int(size[1])), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REPLICATE)


def exposure(image: np.ndarray, gain: float) -> np.ndarray:
    """Darker (``gain`` < 1: linear, with the noise a camera adds when it lifts a dark frame) or over-exposed
    (``gain`` > 1: highlights saturate smoothly)."""
    x = image.astype(np.float32)
    if gain < 1:
        x = x * gain + np.random.default_rng(0).normal(0, 4 * (1 - gain), x.shape).astype(np.float32)
    else:
        x = 255 * (1 - np.exp(-gain * x / 255)) / (1 - np.exp(-gain))
    return _u8(x)


def glare(image: np.ndarray, strength: float) -> np.ndarray:
    """A bright spot of ``strength`` (0..255 at its centre) over the left third of the plate."""
    h, w = image.shape[:2]
    spot = glare_field(w, h, -0.35, -0.2, 0.35)
    return _u8(image.astype(np.float32) + cv2.cvtColor(spot, cv2.COLOR_GRAY2BGR) * np.float32(strength))


def motion_blur(image: np.ndarray, share: float) -> np.ndarray:
    """Horizontal motion blur over ``share`` of the crop's width."""
    length = share * image.shape[1]
    return image if length < 1 else _u8(cv2.filter2D(image.astype(np.float32), -1, motion_kernel(length, 0.0)))


def defocus(image: np.ndarray, share: float) -> np.ndarray:
    """Gaussian blur with sigma ``share`` of the crop's height."""
    sigma = share * image.shape[0]
    return image if sigma < 0.3 else cv2.GaussianBlur(image, (0, 0), sigma)


ROBUSTNESS: dict[str, tuple[Callable[[np.ndarray, float], np.ndarray], list[float], str]] = {
    "height": (at_height, [48, 32, 24, 20, 16], "crop height, px (native first)"),
    "jpeg": (jpeg, [50, 30, 20, 10, 5], "JPEG quality"),
    "rotation": (rotate, [5, 10, 15, 20], "in-plane rotation, ± degrees"),
    "tilt": (tilt, [5, 10, 15, 20], "perspective tilt about the vertical axis, ± degrees"),
    "darken": (exposure, [0.5, 0.3, 0.2, 0.1], "exposure gain (darker)"),
    "overexpose": (exposure, [1.5, 2.5, 4.0, 6.0], "exposure gain (over-exposed)"),
    "glare": (glare, [60, 120, 180, 240], "glare spot strength (0..255)"),
    "motion_blur": (motion_blur, [0.02, 0.04, 0.07, 0.1], "motion blur length, share of the crop width"),
    "defocus": (defocus, [0.02, 0.04, 0.07, 0.1], "defocus sigma, share of the crop height"),
}
"""One degradation at a time, at fixed strengths: name -> (function(image, strength), strengths, axis label).
Signed ones (rotation, tilt) are applied at +strength to half the plates and -strength to the others. The crop
margin, which needs the photo around the plate, is ``benchmarks/robustness.py``'s own."""
