"""A one-page PDF record of one assessment, for the patient file.

A clinician who acts on a result has to file what the tool said, about which image, with
which model and when; a screenshot loses the model's identity and the notice. The page has
blank fields for the patient and the reader, to be filled in by hand, so no patient data
passes through the tool.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
from matplotlib.backends.backend_pdf import FigureCanvasPdf  # by name, so PyInstaller bundles it
from matplotlib.figure import Figure
from PIL import Image

from screening import __version__
from screening.explain import CAPTION
from screening.files import write_atomically
from screening.inference import Result, Screener
from screening.info import CLASS_CODES, NOTICE, label_of
from screening.report import MALIGNANCY_MEANING, calibration_text, operating_point_text, recommendation

# A font found for a file name's script may come only in a near weight (DejaVu Sans Condensed:
# 380, not 400); matplotlib then uses it and logs a warning line in the terminal for each record.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

A4 = (8.27, 11.69)  # inches
FONT = "DejaVu Sans"  # matplotlib's own: Latin, Greek, Cyrillic, Hebrew, Arabic, but no Chinese, Japanese, Korean...
TEXT_PT, LINE_PT = 8.5, (0.93 - 0.07) * A4[0] * 72  # the details' size; the page's width inside its margins
NAME_LINES = 2  # for the file name, in the room above the signatures
HAND_FIELDS = ("Patient", "Date of birth", "Lesion site", "Reviewed by", "Decision")


def write_record(path: Path, screener: Screener, r: Result, image: np.ndarray, heatmap: Image.Image,
                 source_name: str, when: datetime | None = None, identification: str = "") -> None:
    """Draw the page and write it to ``path`` (never half a PDF). ``image`` is the 224x224
    square the model saw, ``heatmap`` its Grad-CAM overlay; ``identification``, what a DICOM
    file's header says of whose image it is."""
    when = (when or datetime.now()).astimezone()
    flag, advice = recommendation(r, screener.threshold)
    fig = Figure(figsize=A4)
    FigureCanvasPdf(fig)
    text = {"transform": fig.transFigure, "va": "top"}

    def prose(y: float, words: str, size: float, weight: str = "normal", most: int = 4, **style) -> None:
        """Text broken within the margins (matplotlib's own wrapping runs to the paper's edge)."""
        fig.text(0.07, y, broken(words, [FONT], most, size, weight), fontsize=size, weight=weight, **style, **text)

    fig.text(0.07, 0.965, "SkinScreen assessment record", fontsize=17, weight="bold", **text)
    prose(0.935, NOTICE + " Every result must be read by a qualified clinician.", 8.5, color="#8a1c1c")
    for i, name in enumerate(HAND_FIELDS[:3]):
        fig.text(0.07 + i * 0.30, 0.905, f"{name}: ____________________", fontsize=9, **text)

    for x, picture, title in ((0.07, image, "Image as assessed (centre square, 224 x 224)"),
                              (0.52, heatmap, CAPTION)):
        ax = fig.add_axes((x, 0.60, 0.41, 0.27))
        ax.imshow(np.asarray(picture), interpolation="none")  # the pixels as they are, not resampled at 72 dpi
        ax.set_title(title, fontsize=9, y=1.0)  # placed, not fitted above tick labels (none): 0.08 s a page
        ax.set_axis_off()

    fig.text(0.07, 0.575, f"Malignancy probability: {r.malignancy_probability:.1%}   {flag}", fontsize=15,
             weight="bold", color="#8a1c1c" if r.refer else "black", **text)
    prose(0.548, f"({MALIGNANCY_MEANING})", 8)
    prose(0.528, advice, 9.5)
    if screener.held_out is not None:
        prose(0.495, f"This threshold {operating_point_text(screener.held_out)}.", 8.5)
    fig.text(0.07, 0.455, f"Most likely diagnosis: {label_of(r.predicted_class)}, {r.confidence:.1%}", fontsize=10,
             weight="bold", **text)

    ax = fig.add_axes((0.40, 0.29, 0.45, 0.13))
    probs = [r.probabilities[c] for c in CLASS_CODES]
    ax.barh(range(len(CLASS_CODES)), probs, color=["#8a1c1c" if c == r.predicted_class else "#7a8a99"
                                                   for c in CLASS_CODES])
    ax.set_yticks(range(len(CLASS_CODES)), [label_of(c) for c in CLASS_CODES], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.set_xticks([])
    ax.spines[["top", "right", "bottom"]].set_visible(False)
    for i, p in enumerate(probs):
        ax.text(p + 0.01, i, f"{p:.1%}", va="center", fontsize=8)
    ax.set_title("Diagnosis probabilities (temperature-scaled only)", fontsize=9, y=1.0)

    if r.warnings:  # at most three lines: the details below start under them
        prose(0.255, "Image checks, read this result with care: " + "; ".join(r.warnings), 9.5, "bold", most=3,
              color="#8a1c1c")
    else:
        fig.text(0.07, 0.255, "Image checks: no problems found", fontsize=9, **text)
    meta = screener.meta
    fonts, undrawable = fonts_for(source_name + identification)
    boxes = " (characters that no font on this computer can draw show as boxes)" if undrawable else ""
    file_line = broken(f"File: {source_name} ({r.width} x {r.height} pixels){boxes}", fonts)
    lines = [file_line.replace("$", r"\$"),  # matplotlib reads text between two "$" as TeX
             *([broken(f"DICOM header: {identification}", fonts).replace("$", r"\$")] if identification else []),
             f"Assessed: {when.strftime('%Y-%m-%d %H:%M %Z')}",
             (f"Model: {meta.get('name', '')} {meta.get('version', '')}, sha256 {str(meta.get('sha256', ''))[:16]}"
             "..."),
             f"Test-time augmentation {'on' if screener.tta else 'off'}; SkinScreen {__version__}",
             broken(f"Malignancy probability {calibration_text(screener)}",
                    [FONT], 1, TEXT_PT)]
    fig.text(0.07, 0.21, "\n".join(lines), fontsize=TEXT_PT, linespacing=1.6, fontfamily=fonts, **text)
    for i, name in enumerate(HAND_FIELDS[3:]):
        fig.text(0.07 + i * 0.45, 0.097, f"{name}: ______________________________", fontsize=9, **text)
    prose(0.06, f"{NOTICE} SkinScreen was trained on HAM10000 dermoscopy images only (seven diagnoses); it says "
          "nothing about other conditions or other kinds of photograph.", 7.5, color="#555555")

    metadata = {"Title": "SkinScreen assessment record", "Creator": f"SkinScreen {__version__}"}
    with _missing_glyphs_unsaid():
        write_atomically(Path(path), lambda tmp: fig.savefig(tmp, format="pdf", metadata=metadata))


@contextmanager
def _missing_glyphs_unsaid() -> Iterator[None]:
    """No warning per character no font has: the page says so once, the terminal need not."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        yield


def broken(text: str, fonts: list[str], most: int = NAME_LINES, size: float = TEXT_PT, weight: str = "normal",
           width: float = LINE_PT) -> str:
    """``text`` with line breaks where it would run off the page (see :func:`_broken`)."""
    return _broken(text, tuple(fonts), most, size, weight, width)


@lru_cache(maxsize=256)  # a page measures ~85 words; most of its prose is on every page of a batch
def _broken(text: str, fonts: tuple[str, ...], most: int, size: float, weight: str, width: float) -> str:
    """``text`` with line breaks where it would run off the page, measured in its font: matplotlib
    breaks only at spaces and measures to the paper's edge, not the margin, so a long file name
    without spaces, or in Chinese or Japanese, ran past the edge. Breaks at spaces where it can,
    anywhere within a word wider than a line. Beyond ``most`` lines the middle is left out ("…")."""
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    renderer = RendererAgg(1, 1, 720)  # 720 dpi, widths / 10 in points: at 72, sizes round to whole pixels
    font = FontProperties(family=list(fonts), size=size, weight=weight)

    def fits(line: str) -> bool:
        return renderer.get_text_width_height_descent(line.rstrip(), font, ismath=False)[0] / 10 <= width

    lines = [""]
    with _missing_glyphs_unsaid():
        if fits(text):  # most texts: one measurement, not one per word
            return text
        for word in re.split(r"(?<= )", text):  # each word keeps the space after it
            if fits(lines[-1] + word):
                lines[-1] += word
            elif fits(word):
                lines.append(word)
            else:  # wider than a line: broken anywhere, from where the line stands
                for char in word:
                    if lines[-1].strip() and not fits(lines[-1] + char):
                        lines.append("")
                    lines[-1] += char
        lines = [line.rstrip() for line in lines]
        if len(lines) > most:  # the last line is as much of the end as fits (a name's end tells files apart)
            tail = ""
            while len(tail) < len(text) and fits("…" + text[-len(tail) - 1:]):
                tail = text[-len(tail) - 1:]
            lines = [*lines[: most - 1], "…" + tail.lstrip()]
    return "\n".join(lines)


def fonts_for(text: str) -> tuple[list[str], bool]:
    """Font families to draw ``text`` with: :data:`FONT`, then installed fonts holding the
    characters it lacks (a Japanese file name would otherwise be a row of boxes, useless for
    matching the record to its image); and whether some character is in none of them."""
    from matplotlib import font_manager

    missing = {c for c in text if ord(c) not in _characters(font_manager.findfont(FONT))}
    families = [FONT]
    for entry in sorted(font_manager.fontManager.ttflist, key=lambda e: ("Sans" not in e.name, e.name)):
        if not missing:
            break
        found = {c for c in missing if ord(c) in _characters(entry.fname)}
        if found and entry.name not in families and not entry.name.startswith("Last Resort"):  # boxes only
            families.append(entry.name)
            missing -= found
    return families, bool(missing)


@cache
def _characters(font_file: str) -> frozenset[int]:
    from matplotlib import ft2font

    try:
        return frozenset(ft2font.FT2Font(font_file).get_charmap())
    except (OSError, RuntimeError, ValueError):  # a damaged or unsupported font file: as if absent
        return frozenset()
