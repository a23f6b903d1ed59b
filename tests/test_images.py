"""Images: bytes to a BGR image within bounds. Pixels are bounded from the header (every format plate_lib reads),
before anything is decoded; formats it cannot read are named."""

import cv2
import numpy as np
import pytest
from conftest import plate_jpeg, png_header

from plate_lib.images import DataError, as_bgr, decode_image


def _jpeg_frame(width: int, height: int, garbage: bool = False) -> bytes:
    buf = bytearray(plate_jpeg())
    sof = next(i for i in range(2, len(buf) - 1) if buf[i] == 0xFF and buf[i + 1] in (0xC0, 0xC2))
    buf[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    if garbage:  # bytes that are not a marker, before the frame header: libjpeg skips them, so must the check
        buf[sof:sof] = b"\x00\x11\x22"
    return bytes(buf)


def _bmp_header(width: int, height: int) -> bytes:
    info = (40).to_bytes(4, "little") + width.to_bytes(4, "little") + height.to_bytes(4, "little", signed=True)
    info += (1).to_bytes(2, "little") + (24).to_bytes(2, "little") + bytes(24)
    return b"BM" + (54 + 1000).to_bytes(4, "little") + bytes(4) + (54).to_bytes(4, "little") + info + bytes(1000)


def _webp_canvas(width: int, height: int) -> bytes:
    vp8x = bytes(4) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return b"RIFF" + (4 + 18 + 1000).to_bytes(4, "little") + b"WEBP" + b"VP8X" + (10).to_bytes(4, "little") + vp8x + bytes(1000)


@pytest.mark.parametrize("buf, kind, w, h", [
    (png_header(20000, 20000), "PNG", 20000, 20000), (_jpeg_frame(20000, 20000), "JPEG", 20000, 20000),
    (_jpeg_frame(20000, 20000, garbage=True), "JPEG", 20000, 20000), (_bmp_header(20000, -20000), "BMP", 20000, 20000),
    (_webp_canvas(16383, 16383), "WebP", 16383, 16383)], ids=["png", "jpeg", "jpeg+garbage", "bmp", "webp"])
def test_an_image_over_the_pixel_cap_is_refused_from_its_header_before_decoding(buf, kind, w, h, monkeypatch):
    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("the image was decoded"))
    with pytest.raises(DataError, match=rf"big: {kind} header says {w}×{h} pixels \(\d+ megapixels\), over the "
                                        r"40 megapixels plate_lib decodes"):
        decode_image(buf, "big")


def test_bmp_and_webp_crops_decode_and_other_formats_are_named(tmp_path):
    img = np.full((40, 120, 3), 77, np.uint8)
    for ext, params in ((".bmp", []), (".webp", []), (".webp", [cv2.IMWRITE_WEBP_QUALITY, 101])):  # 101: lossless
        assert decode_image(cv2.imencode(ext, img, params)[1].tobytes(), f"x{ext}").shape == (40, 120, 3)
    with pytest.raises(DataError, match=r"x\.jpg: not a decodable image \(\d+ bytes; expected JPEG, PNG, BMP or WebP\)"):
        decode_image(cv2.imencode(".tiff", img)[1].tobytes(), "x.jpg")


# --- images handed in memory (reading.read_plates) --------------------------------------------------------


def test_an_8_bit_bgr_array_is_read_as_it_is_without_a_copy():
    img = np.zeros((36, 136, 3), np.uint8)
    assert as_bgr(img, "image 0") is img


@pytest.mark.parametrize("img", [np.full((36, 136), 77, np.uint8), np.full((36, 136, 1), 77, np.uint8),
                                 np.full((36, 136, 3), 77 * 257, np.uint16), np.dstack([np.full((36, 136, 3), 77, np.uint8),
                                                                                       np.full((36, 136), 255, np.uint8)])],
                         ids=["grey", "grey-1-channel", "16-bit", "bgra-opaque"])
def test_grey_16_bit_and_bgra_arrays_become_the_bgr_image_they_show(img):
    out = as_bgr(img, "image 0")
    assert out.dtype == np.uint8 and out.shape == (36, 136, 3) and (out == 77).all()


@pytest.mark.parametrize("img, said", [
    (None, r"image 2 is None, not an image: cv2.imread gives None for a file it cannot read \(check the path\)"),
    ([[1, 2], [3, 4]], r"image 2 is a list, expected a numpy array: H×W×3 BGR uint8"),
    (np.zeros((36, 136, 3), np.float32), r"image 2 has dtype float32, expected uint8 \(0-255\)"),
    (np.zeros((36, 136, 2), np.uint8), r"image 2 has shape \(36, 136, 2\), expected H×W×3"),
    (np.zeros((3, 136, 3), np.uint8), r"image 2 is 136×3 pixels, too small to hold a plate")],
    ids=["none", "list", "float", "2-channel", "too-small"])
def test_anything_else_is_an_error_naming_the_image_and_what_was_expected(img, said):
    with pytest.raises(DataError, match=said):
        as_bgr(img, "image 2")
