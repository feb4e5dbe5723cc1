"""Accessibility audit of the app's page: axe-core (WCAG 2.1 A and AA rules, and its best
practices) run in headless Chromium on each tab, and on the One image tab after an assessment.

    npm install --prefix /tmp/axe axe-core@4     # once; axe-core is JavaScript, not on PyPI
    PYTHONPATH=. python build/accessibility.py /tmp/axe/node_modules/axe-core/axe.min.js

Prints each finding with its impact and the elements it names; exit status 1 if any finding
is on an element SkinScreen itself makes, rather than on one of Gradio's own components
(listed in GRADIO_OWN, reported but not counted).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "ham10000" / "images_224" / "ISIC_0024306.jpg"
RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
# Findings inside Gradio's components, which its options cannot change (Gradio 6.31):
GRADIO_OWN = {
    "aria-prohibited-attr",  # its empty-value placeholder: aria-label on a div without a role
    "label-content-name-mismatch",  # its upload box: aria-label other than the visible text
    "image-redundant-alt",  # its footer's Settings icon beside the word Settings
}


def audit(page, axe: str, where: str) -> int:
    """Print the findings on the page as it is; return those on SkinScreen's own elements."""
    page.add_script_tag(content=axe)
    found = page.evaluate("rules => axe.run(document, {runOnly: rules})", RULES)["violations"]
    own = [v for v in found if v["id"] not in GRADIO_OWN]
    print(f"{where}: {len(found)} findings, {len(own)} on SkinScreen's own elements")
    for v in found:
        print(f"  [{v['impact']}] {v['id']}{' (Gradio)' if v['id'] in GRADIO_OWN else ''}: {v['help']}")
        for node in v["nodes"][:3]:
            print(f"      {node['html'][:110]}")
    return len(own)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("axe", type=Path, help="axe.min.js from the axe-core npm package")
    p.add_argument("--model", type=Path, help="model bundle (default: the packaged model)")
    p.add_argument("--image", type=Path, default=SAMPLE, help="image to assess (default: a HAM10000 image)")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from playwright.sync_api import sync_playwright

    import screening  # noqa: F401  the JAX backend before Keras
    from screening.app import launch, parser
    from screening.serving import free_port
    from tests.test_app_browser import CHROMIUM, FLAGS

    axe = args.axe.read_text(encoding="utf-8")
    port = free_port()
    options = ["--port", str(port), "--no-browser", *(["--model", str(args.model)] if args.model else [])]
    demo = launch(parser().parse_args(options), block=False)
    try:
        with sync_playwright() as pw:
            page = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS).new_page(
                viewport={"width": 1280, "height": 1100})
            page.goto(f"http://127.0.0.1:{port}/", wait_until="networkidle")
            own = audit(page, axe, "One image, empty")
            page.locator("input[type=file]").first.set_input_files(str(args.image))
            page.get_by_text("Recommendation:").first.wait_for(timeout=120_000)
            own += audit(page, axe, "One image, assessed")
            for tab in ("Several images", "Help", "Model"):
                page.get_by_role("tab", name=tab).click()
                page.wait_for_timeout(500)
                own += audit(page, axe, tab)
    finally:
        demo.close()
    return 1 if own else 0


if __name__ == "__main__":
    raise SystemExit(main())
