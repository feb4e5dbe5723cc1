"""The one-page PDF record of an assessment (``screening.record``), read back as text."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from PIL import Image

from screening.explain import GradCAM
from screening.inference import Result, Screener
from screening.info import NOTICE
from screening.preprocessing import preprocess
from screening.record import write_record
from screening.report import recommendation
from tests.conftest import lesion_like, pdf_text


@pytest.fixture(scope="module")
def assessed(tiny_bundle):
    screener = Screener(tiny_bundle, batch_size=1)
    x = preprocess(Image.fromarray(lesion_like()))
    (result,) = screener.score_arrays(x[None], [(400, 300)], ["upload"])
    return screener, result, x, GradCAM(screener.model).overlay(x, 0)


def test_the_record_says_what_the_tool_said_with_which_model_and_when(assessed, tmp_path):
    screener, result, x, heatmap = assessed
    out = tmp_path / "record.pdf"
    write_record(out, screener, result, x, heatmap, source_name="lesion.jpg",
                 when=datetime(2026, 11, 26, 14, 5, tzinfo=UTC))
    assert out.read_bytes().startswith(b"%PDF") and out.stat().st_mode & 0o044  # readable, not mkstemp's 0600
    text = " ".join(pdf_text(out).split())
    flag, advice = recommendation(result, screener.threshold)
    assert f"Malignancy probability: {result.malignancy_probability:.1%} {flag}" in text
    assert advice.split(".")[0] in text and NOTICE in text
    assert "File: lesion.jpg (400 x 300 pixels)" in text and "2026-11-26" in text
    assert screener.meta["sha256"][:16] in text and "Patient:" in text and "Reviewed by:" in text
    assert "Malignancy probability for the malignant share of its validation images" in text
    assert [p.name for p in tmp_path.iterdir()] == ["record.pdf"]


def test_the_record_says_the_malignant_share_set_with_prevalence(assessed, tiny_bundle, tmp_path):
    from tests.conftest import with_validation_mix

    _, _, x, heatmap = assessed
    screener = Screener(with_validation_mix(tiny_bundle, tmp_path / "b"), prevalence=0.05)
    (result,) = screener.score_arrays(x[None], [(400, 300)], ["upload"])
    write_record(tmp_path / "record.pdf", screener, result, x, heatmap, source_name="lesion.jpg")
    text = " ".join(pdf_text(tmp_path / "record.pdf").split())
    assert "converted to a malignant share of 5.0% (--prevalence; validation images: 20.0%)" in text
    assert "referred 88.0% of malignant and 25.0% of benign lesions among 1,234 HAM10000 images of its hold-out" in text
    assert f"referral threshold of {screener.threshold * 100:.1f}%" in text  # the converted threshold


def test_the_pictures_are_embedded_pixel_for_pixel_as_the_model_saw_them(assessed, tmp_path):
    import re

    screener, result, x, heatmap = assessed
    write_record(tmp_path / "record.pdf", screener, result, x, heatmap, source_name="lesion.jpg")
    sizes = re.findall(rb"/Width (\d+) /Height (\d+)", (tmp_path / "record.pdf").read_bytes())
    assert sizes == [(b"224", b"224")] * 2  # not resampled by matplotlib (it made them 315 x 315)


@pytest.mark.parametrize("name", ["a$\\foo$b.jpg", "price$5 and $6.jpg"])
def test_a_file_name_with_dollar_signs_is_printed_as_it_is(assessed, tmp_path, name):
    screener, result, x, heatmap = assessed
    write_record(tmp_path / "record.pdf", screener, result, x, heatmap, source_name=name)  # not read as TeX
    assert f"File: {name} (400 x 300 pixels)" in " ".join(pdf_text(tmp_path / "record.pdf").split())


def test_a_file_name_the_default_font_cannot_draw_is_drawn_with_an_installed_font(assessed, tmp_path):
    from screening.record import FONT, fonts_for

    name = "患者の病変 환자.jpg"  # Japanese and Korean: no glyphs in matplotlib's own font
    fonts, undrawable = fonts_for(name)
    if undrawable:
        pytest.skip("no Chinese/Japanese/Korean font installed (e.g. apt-get install fonts-noto-cjk)")
    assert fonts[0] == FONT and len(fonts) > 1
    screener, result, x, heatmap = assessed
    write_record(tmp_path / "record.pdf", screener, result, x, heatmap, source_name=name)
    pdf = (tmp_path / "record.pdf").read_bytes()
    assert b"LastResort" not in pdf  # matplotlib's font of boxes was not needed
    assert f"File: {name} (400 x 300 pixels)" in " ".join(pdf_text(tmp_path / "record.pdf").split())


def test_characters_no_font_can_draw_are_said_to_be_boxes_once_not_warned_per_character(assessed, tmp_path, recwarn):
    screener, result, x, heatmap = assessed
    name = "\u0378\u0379.jpg"  # unassigned code points: in no font
    write_record(tmp_path / "record.pdf", screener, result, x, heatmap, source_name=name)
    assert "no font on this computer can draw show as boxes" in " ".join(pdf_text(tmp_path / "record.pdf").split())
    assert not [w for w in recwarn if "missing from font" in str(w.message)]


def _width(line: str, size: float = 8.5, weight: str = "normal") -> float:
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    from screening.record import FONT

    return RendererAgg(1, 1, 720).get_text_width_height_descent(
        line, FontProperties(family=[FONT], size=size, weight=weight), ismath=False)[0] / 10


def test_a_long_file_name_is_broken_to_the_page_width_and_its_middle_left_out_past_two_lines():
    from screening.record import FONT, LINE_PT, broken

    two = "File: " + "W" * 80 + ".jpg"  # no space for matplotlib to break at; W is the widest letter
    assert broken(two, [FONT]).replace("\n", "") == two and broken(two, [FONT]).count("\n") == 1
    long = "File: " + "W" * 300 + ".jpg (224 x 224 pixels)"
    lines = broken(long, [FONT]).split("\n")
    assert len(lines) == 2 and lines[0].startswith("File: W") and lines[1].startswith("…W")
    assert lines[1].endswith(".jpg (224 x 224 pixels)") and all(_width(line) <= LINE_PT for line in lines)


def test_the_image_checks_break_between_words_within_the_margin():
    from screening.record import FONT, LINE_PT, broken

    text = ("Image checks, read this result with care: very small (140x60 px); only the centre square was "
            "assessed (140x60 px): crop the picture to the lesion; very blurry; unusually low confidence")
    lines = broken(text, [FONT], most=3, size=9.5, weight="bold").split("\n")
    assert 1 < len(lines) <= 3 and " ".join(lines) == text  # matplotlib alone ran the first past the margin
    assert all(_width(line, 9.5, "bold") <= LINE_PT for line in lines)


def test_a_failed_write_leaves_the_earlier_file_alone(assessed, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    def disk_full(self, fname, **kwargs):
        Path(fname).write_bytes(b"%PDF-1.4 half")
        raise OSError("No space left on device")

    screener, result, x, heatmap = assessed
    out = tmp_path / "record.pdf"
    out.write_bytes(b"earlier")
    monkeypatch.setattr(Figure, "savefig", disk_full)
    with pytest.raises(OSError):
        write_record(out, screener, result, x, heatmap, source_name="lesion.jpg")
    assert out.read_bytes() == b"earlier" and [p.name for p in tmp_path.iterdir()] == ["record.pdf"]


def test_recommendation_follows_the_flag():
    refer = Result(source="x", probabilities={"mel": 1.0}, malignancy_probability=0.5, refer=True)
    assert recommendation(refer, 0.2)[0] == "REFER" and "dermatologist" in recommendation(refer, 0.2)[1]
    flag, advice = recommendation(Result(source="x", probabilities={"nv": 1.0}, malignancy_probability=0.1), 0.2)
    assert flag == "routine" and "does not rule out cancer" in advice and "20.0%" in advice


def test_a_font_found_only_in_a_near_weight_logs_nothing(assessed, tmp_path, caplog):
    """Where the font holding a name's character comes only in a near weight (Debian's DejaVu
    Sans Condensed, 380), matplotlib used it and logged "findfont: Failed to find font weight
    normal" in the terminal for each record."""
    from screening.record import fonts_for

    screener, result, x, heatmap = assessed
    name = "lesion \U0001f643.jpg"  # an emoji that matplotlib's own DejaVu Sans lacks
    if fonts_for(name)[1]:
        pytest.skip("no installed font has this character")
    write_record(tmp_path / "record.pdf", screener, result, x, heatmap, source_name=name)
    assert not [r for r in caplog.records if r.name.startswith("matplotlib")], caplog.text

