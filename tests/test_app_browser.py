"""Real-browser tests: Debian's Chromium, driven by Playwright, uploads an image and saves the
PDF record through the page's download link, and screens a zip in the Several images tab.

Skipped, with the reason, where Chromium (apt-get install chromium) or Playwright is
missing. With SKINSCREEN_SCREENSHOT=path the One image page is saved there
(docs/app_screenshot.png); with SKINSCREEN_BATCH_SCREENSHOT=path the Several images page
(docs/batch_screenshot.png).
"""

import os
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from screening.serving import free_port
from tests.conftest import HAM, lesion_like, pdf_text
from tests.dicom_files import write_dicom

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="Chromium not installed (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def contrast(element) -> float:
    """WCAG's contrast ratio between an element's text colour and its background (its own, or
    the nearest one set around it)."""

    def luminance(css: str) -> float:
        r, g, b = (float(v) / 255 for v in re.findall(r"[\d.]+", css)[:3])
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    fg, bg = element.evaluate(r"""e => {
        let b = e;
        while (b && getComputedStyle(b).backgroundColor.replace(/ /g, '').match(/rgba\(.*,0\)|transparent/)) {
            b = b.parentElement;
        }
        return [getComputedStyle(e).color, b ? getComputedStyle(b).backgroundColor : 'rgb(255, 255, 255)'];
    }""")
    light, dark = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_upload_in_a_real_browser_shows_the_assessment(tiny_bundle, tmp_path):
    from screening.app import launch, parser
    from screening.inference import DEFAULT_MODEL

    model = DEFAULT_MODEL if (DEFAULT_MODEL / "bundle.json").is_file() else tiny_bundle
    port = free_port()
    demo = launch(parser().parse_args(["--port", str(port), "--no-browser", "--model", str(model)]),
                  block=False)
    sample = HAM / "images_224" / "ISIC_0024306.jpg"
    image = tmp_path / "lesion.jpg"
    if sample.is_file():
        shutil.copy(sample, image)
    else:
        Image.fromarray(lesion_like()).save(image)
    dicom_file = write_dicom(tmp_path / "IM0001", np.asarray(Image.open(image).convert("RGB")), syntax="jpeg")
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            elsewhere = []  # the page must load nothing from other hosts (fonts, scripts, trackers)
            page.on("request", lambda r: r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                    or elsewhere.append(r.url))
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
            assert contrast(page.get_by_text("- or -").first) >= 4.5  # the upload box's grey text
            page.locator("input[type=file]").first.set_input_files(str(image))
            page.get_by_text("Malignancy probability").first.wait_for(timeout=60_000)
            page.get_by_text("Recommendation:").first.wait_for(timeout=10_000)
            assert page.get_by_role("button", name="Share").count() == 0  # it would upload to huggingface.co
            assert page.get_by_text("not a medical device").count() >= 1
            # readable by people with low vision (WCAG AA); the result is the page's first heading under its title
            for button in ("Assess", "Quit SkinScreen (deletes this run's images and reports)"):
                assert contrast(page.get_by_role("button", name=button, exact=True)) >= 4.5, button
            assert page.get_by_role("heading", level=2, name="Malignancy probability").count() == 1
            assert page.get_by_role("button", name="Grad-CAM heat map over the image").count() == 1
            shot = os.environ.get("SKINSCREEN_SCREENSHOT")
            page.screenshot(path=shot or str(tmp_path / "app.png"), full_page=True)
            page.set_viewport_size({"width": 390, "height": 844})  # a phone's width: one column, no sideways scrolling
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            assert page.get_by_text("Recommendation:").first.bounding_box()["width"] <= 390
            tabs = page.get_by_role("tab").all()  # on a second line, not hidden in a "..." menu
            assert [t.inner_text() for t in tabs if t.is_visible()] == ["One image", "Several images", "Help", "Model"]
            page.set_viewport_size({"width": 1280, "height": 1100})
            page.get_by_role("button", name="Save a PDF record of this assessment").click()
            link = page.locator('a[download$=".pdf"]').first
            link.wait_for(timeout=60_000)
            with page.expect_download() as download:
                link.click()
            download.value.save_as(tmp_path / "record.pdf")
            page.locator("input[type=file]").first.set_input_files(str(image))  # another image: no stale record
            link.wait_for(state="detached", timeout=30_000)
            with page.expect_file_chooser() as chooser:  # a DICOM file: shown as the PNG read from it, assessed
                page.get_by_role("button", name="Open a DICOM file").click()
            chooser.value.set_files(str(dicom_file))
            page.locator('img[src*="IM0001.png"]').first.wait_for(timeout=60_000)
            page.get_by_role("button", name="Save a PDF record of this assessment").click()
            link.wait_for(timeout=60_000)
            with page.expect_download() as download:
                link.click()
            download.value.save_as(tmp_path / "dicom-record.pdf")
            tiff = tmp_path / "camera.tif"  # no browser but Safari shows TIFF: the box gets its PNG
            Image.open(image).save(tiff)
            page.locator("input[type=file]").first.set_input_files(str(tiff))
            shown = page.locator('img[src*="camera.tif.png"]').first
            shown.wait_for(timeout=60_000)
            assert page.evaluate("(img) => img.naturalWidth", shown.element_handle()) > 0
            kept = page.evaluate("() => Object.keys(localStorage).concat(Object.keys(sessionStorage))")
            assert not [k for k in kept if "run-history" in k], kept  # no assessments left in the browser
            assert page.request.get(f"http://127.0.0.1:{port}/gradio_api/runs").status == 404
            browser.close()
        assert "Malignancy probability" in pdf_text(tmp_path / "record.pdf")
        assert "File: IM0001.png" in (text := pdf_text(tmp_path / "dicom-record.pdf"))
        assert "DICOM header: patient TEST-0001" in text  # through the PNG the page showed
        assert elsewhere == []
    finally:
        demo.close()


# validation images of the shipped model: two it refers, three it does not (docs/worklist.png's)
SAMPLES = ["ISIC_0025467", "ISIC_0032019", "ISIC_0024662", "ISIC_0025033", "ISIC_0033626"]


def test_several_images_in_a_real_browser_give_the_worklist_and_the_records(tiny_bundle, tmp_path):
    import openpyxl

    from screening.app import launch, parser
    from screening.inference import DEFAULT_MODEL

    model = DEFAULT_MODEL if (DEFAULT_MODEL / "bundle.json").is_file() else tiny_bundle
    archive = tmp_path / "clinic.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for i, name in enumerate(SAMPLES):
            found = [f for f in (HAM / "images_224" / f"{name}.jpg", HAM / "images_200x150" / f"{name}.jpg")
                     if f.is_file()]
            if found:
                z.write(found[0], f"{name}.jpg")
            else:
                Image.fromarray(lesion_like(seed=i)).save(tmp_path / f"{name}.jpg")
                z.write(tmp_path / f"{name}.jpg", f"{name}.jpg")
        z.writestr("unreadable.jpg", b"not an image")
    port = free_port()
    demo = launch(parser().parse_args(["--port", str(port), "--no-browser", "--model", str(model)]), block=False)
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            elsewhere = []
            page.on("request", lambda r: r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                    or elsewhere.append(r.url))
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
            page.get_by_role("tab", name="Several images").click()
            page.locator("input[type=file][multiple]").set_input_files(str(archive))
            page.get_by_text("clinic.zip").or_(page.get_by_text("clinic")).first.wait_for(timeout=30_000)
            page.get_by_label("Also a PDF record (with Grad-CAM) of each REFER image").check()
            page.get_by_role("button", name="Screen all and build the Excel report").click()
            page.get_by_text(f"{len(SAMPLES) + 1} images:").first.wait_for(timeout=120_000)
            worklist = page.locator(".block", has_text="Worklist: REFER first").last
            sync_api.expect(worklist).to_contain_text("unreadable.jpg", timeout=10_000)
            cells = [c.strip() for c in worklist.inner_text().replace("\t", "\n").split("\n")]
            flags = [c for c in cells if c in ("REFER", "routine", "not read")]
            assert len(flags) == len(SAMPLES) + 1 and flags[-1] == "not read"  # the unreadable file last
            assert flags[:-1] == sorted(flags[:-1], key=lambda f: f != "REFER")  # REFER first
            shot = os.environ.get("SKINSCREEN_BATCH_SCREENSHOT")
            page.screenshot(path=shot or str(tmp_path / "batch.png"), full_page=True)
            links = page.locator('a[download^="skinscreen-report"]')
            with page.expect_download() as download:
                links.first.click()
            download.value.save_as(tmp_path / "worklist.xlsx")
            if "REFER" in flags:
                with page.expect_download() as download:
                    page.locator('a[download^="skinscreen-records"]').first.click()
                download.value.save_as(tmp_path / "records.zip")
                with zipfile.ZipFile(tmp_path / "records.zip") as z:
                    assert len([n for n in z.namelist() if n.endswith(".pdf")]) == flags.count("REFER")
            browser.close()
        ws = openpyxl.load_workbook(tmp_path / "worklist.xlsx")["Results"]
        assert ws.max_row == len(SAMPLES) + 2  # the header and one row per file
        assert elsewhere == []
    finally:
        demo.close()
