import shutil

import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFont

from laionet_bench.errors import ConfigError, UnknownNameError
from laionet_bench.rebuild.ocr import FetchedImages, FolderImages, flag_rows, load_ocr_engine, name_in_text

GOLDFISH, TENCH = "n01443537", "n01440764"
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None,
                                     reason="tesseract not installed (apt-get install tesseract-ocr)")


def text_image(text: str) -> Image.Image:
    image = Image.new("RGB", (900, 200), "white")
    ImageDraw.Draw(image).text((30, 50), text, fill="black", font=ImageFont.load_default(size=72))
    return image


class FakeEngine:
    name = "fake"

    def recognize(self, image):
        return "SALE: Gold-Fish!" if image.getpixel((0, 0)) == (255, 0, 0) else ""


def test_flag_rule_uses_normalised_names():
    assert name_in_text("goldfish", "Fresh GOLDFISH, cheap")
    assert name_in_text("sea lion", "the Sea-Lion show")
    assert not name_in_text("goldfish", "gold fish")


def test_flag_rows_with_a_folder_of_images(tmp_path):
    Image.new("RGB", (8, 8), (255, 0, 0)).save(tmp_path / "100.png")
    Image.new("RGB", (8, 8), (0, 0, 255)).save(tmp_path / "101.jpg")
    (tmp_path / "103.jpg").write_bytes(b"not an image")
    frame = pd.DataFrame({"row_id": [100, 101, 102, 103], "url": ["u"] * 4, "wnid": [GOLDFISH, GOLDFISH, TENCH, TENCH]})
    flagged, counts = flag_rows(frame, FakeEngine(), FolderImages(str(tmp_path)))
    assert flagged["ocr_flag"].tolist() == [False, False, False, False]  # "Gold-Fish" → "gold fish" ≠ "goldfish"
    assert (counts.rows, counts.no_image) == (4, 2)
    flagged, counts = flag_rows(frame.assign(wnid=[TENCH] * 4), FakeEngine(), FolderImages(str(tmp_path)))
    assert counts.flagged == 0 and flagged["x_recognized_text"].tolist()[:2] == ["SALE: Gold-Fish!", ""]
    none, counts = flag_rows(frame, None, None)
    assert not none["ocr_flag"].any() and counts.flagged == 0
    with pytest.raises(ConfigError, match="--images"):
        flag_rows(frame, FakeEngine(), None)


def test_fetched_images_source():
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(buffer, format="PNG")
    source = FetchedImages({"http://a/1.png": buffer.getvalue()}.get)
    assert source(1, "http://a/1.png").size == (8, 8)
    assert source(2, "http://a/2.png") is None


@needs_tesseract
def test_tesseract_reads_rendered_text_and_flags_the_row(tmp_path):
    engine = load_ocr_engine("tesseract")
    assert engine.name == "tesseract:eng"
    assert "goldfish" in engine.recognize(text_image("GOLDFISH FOR SALE")).lower()
    text_image("GOLDFISH FOR SALE").save(tmp_path / "7.png")
    text_image("").save(tmp_path / "8.png")
    frame = pd.DataFrame({"row_id": [7, 8], "url": ["u7", "u8"], "wnid": [GOLDFISH, GOLDFISH]})
    flagged, counts = flag_rows(frame, engine, FolderImages(str(tmp_path)))
    assert flagged["ocr_flag"].tolist() == [True, False] and counts.flagged == 1


def test_unknown_engine():
    assert load_ocr_engine("none") is None
    with pytest.raises(UnknownNameError, match="tesseract"):
        load_ocr_engine("tesserac")
