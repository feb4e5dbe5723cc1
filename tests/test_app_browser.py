"""One real-browser test: Debian's Chromium, driven by Playwright, uploads an image and
saves the PDF record through the page's download link.

Skipped, with the reason, where Chromium (apt-get install chromium) or Playwright is
missing. With SKINSCREEN_SCREENSHOT=path the page is saved there (docs/app_screenshot.png).
"""

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import HAM, lesion_like, pdf_text
from tests.test_app import free_port

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="Chromium not installed (apt-get install chromium)")
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed (pip install playwright)")

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


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
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            elsewhere = []  # the page must load nothing from other hosts (fonts, scripts, trackers)
            page.on("request", lambda r: r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
                    or elsewhere.append(r.url))
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
            page.locator("input[type=file]").first.set_input_files(str(image))
            page.get_by_text("Malignancy probability").first.wait_for(timeout=60_000)
            page.get_by_text("Recommendation:").first.wait_for(timeout=10_000)
            assert page.get_by_role("button", name="Share").count() == 0  # it would upload to huggingface.co
            assert page.get_by_text("not a medical device").count() >= 1
            shot = os.environ.get("SKINSCREEN_SCREENSHOT")
            page.screenshot(path=shot or str(tmp_path / "app.png"), full_page=True)
            page.get_by_role("button", name="Save a PDF record of this assessment").click()
            link = page.locator('a[download$=".pdf"]').first
            link.wait_for(timeout=60_000)
            with page.expect_download() as download:
                link.click()
            download.value.save_as(tmp_path / "record.pdf")
            page.locator("input[type=file]").first.set_input_files(str(image))  # another image: no stale record
            link.wait_for(state="detached", timeout=30_000)
            kept = page.evaluate("() => Object.keys(localStorage).concat(Object.keys(sessionStorage))")
            assert not [k for k in kept if "run-history" in k], kept  # no assessments left in the browser
            assert page.request.get(f"http://127.0.0.1:{port}/gradio_api/runs").status == 404
            browser.close()
        assert "Malignancy probability" in pdf_text(tmp_path / "record.pdf")
        assert elsewhere == []
    finally:
        demo.close()
