"""Gradio app: ``python app.py`` (also ``screening-app``) serves a local page on 127.0.0.1:7860.

Tabs: one image or DICOM file (class probabilities, calibrated malignancy probability and
referral advice, Grad-CAM, image-check warnings, a PDF record for the patient file), several
images or a zip (the batch Excel report), help for clinic staff, and the model card. The
scoring function is the API endpoint ``predict``; ``record`` returns the PDF. With
``--audit-log`` each use is written down (``screening.audit``).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import contextlib
import functools
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import webbrowser
import zipfile
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np
from gradio.utils import get_upload_folder, is_in_or_equal
from PIL import Image

from screening import zips
from screening.audit import AuditLog
from screening.batch import identified, listed, scan_folder, screen_files
from screening.cli import add_malignancy_options, add_version_option, check_malignancy_options, described, run_cli
from screening.errors import UserError
from screening.explain import CAPTION, GradCAM
from screening.files import sha256_of
from screening.inference import Result, Screener
from screening.info import CLASS_CODES, NOTICE, label_of
from screening.preprocessing import INPUT_SIZE, ImageError, open_image, preprocess
from screening.record import write_record
from screening.report import (
    MALIGNANCY_MEANING,
    calibration_text,
    operating_point_text,
    recommendation,
    shown,
    tally,
    triage,
)
from screening.scratch import SWEEP, low_space, private_root, sweep_every
from screening.serving import (
    AlreadyRunning,
    add_serving_options,
    alone,
    page_address,
    running_at,
    serving,
    stop_soon,
)
from screening.signin import add_user

MAX_UPLOAD = zips.MAX_BYTES  # per file: a zip of a clinic's dermatoscope originals (3-10 MB each) must fit
GUIDE = Path(__file__).parent / "USER_GUIDE.md"  # for clinic staff; also beside the executable
MODEL_PLOTS = ("confusion_matrix.png", "roc.png", "reliability.png", "subgroups.png")  # shipped beside the model card
# What every current browser shows in the image box (Pillow's names; MPO: a phone's JPEG). Others
# (TIFF, HEIC) show as a broken picture, so the box gets a PNG of them.
BROWSERS_SHOW = ("JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "AVIF")
# The PNGs of DICOM files whose patient the app keeps (by SHA-256, for their PDF records): the newest
KEPT_IDENTIFIED = 1000
# Gradio's default image buttons include "share", which uploads the picture to huggingface.co
NO_SHARE = ["download", "fullscreen"]


def theme() -> gr.themes.Theme:
    """Gradio's default look with text readable at WCAG AA contrast (4.5:1; axe-core, run on the
    page, found these below it): white on its orange primary button was 2.8:1, on its red stop
    button 3.76:1, and its grey secondary text ("- or -", the footer) 1.9:1."""
    return gr.themes.Default().set(
        button_primary_background_fill="*primary_700", button_primary_background_fill_hover="*primary_800",
        button_primary_border_color="*primary_700", button_primary_background_fill_dark="*primary_700",
        button_cancel_background_fill="#b91c1c", button_cancel_background_fill_hover="#991b1b",
        body_text_color_subdued="*neutral_600")


def _said(handler: Callable) -> Callable:
    """``handler`` with what stops it on the computer running SkinScreen (a full disk, an audit
    log that cannot be written: a UserError or an OSError) said on the page in one line, and in
    the text window for whoever runs it, instead of Gradio's bare "Error" and a traceback. An
    almost full disk is said before the handler runs: Gradio's own writes (the Grad-CAM picture
    it stores) would fail beyond the handler's reach."""

    @functools.wraps(handler)  # its signature too: Gradio passes the request and progress it asks for
    def said(*args, **kwargs):
        try:
            if why := low_space():
                raise UserError(f"SkinScreen cannot work here: {why}")
            return handler(*args, **kwargs)
        except (UserError, OSError) as err:
            print(f"warning: {err}", file=sys.stderr)
            raise refused(f"{err}. Ask whoever runs SkinScreen.") from None

    return said


class ScreeningApp:
    """Holds the model and the Grad-CAM explainer; ``predict`` is the per-image handler."""

    def __init__(self, model: str | Path | None = None, threshold: float | None = None,
                 audit: AuditLog | None = None, prevalence: float | None = None) -> None:
        self.screener = Screener(model, threshold=threshold, batch_size=1, prevalence=prevalence)
        self.audit = audit
        self.cam = GradCAM(self.screener.model)
        self.workspace = tempfile.TemporaryDirectory(prefix="work-", dir=private_root(),  # removed at exit
                                                     ignore_cleanup_errors=True)
        # whose image each PNG made by "Open a DICOM file" is, by the PNG's SHA-256: known here, not
        # read from the PNG, where a crafted one could name any patient for its PDF record
        self.identified: dict[str, str] = {}

    def warm_up(self) -> None:
        """Compile what an assessment runs (or load it from the compilation cache) on a blank
        image while the page opens: a user's first assessment took 1.5 s, the next ones 0.24 s."""
        blank = np.zeros((INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
        with contextlib.suppress(Exception):  # no traceback in the window: the first assessment says what is wrong
            self.screener.score_arrays(blank[None], [(INPUT_SIZE, INPUT_SIZE)], ["warm-up"])
            self.cam.overlay(blank, 0)

    @_said
    def predict(self, image: dict | Image.Image | np.ndarray | str | None, request: gr.Request | None = None):
        """image -> (class confidences, assessment markdown, Grad-CAM image, warnings markdown).

        The UI passes Gradio's raw upload payload (``preprocess=False``), so the original
        file reaches ``open_image`` untouched and a broken file gets our message, not
        Gradio's generic error.
        """
        result, _, overlay = self._assess(image)
        self._log(request, "assess", image=image, flag=self._flag(result),
                  malignancy_probability=round(result.malignancy_probability, 4))
        confidences = {label_of(c): p for c, p in result.probabilities.items()}
        return confidences, self.assessment(result), overlay, self.warnings(result)

    @_said
    def record(self, image: dict | Image.Image | np.ndarray | str | None, request: gr.Request | None = None) -> str:
        """image -> a one-page PDF of its assessment for the patient file (``screening.record``)."""
        result, x, overlay = self._assess(image)
        self._log(request, "record", image=image, flag=self._flag(result),
                  malignancy_probability=round(result.malignancy_probability, 4))
        original = image.get("orig_name") if isinstance(image, dict) else None
        stem = re.sub(r"[^\w-]+", "_", Path(original).stem)[:40] + "-" if original else ""  # findable in Downloads
        out = self._new_folder() / f"skinscreen-record-{stem}{time.strftime('%Y%m%d-%H%M%S')}.pdf"
        name = original or "pasted or webcam image"
        write_record(out, self.screener, result, x, overlay, source_name=name,
                     identification=shown(self.identification(_payload_source(image))))
        return str(out)

    @_said
    def as_png(self, path: str | None, request: gr.Request | None = None) -> str:
        """A DICOM file (or any image) -> a PNG of what SkinScreen reads from it, for the image
        box: browsers neither show DICOM nor let it be dropped on an image box."""
        if not path:
            raise refused("Please choose a file first.")
        img = _opened(path)
        out = self._new_folder() / f"{Path(path).name[:200]}.png"  # "IM0001.png": the record names the source
        img.save(out, compress_level=1)  # untagged sRGB, as open_image leaves it: the same pixels
        if ident := self.identification(path):  # to its PDF record, when the box's PNG comes back
            self.identified[sha256_of(out)] = ident
            if len(self.identified) > KEPT_IDENTIFIED:  # the oldest goes: not every patient of the app's life
                del self.identified[next(iter(self.identified))]
        self._log(request, "shown as PNG", image=path, shown_as=str(out))
        return str(out)

    def identification(self, source) -> str:
        """What a DICOM file's header says of whose image it is (:func:`screening.dicom.identification`),
        for the file itself or for a PNG "Open a DICOM file" made of it; "" for anything else."""
        if not isinstance(source, str) or not Path(source).is_file():
            return ""
        if Path(source).suffix.lower() == ".png":
            return self.identified.get(sha256_of(source), "")
        return identified(Path(source))

    @_said
    def viewable(self, image: dict | None, request: gr.Request | None = None):
        """An upload the browser cannot show (TIFF, as dermatoscope cameras save, or HEIC: a
        broken picture in the box) replaced by its PNG; anything else left as it is."""
        path = image.get("path") if isinstance(image, dict) else None
        if not path:
            return gr.skip()
        try:
            with Image.open(path) as img:
                shown = img.format in BROWSERS_SHOW
        except (OSError, ValueError):  # not an image Pillow knows: the assessment says why
            return gr.skip()
        return gr.skip() if shown else self.as_png(path, request)

    def _flag(self, result: Result) -> str:
        return recommendation(result, self.screener.threshold)[0]

    def _log(self, request: gr.Request | None, action: str, image=None, shown_as: str | None = None,
             **details) -> None:
        """An audit-log entry, where there is a log: no result leaves without its entry. The
        image (and the PNG shown for it) are hashed only then, not on every assessment."""
        if self.audit is None:
            return
        hashes = {"image_sha256": _sha256(image)} if image is not None else {}
        if shown_as is not None:
            hashes["shown_as_sha256"] = sha256_of(shown_as)
        details = {**hashes, **details}
        client = getattr(request, "client", None)
        self.audit.write(action, user=getattr(request, "username", None), client=getattr(client, "host", None),
                         **details)

    def _assess(self, image) -> tuple[Result, np.ndarray, Image.Image]:
        """The scored result, the 224x224 square the model saw and its Grad-CAM overlay."""
        source = _payload_source(image)
        if source is None:
            raise refused("Please add a dermoscopy image first (upload, drag and drop, paste or webcam).")
        img = _opened(source)
        x = preprocess(img)
        (result,) = self.screener.score_arrays(x[None], [img.info["source_size"]], ["upload"])
        return result, x, self.cam.overlay(x, CLASS_CODES.index(result.predicted_class))

    def assessment(self, r: Result) -> str:
        flag, advice = recommendation(r, self.screener.threshold)
        advice = f"**Recommendation: {flag}.** {advice}"
        if self.screener.held_out is not None:
            advice += f"\n\nThis threshold {operating_point_text(self.screener.held_out)}."
        return (f"## Malignancy probability: {r.malignancy_probability * 100:.1f}%\n"
                f"({MALIGNANCY_MEANING}, so it can differ from the sum of those three diagnosis probabilities; "
                f"{calibration_text(self.screener)})"
                f"\n\n{advice}\n\n"
                f"Most likely: **{label_of(r.predicted_class)}**, {r.confidence * 100:.1f}%.\n\n> {NOTICE}")

    @staticmethod
    def warnings(r) -> str:
        if not r.warnings:
            return "Image checks: no problems found."
        return "**Image checks — read this result with care:**\n" + "\n".join(f"- {w}" for w in r.warnings)

    @_said
    def batch(self, files: list[str] | None, records: bool = False,
              progress: gr.Progress = gr.Progress(),  # noqa: B008  Gradio's idiom
              request: gr.Request | None = None):
        """Several images and/or zip files -> the batch Excel report (same code as batch.py), its
        summary line, the worklist in reading order and, with ``records``, a zip of the worklist
        with the PDF records of the REFER images (its links work once unzipped)."""
        if not files:
            raise refused("Please add images or a zip file first.")
        work = self._new_folder()
        staging = work / "images"
        staging.mkdir()
        try:  # the copies of the images go as soon as they are scored; the report stays to be downloaded
            chosen = []  # files added one by one: each gets a row (a zip's other files are passed over)
            inner = []  # zip files inside the zips: not opened, but said
            for f in map(Path, files):  # two uploads of one name (from two folders) both count
                if f.suffix.lower() == ".zip":
                    try:
                        inner += [f"{f.name}/{n}" for n in zips.extract_images(f, _unused(staging / f.stem))]
                    except zips.ZipRefused as err:
                        raise refused(str(err)) from None
                else:
                    chosen.append(_unused(staging / f.name))
                    chosen[-1].write_bytes(f.read_bytes())
            paths = scan_folder(staging, recursive=True, chosen=chosen).images
            passed_over = f"the images inside {listed(inner, 'zip file')} (a zip within a zip is not opened)" if inner else ""
            left_out = f"Not in this report: {passed_over}; unzip and add them." if passed_over else ""
            if not paths:
                raise refused(f"No image files found in the upload. {left_out}".strip())
            stamp = time.strftime("%Y%m%d-%H%M%S")
            out = work / f"skinscreen-report-{stamp}.xlsx"
            names = [Path(f).name for f in files]
            more = f" and {len(names) - 5} more" if len(names) > 5 else ""
            source = f"uploaded to the app: {', '.join(names[:5])}{more}"
            df, _, _, hashes = screen_files(
                self.screener, paths, staging, out, source=source, link_images=False, progress=False,
                records=work / "records" if records else None, left_out=passed_over,
                on_progress=lambda done, total, step: progress((done, total), desc=step.capitalize(), unit="images"))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        bundle = None
        if records:  # the workbook beside its records, as batch.py --records leaves them
            bundle = work / f"skinscreen-records-{stamp}.zip"
            with zipfile.ZipFile(bundle, "w") as z:
                z.write(out, out.name)
                for pdf in sorted((work / "records").rglob("*.pdf")):
                    z.write(pdf, pdf.relative_to(work).as_posix())
            shutil.rmtree(work / "records")  # the zip is the copy to download; no second one at rest
        self._log(request, "batch", images=[{"image_sha256": h, "flag": row.flag if row.status == "ok" else "not read"}
                                            for h, row in zip(hashes, df.itertuples())])
        text = f"**{tally(df)}.**\n\n" + (f"{left_out}\n\n" if left_out else "") + f"> {NOTICE}"
        return str(out), text, triage(df), str(bundle) if bundle else None

    def _new_folder(self) -> Path:
        """A fresh folder for one report or record (the workspace is made again if a sweep took
        it while the app sat idle for an hour)."""
        Path(self.workspace.name).mkdir(mode=0o700, parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=self.workspace.name))

    def model_card(self) -> str:
        """The bundle's model card without its image lines (the plots are shown as images)."""
        card = self.screener.path / "MODEL_CARD.md"
        if card.is_file():
            return "\n".join(line for line in card.read_text(encoding="utf-8").splitlines() if not line.startswith("!["))
        m = self.screener.meta
        return (f"# {m.get('name')}\n\nNo model card ships with this model.\n\n"
                f"Threshold {self.screener.threshold:.3f}, temperature {self.screener.temperature:.3f}.\n\n> {NOTICE}")


def _uploaded_only(handler: Callable) -> Callable:
    """``handler`` as the page and the API call it: a payload may name only a file that Gradio
    itself received. ``preprocess=False`` skips Gradio's own check, and a caller could name any
    image on this computer and get it back inside the Grad-CAM or the PDF record (or learn from
    the error whether a file exists)."""

    @functools.wraps(handler)  # its signature too: Gradio passes the request it asks for
    def checked(payload, *request):
        path = payload.get("path") if isinstance(payload, dict) else None
        if path and not is_in_or_equal(path, get_upload_folder()):
            raise refused("This image was not uploaded to SkinScreen; add it on the page or with handle_file().")
        return handler(payload, *request)

    return checked


def refused(message: str) -> gr.Error:
    """The page's one-line refusal of a user's mistake. Gradio would also print each error's
    traceback in the text window, where a double-clicked program's user reads it as a crash."""
    return gr.Error(message, print_exception=False)


def _sha256(image) -> str | None:
    """The audit log's name for an uploaded image: its file's SHA-256 (none for an array)."""
    source = _payload_source(image)
    return sha256_of(source) if isinstance(source, (str, bytes)) else None


def _opened(source: str | bytes | Image.Image | np.ndarray) -> Image.Image:
    """``open_image``, its refusal as the page's one-line message."""
    try:
        return open_image(source)
    except ImageError as err:
        raise refused(f"This file cannot be used: {str(err).split(': ', 1)[-1]}") from None


def _payload_source(payload) -> str | bytes | Image.Image | np.ndarray | None:
    """The image inside a Gradio payload (path or data URL), or the value itself."""
    if not isinstance(payload, dict):
        return payload
    if payload.get("path"):
        return payload["path"]
    url = payload.get("url") or ""
    if url.startswith("data:") and "," in url:
        return base64.b64decode(url.split(",", 1)[1])
    return None


def _unused(path: Path) -> Path:
    """``path``, or ``name (2).ext``, ``name (3).ext``... if it is taken."""
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem} ({n}){path.suffix}")
    return candidate


def quit_app(demo: gr.Blocks) -> str:
    """The page's Quit button: a program started by a double-click may have no window to press
    Ctrl+C in, and closing the browser tab leaves it running."""

    def close() -> None:
        demo.server.close()  # first, as after Ctrl+C: the server stops and deletes the run's files...
        demo.close()  # ...then the main thread's wait ends and the program exits

    stop_soon(close)
    return (f"**SkinScreen has stopped**: this run's images, reports and records on this computer are "
            f"deleted. You can close this tab.\n\n> {NOTICE}")


def build(app: ScreeningApp, can_quit: bool = False) -> gr.Blocks:
    """The page; ``can_quit`` adds a Quit button (only where the page is this computer's alone:
    anyone else reaching it could stop it for everyone)."""
    # analytics off: Gradio's default telemetry would report each start to its servers;
    # delete_cache: its own copies of uploads are swept as the scratch folder is, and go as the app stops
    with gr.Blocks(title="SkinScreen", delete_cache=SWEEP, analytics_enabled=False) as demo:
        gr.Markdown(f"# SkinScreen\nDermoscopy lesion screening: seven diagnoses, a calibrated malignancy "
                    f"probability and a referral recommendation.\n\n**{NOTICE}**")
        # wrapped onto a second line where the page is narrow (a phone): Gradio's default hid Help
        # and Model in a "..." menu below 430 px
        with gr.Tabs(overflow_behavior="wrap"):
            with gr.Tab("One image"):
                with gr.Row():
                    with gr.Column():
                        image = gr.Image(label="Dermoscopy image", type="filepath",
                                         sources=["upload", "clipboard", "webcam"], image_mode=None, height=360,
                                         buttons=NO_SHARE)
                        with gr.Row():
                            button = gr.Button("Assess", variant="primary", scale=2)
                            dicom_file = gr.UploadButton("Open a DICOM file", scale=1)  # any name: exports have none
                    with gr.Column():
                        assessment = gr.Markdown(label="Assessment")
                        classes = gr.Label(label="Diagnosis probabilities (rougher than the malignancy probability: "
                                                 "see Help)", num_top_classes=len(CLASS_CODES))
                with gr.Row():
                    heatmap = gr.Image(label=CAPTION, type="pil", height=300, buttons=NO_SHARE,
                                       alt_text=f"Grad-CAM heat map over the image: {CAPTION.split(': ', 1)[-1]}")
                    with gr.Column():
                        checks = gr.Markdown()
                        save = gr.Button("Save a PDF record of this assessment")
                        record = gr.File(label="Assessment record (PDF, for the patient file)", height=90)
                predict, save_record = _uploaded_only(app.predict), _uploaded_only(app.record)
                button.click(predict, inputs=image, outputs=[classes, assessment, heatmap, checks], api_name="predict",
                             preprocess=False)
                image.upload(_uploaded_only(app.viewable), inputs=image, outputs=image, api_visibility="private",
                             preprocess=False).success(predict, inputs=image,
                                                       outputs=[classes, assessment, heatmap, checks],
                                                       api_visibility="private", preprocess=False)
                save.click(save_record, inputs=image, outputs=record, api_name="record", preprocess=False)
                image.change(lambda: None, outputs=record, api_visibility="private")  # no record of another image
                dicom_file.upload(app.as_png, inputs=dicom_file, outputs=image, api_visibility="private").success(
                    predict, inputs=image, outputs=[classes, assessment, heatmap, checks], api_visibility="private",
                    preprocess=False)
            with gr.Tab("Several images"):
                # no file_types: a DICOM export names its files without a suffix, and Gradio refused them
                files = gr.File(label="Images (DICOM files too) or zip files", file_count="multiple")
                want_records = gr.Checkbox(label="Also a PDF record (with Grad-CAM) of each REFER image")
                run = gr.Button("Screen all and build the Excel report", variant="primary")
                summary = gr.Markdown()
                with gr.Row():
                    report = gr.File(label="Excel worklist")
                    records = gr.File(label="Worklist with the PDF records (zip; its links work once unzipped)")
                table = gr.Dataframe(label="Worklist: REFER first, by malignancy probability", interactive=False,
                                     wrap=True)
                run.click(app.batch, inputs=[files, want_records], outputs=[report, summary, table, records],
                          api_name="batch")
            with gr.Tab("Help"):
                gr.Markdown(GUIDE.read_text(encoding="utf-8") if GUIDE.is_file()
                            else f"No guide installed.\n\n> {NOTICE}")
            with gr.Tab("Model"):
                gr.Markdown(app.model_card())
                plots = [p for p in (app.screener.path / name for name in MODEL_PLOTS) if p.is_file()]
                if plots:
                    gr.Gallery([str(p) for p in plots], label="Validation plots", columns=len(plots), height=420,
                               buttons=NO_SHARE)
        if can_quit:
            with gr.Row(equal_height=False):
                stopped = gr.Markdown()
                quit_button = gr.Button("Quit SkinScreen (deletes this run's images and reports)", variant="stop",
                                        size="sm", scale=0, min_width=360)
            quit_button.click(lambda: quit_app(demo), outputs=stopped, api_name="quit")
    return demo


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="screening-app", description=described(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=NOTICE)
    add_serving_options(p)
    p.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    p.add_argument("--model", type=Path, help="model bundle folder (default: the packaged model)")
    add_malignancy_options(p)
    add_version_option(p)
    return p


def launch(args: argparse.Namespace, block: bool = True) -> gr.Blocks:
    audit = AuditLog(args.audit_log) if args.audit_log else None
    try:
        url, settings = serving(args, on_sign_in=audit.sign_in if audit else None)
        check_malignancy_options(args)
        root = private_root()
        os.environ.setdefault("GRADIO_TEMP_DIR", str(root / "uploads"))  # a folder of one's own is respected
        sweep_every(root, *SWEEP)
        if why := low_space():  # said now, not first on the page at the first assessment
            print(f"warning: {why}; the page refuses to assess until it has more", file=sys.stderr)
        app = ScreeningApp(args.model, args.threshold, audit, args.prevalence)
    except BaseException:
        if audit:
            audit.abandon()
        raise
    can_quit = alone(args)  # else anyone reaching the page could stop it for everyone
    demo = build(app, can_quit=can_quit)
    if audit:
        meta = app.screener.meta
        audit.write("start", model=f"{meta.get('name')} {meta.get('version')}", threshold=app.screener.threshold,
                    prevalence=app.screener.prevalence, host=args.host, port=args.port)
        atexit.register(audit.stop)
    print(f"SkinScreen: open {url} in a browser; press Ctrl+C here{' or Quit on the page' if can_quit else ''} "
          "to quit.", file=sys.stderr)
    # run_history off: Gradio 6 would keep every assessment (file names, results, links to the
    # images) in the browser's storage after the app stops, and offer to copy them to a Hugging
    # Face bucket; off, it also deletes what an earlier version left there
    demo.queue(default_concurrency_limit=2).launch(
        **settings, inbrowser=not args.no_browser, max_file_size=MAX_UPLOAD, prevent_thread_lock=True,
        quiet=True, show_error=False, run_history=False, theme=theme())
    # once the page is up; not a daemon, so that a stop during it waits for it (a few seconds at
    # most): Python's exit under its XLA compilation aborted ("terminate called...") or hung
    threading.Thread(target=app.warm_up, name="skinscreen-warm-up").start()
    if block:
        demo.block_thread()
    return demo


def open_instead(args: argparse.Namespace, running: AlreadyRunning) -> int:
    """A second start (the executable double-clicked again) opens the page already running; one
    asked to serve headless (``--no-browser``) was asked for a server, and is refused."""
    if args.no_browser:
        raise running
    print(f"SkinScreen is already running: opening {running.url} in the browser", file=sys.stderr)
    webbrowser.open(running.url)
    return 0


def main(argv: list[str] | None = None) -> int:
    def run(args: argparse.Namespace) -> int:
        if args.add_user is not None:
            if args.auth_file is None:
                raise UserError("--add-user needs --auth-file FILE, the file to write")
            print(add_user(args.auth_file, args.add_user), file=sys.stderr)
            return 0
        try:
            launch(args)
        except AlreadyRunning as running:
            return open_instead(args, running)
        except OSError as err:  # what the port check cannot foresee: a second start took the port meanwhile
            if found := running_at(page_address(args), wait_s=5):
                return open_instead(args, AlreadyRunning(found))
            raise UserError(f"cannot start the server on {args.host}:{args.port} ({err})") from None
        return 0

    return run_cli(parser(), run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
