"""The Gradio app, called as a user's script would: gradio_client against a live server."""

import errno
import getpass
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from screening.serving import free_port, running_at
from tests.conftest import ROOT, auth_file, lesion_like, pdf_text

gradio_client = pytest.importorskip("gradio_client")


@pytest.fixture(scope="module")
def server(tiny_bundle):
    from screening.app import launch, parser

    port = free_port()
    demo = launch(parser().parse_args(["--port", str(port), "--no-browser", "--model", str(tiny_bundle)]),
                  block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    return gradio_client.Client(server, verbose=False)


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "lesion.jpg"
    Image.fromarray(lesion_like()).save(path)
    return path


def test_predict_endpoint_returns_label_first(client, image_file):
    label, assessment, heatmap, checks = client.predict(gradio_client.handle_file(str(image_file)), api_name="/predict")
    assert len(label["confidences"]) == 7
    assert abs(sum(c["confidence"] for c in label["confidences"]) - 1) < 1e-4
    assert "Malignancy probability" in assessment and "not a medical device" in assessment
    assert ("REFER" in assessment) or ("routine" in assessment)
    assert heatmap and "Image checks" in checks


def test_several_users_at_once_get_what_each_would_get_alone(server, client, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    paths = []
    for seed in range(4):
        paths.append(tmp_path / f"lesion{seed}.jpg")
        Image.fromarray(lesion_like(seed=seed)).save(paths[-1])

    def assess(path, user=None):
        user = user or gradio_client.Client(server, verbose=False)  # each thread its own session
        label, assessment, _, _ = user.predict(gradio_client.handle_file(str(path)), api_name="/predict")
        record = user.predict(gradio_client.handle_file(str(path)), api_name="/record")
        return label, assessment, path.stem in Path(record).name and Path(record).read_bytes()[:4] == b"%PDF"

    alone = [assess(p, client) for p in paths]
    with ThreadPoolExecutor(len(paths)) as pool:
        together = list(pool.map(assess, paths))
    for (label_a, text_a, record_a), (label_t, text_t, record_t) in zip(alone, together, strict=True):
        assert label_t == label_a and text_t == text_a and record_a and record_t


def test_quit_is_offered_only_where_the_page_is_this_computers_alone(tiny_bundle):
    from screening.app import ScreeningApp, build

    app = ScreeningApp(tiny_bundle)
    endpoints = [{d.get("api_name") for d in build(app, can_quit=q).config["dependencies"]} for q in (True, False)]
    assert "quit" in endpoints[0] and "quit" not in endpoints[1]


def test_the_page_carries_the_guide_for_clinic_staff(server):
    import httpx

    config = httpx.get(server + "config", timeout=30).text
    assert "SkinScreen: a guide for clinic staff" in config and "not a medical device" in config


def test_bad_file_is_a_message_and_the_app_keeps_serving(client, tmp_path, image_file, capfd):
    bad = tmp_path / "fake.png"
    bad.write_bytes(b"definitely not a png")
    with pytest.raises(Exception) as err:
        client.predict(gradio_client.handle_file(str(bad)), api_name="/predict")
    assert "not a readable image" in str(err.value) and "Traceback" not in str(err.value)
    assert "Traceback" not in capfd.readouterr().err  # nor in the text window, where it reads as a crash
    label, *_ = client.predict(gradio_client.handle_file(str(image_file)), api_name="/predict")
    assert len(label["confidences"]) == 7


@pytest.mark.parametrize("api", ["predict", "record"])
def test_the_api_reads_only_uploaded_files_not_any_path_on_the_server(server, image_file, api):
    import httpx

    answers = []
    for path in (str(image_file), "/nonexistent/lesion.jpg"):  # a file on the server, and none
        event = httpx.post(f"{server}gradio_api/call/{api}", json={"data": [{"path": path}]}, timeout=60).json()
        answers.append(httpx.get(f"{server}gradio_api/call/{api}/{event['event_id']}", timeout=120).text)
    assert all("event: error" in a and "This image was not uploaded to SkinScreen" in a for a in answers), answers
    assert answers[0] == answers[1]  # nor does the message say whether the file exists
    assert httpx.get(f"{server}gradio_api/file={image_file}", timeout=30).status_code == 403  # nor serves it


def test_a_full_disk_or_an_audit_log_that_fails_is_one_line_on_the_page_and_in_the_text_window(
        client, tiny_bundle, tmp_path, image_file, monkeypatch, capfd):
    """What stops a handler on the computer running SkinScreen: Gradio said only "Error", and
    printed a traceback in the text window."""
    import gradio as gr

    import screening.app
    from screening.app import ScreeningApp
    from screening.audit import AuditLog
    from screening.errors import UserError
    from screening.files import write_atomically

    def disk_full(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(screening.app, "write_record", lambda path, *a, **k: write_atomically(Path(path), disk_full))
    with pytest.raises(Exception) as err:
        client.predict(gradio_client.handle_file(str(image_file)), api_name="/record")
    assert "No space left on device (the disk is full" in str(err.value) and "Ask whoever runs SkinScreen" in str(err.value)
    printed = capfd.readouterr().err
    assert "warning: cannot write" in printed and "Traceback" not in printed

    app = ScreeningApp(tiny_bundle, audit=AuditLog(tmp_path / "audit.jsonl"))

    def refused(*args, **kwargs):
        raise UserError("the audit log audit.jsonl cannot be written (No space left on device)")

    monkeypatch.setattr(app.audit, "write", refused)
    with pytest.raises(gr.Error) as page:
        app.predict(str(image_file))  # no result leaves without its entry
    assert page.value.message == ("the audit log audit.jsonl cannot be written (No space left on device). "
                                  "Ask whoever runs SkinScreen.")
    assert "warning: the audit log" in capfd.readouterr().err

    import screening.scratch  # an almost full disk: Gradio's own write of the Grad-CAM picture failed with "Error"
    monkeypatch.setattr(screening.scratch, "MIN_FREE", 2**62)
    with pytest.raises(gr.Error, match="SkinScreen cannot work here: the disk holding .* is almost full"):
        app.predict(str(image_file))


def test_an_almost_full_disk_is_said_at_start(tiny_bundle, monkeypatch, capsys):
    import screening.scratch
    from screening.app import launch, parser

    monkeypatch.setattr(screening.scratch, "MIN_FREE", 2**62)
    demo = launch(parser().parse_args(["--port", str(free_port()), "--no-browser", "--model", str(tiny_bundle)]),
                  block=False)
    demo.close()
    assert "is almost full" in capsys.readouterr().err


def test_an_upload_to_an_almost_full_disk_is_one_line_the_page_shows(server, monkeypatch):
    """It was Gradio's "HTTP 500" and a traceback (``serving.RoomForUploads``)."""
    import httpx

    import screening.scratch

    monkeypatch.setattr(screening.scratch, "MIN_FREE", 2**62)
    answer = httpx.post(f"{server}gradio_api/upload", files={"files": ("a.jpg", b"x" * 1000)})
    assert answer.status_code == 507
    assert re.fullmatch(r"SkinScreen cannot take this file: the disk holding .* is almost full \(\d+ MB free\): "
                        r"free some space on it\. Ask whoever runs SkinScreen\.", answer.text), answer.text


def test_the_model_is_warmed_up_once_the_page_is_up(tiny_bundle, monkeypatch):
    """A user's first assessment took 1.5 s, compiling what the next ones reuse (0.24 s): done
    while the page opens instead, once it answers."""
    import threading

    from screening.app import ScreeningApp, launch, parser

    warmed, real = threading.Event(), ScreeningApp.warm_up
    port = free_port()

    def warm_up(app):
        assert running_at(f"http://127.0.0.1:{port}/")  # after the page, not delaying it
        real(app)  # runs on a blank image without error
        warmed.set()

    monkeypatch.setattr(ScreeningApp, "warm_up", warm_up)
    demo = launch(parser().parse_args(["--port", str(port), "--no-browser", "--model", str(tiny_bundle)]),
                  block=False)
    try:
        assert warmed.wait(60)
    finally:
        demo.close()


def test_record_endpoint_returns_a_pdf_of_the_same_assessment(client, image_file, tmp_path):
    _, assessment, _, _ = client.predict(gradio_client.handle_file(str(image_file)), api_name="/predict")
    record = client.predict(gradio_client.handle_file(str(image_file)), api_name="/record")
    assert Path(record).name.startswith("skinscreen-record-lesion-") and record.endswith(".pdf")
    assert Path(record).read_bytes().startswith(b"%PDF")
    text = " ".join(pdf_text(record).split())
    probability = assessment.split("Malignancy probability: ")[1].split("%")[0]  # as the page showed it
    assert f"Malignancy probability: {probability}%" in text and "File: lesion.jpg" in text
    bad = tmp_path / "fake.png"
    bad.write_bytes(b"definitely not a png")
    with pytest.raises(Exception) as err:
        client.predict(gradio_client.handle_file(str(bad)), api_name="/record")
    assert "not a readable image" in str(err.value)


def test_batch_tab_returns_an_excel_report(client, tmp_path, image_file):
    import openpyxl

    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(image_file, "a/one.jpg")
        z.writestr("broken.jpg", b"oops")
        z.writestr("../escape.jpg", b"oops")
    report, summary, table, bundle = client.predict([gradio_client.handle_file(str(image_file)),
                                                     gradio_client.handle_file(str(archive))], api_name="/batch")
    assert bundle is None  # PDF records only when asked for
    wb = openpyxl.load_workbook(report)
    rows = list(wb["Results"].iter_rows(min_row=2, values_only=True))
    assert wb["Results"]["A2"].hyperlink is None  # the images are deleted once scored: nothing to link to
    assert len(rows) == 4 and "4 images" in summary  # "../escape.jpg" unpacked inside, as unzip tools do
    scanned = {a.value: b.value for a, b in wb["Summary"].iter_rows(max_col=2)}["folder"]
    assert scanned == "uploaded to the app: lesion.jpg, more.zip"  # not the temporary folder they were scored in
    shown = [dict(zip(table["headers"], row)) for row in table["data"]]  # the worklist on the page
    assert [r["file"] for r in shown][-2:] == ["more/broken.jpg", "more/escape.jpg"]
    assert {r["flag"] for r in shown[-2:]} == {"not read"}
    assert {r["flag"] for r in shown[:2]} <= {"REFER", "routine"} and shown[0]["malignancy probability"]


def test_a_zip_of_full_size_photographs_is_not_refused_for_its_size(client, tmp_path, image_file):
    import os

    archive = tmp_path / "clinic.zip"  # 30 MB: a few dermatoscope originals; Gradio's cap was 25 MB
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as z:
        z.write(image_file, "one.jpg")
        z.writestr("camera-log.bin", os.urandom(30_000_000))
    _, summary, *_ = client.predict([gradio_client.handle_file(str(archive))], api_name="/batch")
    assert "1 image" in summary


def test_batch_tab_zips_the_worklist_with_the_records_of_the_referred_images(tiny_bundle, tmp_path, image_file):
    from screening.app import ScreeningApp

    app = ScreeningApp(tiny_bundle, threshold=0.0)  # every readable image refers
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"oops")
    report, _, _, bundle = app.batch([str(image_file), str(broken)], records=True)
    with zipfile.ZipFile(bundle) as z:
        names = sorted(z.namelist())
        assert names == sorted([Path(report).name, "records/lesion.jpg.pdf"])
        assert z.read("records/lesion.jpg.pdf").startswith(b"%PDF")
    kept = sorted(p.name for p in Path(app.workspace.name).rglob("*") if p.is_file())
    assert kept == sorted([Path(report).name, Path(bundle).name])  # no loose copies of the records


def test_batch_scores_two_uploads_of_one_name_and_refuses_an_oversized_zip(tiny_bundle, tmp_path, image_file):
    import gradio as gr

    from screening.app import ScreeningApp
    from screening.zips import MAX_MEMBERS

    other = tmp_path / "other" / image_file.name  # the same name from another folder
    other.parent.mkdir()
    shutil.copy(image_file, other)
    app = ScreeningApp(tiny_bundle)
    _, summary, table, _ = app.batch([str(image_file), str(other)])
    assert "2 images" in summary and sorted(table["file"]) == ["lesion (2).jpg", "lesion.jpg"]
    many = tmp_path / "many.zip"
    with zipfile.ZipFile(many, "w") as z:
        for i in range(MAX_MEMBERS + 1):
            z.writestr(f"{i}.jpg", b"")
    with pytest.raises(gr.Error, match="many.zip: too large"):
        app.batch([str(many)])


def test_a_zip_within_an_uploaded_zip_is_named_as_not_in_the_report(tiny_bundle, tmp_path, image_file):
    """Its images were passed over without a word, in a worklist that looked complete."""
    import gradio as gr
    import openpyxl

    from screening.app import ScreeningApp

    inner, outer, only = tmp_path / "inner.zip", tmp_path / "visit.zip", tmp_path / "only.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.write(image_file, "lesion.jpg")
    with zipfile.ZipFile(outer, "w") as z:
        z.write(image_file, "lesion.jpg")
        z.write(inner, "day2/inner.zip")
    with zipfile.ZipFile(only, "w") as z:
        z.write(inner, "inner.zip")
    app = ScreeningApp(tiny_bundle)
    report, summary, table, _ = app.batch([str(outer)])
    assert list(table["file"]) == ["visit/lesion.jpg"]
    assert ("Not in this report: the images inside 1 zip file (visit.zip/day2/inner.zip) (a zip within a zip is not "
            "opened); unzip and add them.") in summary
    items = dict(openpyxl.load_workbook(report)["Summary"].values)  # said to whoever opens the workbook later
    assert items["not in this report"] == ("the images inside 1 zip file (visit.zip/day2/inner.zip) (a zip within a "
                                           "zip is not opened)")
    with pytest.raises(gr.Error, match=r"No image files found in the upload\. Not in this report: .*\(only.zip/inner.zip\)"):
        app.batch([str(only)])


@pytest.mark.skipif(shutil.which("zip") is None, reason="zip not installed (apt-get install zip)")
def test_a_password_protected_zip_is_a_message(tiny_bundle, tmp_path, image_file):
    import gradio as gr

    from screening.app import ScreeningApp

    locked = tmp_path / "locked.zip"
    subprocess.run(["zip", "-q", "-j", "-P", "secret", str(locked), str(image_file)], check=True)
    with pytest.raises(gr.Error, match="locked.zip: password-protected; unzip it first"):
        ScreeningApp(tiny_bundle).batch([str(locked)])


def test_names_in_a_zip_made_without_the_utf8_flag_are_read_as_written(tiny_bundle, tmp_path, image_file):
    from screening.app import ScreeningApp

    names = ["患者の病変.jpg", "Ärztin/é.jpg"]
    archive = tmp_path / "linux.zip"  # as Info-ZIP and macOS write them: UTF-8 bytes, flag not set
    with zipfile.ZipFile(archive, "w") as z:
        for i, name in enumerate(names):
            z.write(image_file, f"{i}" * len(name.encode()))  # ASCII of the same length: no flag
    data = archive.read_bytes()
    for i, name in enumerate(names):
        data = data.replace(f"{i}".encode() * len(name.encode()), name.encode())
    archive.write_bytes(data)
    assert all(not m.flag_bits & 0x800 for m in zipfile.ZipFile(archive).infolist())
    _, summary, table, _ = ScreeningApp(tiny_bundle).batch([str(archive)])
    assert sorted(table["file"]) == sorted(f"linux/{n}" for n in names) and "2 images" in summary


def test_batch_keeps_no_copies_of_the_images(tiny_bundle, tmp_path, image_file):
    from screening.app import ScreeningApp, build
    from screening.scratch import SWEEP

    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(image_file, "a/one.jpg")
    app = ScreeningApp(tiny_bundle)
    report, summary, *_ = app.batch([str(image_file), str(archive)])
    assert "2 images" in summary
    assert [p for p in Path(app.workspace.name).rglob("*") if p.is_file()] == [Path(report)]  # the report only
    demo = build(app)
    assert demo.delete_cache == SWEEP  # Gradio's copies of uploads are swept too
    assert demo.analytics_enabled is False  # no telemetry to Gradio's servers


def start_app(model, cwd: Path, env: dict, **popen) -> tuple[subprocess.Popen, "gradio_client.Client"]:
    """app.py in its own process, and a client once it serves."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--no-browser", "--port", str(port),
                             "--model", str(model)], env=env, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)
    for _ in range(240):
        try:
            return proc, gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        except Exception:  # noqa: BLE001  not serving yet
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.5)
    raise AssertionError("app.py did not serve within 2 minutes")


POSIX = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")


@POSIX
@pytest.mark.parametrize("stop", ["SIGTERM", "SIGHUP", "quit"])
def test_a_stop_signal_or_quit_ends_the_app_like_ctrl_c_and_leaves_no_patient_files(tiny_bundle, tmp_path, image_file,
                                                                                    stop):
    """SIGTERM (kill, a service manager), SIGHUP (the terminal window closed) and the page's
    Quit button clear what the run made; what an earlier run killed outright left, an hour old,
    goes at start."""
    scratch = tmp_path / "scratch"  # the system's temporary folder for the app, to look into afterwards
    root = scratch / f"skinscreen-{getpass.getuser()}"
    leftover, recent = root / "uploads" / "a1b2" / "old.jpg", root / "uploads" / "c3d4" / "recent.jpg"
    for path in (leftover, recent):
        path.parent.mkdir(parents=True)
        path.write_bytes(b"an earlier run's upload")
    root.chmod(0o700)
    two_hours_ago = time.time() - 7200
    for path in (leftover, leftover.parent):
        os.utime(path, (two_hours_ago, two_hours_ago))
    env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"} | {"TMPDIR": str(scratch)}
    # The signal as from a terminal, even where pytest runs under nohup; Quit with SIGINT ignored,
    # as in a program started in the background, which a simulated Ctrl+C would not stop.
    handling = (signal.SIGINT, signal.SIG_IGN) if stop == "quit" else (getattr(signal, stop), signal.SIG_DFL)
    proc, client = start_app(tiny_bundle, tmp_path, env, preexec_fn=lambda: signal.signal(*handling))
    try:
        assert not leftover.parent.exists() and recent.exists()  # swept at start: the old, not the recent
        client.predict(gradio_client.handle_file(str(image_file)), api_name="/predict")
        client.predict([gradio_client.handle_file(str(image_file))], api_name="/batch")
        client.predict(gradio_client.handle_file(str(image_file)), api_name="/record")

        def kept() -> list[str]:
            return [p.name for p in scratch.rglob("*") if p.suffix in (".jpg", ".png", ".xlsx", ".pdf")]

        assert {Path(name).suffix for name in kept()} >= {".jpg", ".xlsx", ".pdf"}  # while it runs
        assert all(p.is_relative_to(root) for p in scratch.rglob("*") if p.is_file())  # in the private folder
        assert root.stat().st_mode & 0o077 == 0
        if stop == "quit":
            assert "SkinScreen has stopped" in client.predict(api_name="/quit")
        else:
            proc.send_signal(getattr(signal, stop))
        assert proc.wait(60) == 0 and "Traceback" not in proc.stderr.read()
        assert kept() == ["recent.jpg"]  # not this run's, and not an hour old yet
    finally:
        proc.kill()


@POSIX
def test_ctrl_c_while_the_model_warms_up_ends_the_app(tmp_path):
    """Python's exit under the warm-up's XLA compilation aborted ("terminate called after
    throwing an instance of ''", status 134) or hung: a first start, with nothing compiled yet,
    stopped at once. The shipped model and no compilation cache: the longest warm-up there is."""
    from screening.inference import DEFAULT_MODEL

    env = {**os.environ, "TMPDIR": str(tmp_path), "SKINSCREEN_CACHE_DIR": ""}
    proc, _ = start_app(DEFAULT_MODEL, tmp_path, env, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        time.sleep(1)  # the page answers, the warm-up compiles
        proc.send_signal(signal.SIGINT)
        assert proc.wait(90) == 0
        err = proc.stderr.read()
        assert "terminate called" not in err and "Traceback" not in err, err
    finally:
        proc.kill()


@POSIX
def test_under_nohup_a_hangup_is_still_ignored(tiny_bundle, tmp_path):
    """``nohup python app.py &`` must outlive its terminal: an ignored SIGHUP stays ignored."""
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc, client = start_app(tiny_bundle, tmp_path, env,
                             preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    try:
        proc.send_signal(signal.SIGHUP)
        time.sleep(2)
        assert proc.poll() is None and client.view_api(print_info=False, return_format="dict")
    finally:
        proc.kill()


def test_with_an_auth_file_only_a_signed_in_client_gets_in(tiny_bundle, tmp_path, image_file):
    from screening.app import launch, parser
    from screening.signin import hash_password

    port = free_port()
    logins = auth_file(tmp_path, f"nurse:s3cret\ndoctor:{hash_password('long-passphrase')}\n")
    demo = launch(parser().parse_args(["--port", str(port), "--no-browser", "--model", str(tiny_bundle),
                                       "--auth-file", str(logins)]), block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(gradio_client.exceptions.AuthenticationError, match="credentials were not provided"):
            gradio_client.Client(url, verbose=False)
        with pytest.raises(ValueError, match="Could not login"):
            gradio_client.Client(url, auth=("nurse", "wrong"), verbose=False)
        client = gradio_client.Client(url, auth=("nurse", "s3cret"), verbose=False)
        label, *_ = client.predict(gradio_client.handle_file(str(image_file)), api_name="/predict")
        assert len(label["confidences"]) == 7
        gradio_client.Client(url, auth=("doctor", "long-passphrase"), verbose=False)  # a hashed password
    finally:
        demo.close()


def test_the_audit_log_says_who_assessed_which_image_and_the_answer_but_not_its_name(tiny_bundle, tmp_path,
                                                                                       image_file):
    import json

    from screening.app import ScreeningApp, launch, parser
    from screening.audit import AuditLog
    from screening.files import sha256_of
    from tests.dicom_files import write_dicom

    port, audit = free_port(), tmp_path / "audit.jsonl"
    secret = tmp_path / "Jane Doe 1961-03-02.jpg"  # a file name that names a patient
    shutil.copy(image_file, secret)
    demo = launch(parser().parse_args(["--port", str(port), "--no-browser", "--model", str(tiny_bundle),
                                       "--auth-file", str(auth_file(tmp_path, "nurse:s3cret\n")),
                                       "--audit-log", str(audit), "--threshold", "0"]), block=False)
    try:
        url = f"http://127.0.0.1:{port}/"
        with pytest.raises(ValueError, match="Could not login"):
            gradio_client.Client(url, auth=("nurse", "wrong"), verbose=False)
        client = gradio_client.Client(url, auth=("nurse", "s3cret"), verbose=False)
        _, assessment, *_ = client.predict(gradio_client.handle_file(str(secret)), api_name="/predict")
        client.predict(gradio_client.handle_file(str(secret)), api_name="/record")
        client.predict([gradio_client.handle_file(str(secret)), gradio_client.handle_file(str(image_file))],
                       api_name="/batch")
    finally:
        demo.close()
    text = audit.read_text()
    assert "Jane" not in text and "lesion.jpg" not in text  # no file names
    entries = [json.loads(line) for line in text.splitlines()]
    assert [e["action"] for e in entries] == ["start", "sign-in refused", "sign-in", "assess", "record", "batch"]
    assert entries[0]["model"] and entries[0]["threshold"] == 0
    assess, record, batch = entries[3:]
    assert assess["user"] == "nurse" and assess["client"] == "127.0.0.1" and entries[1]["user"] == "nurse"
    assert entries[1]["client"] == entries[2]["client"] == "127.0.0.1"  # where each sign-in came from
    assert assess["image_sha256"] == record["image_sha256"] == sha256_of(secret)  # found again by hashing the file
    assert assess["flag"] == "REFER" and f"{assess['malignancy_probability'] * 100:.1f}%" in assessment
    assert [i["image_sha256"] for i in batch["images"]] == [sha256_of(secret), sha256_of(image_file)]
    dicom = write_dicom(tmp_path / "IM0001", lesion_like())  # the DICOM button: which file became which picture
    app = ScreeningApp(tiny_bundle, audit=AuditLog(audit))  # kept: its folder goes with it
    shown = app.as_png(str(dicom))
    opened = json.loads(audit.read_text().splitlines()[-1])
    assert opened["action"] == "shown as PNG" and opened["image_sha256"] == sha256_of(dicom)
    assert opened["shown_as_sha256"] == sha256_of(shown)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
def test_https_with_a_certificate_and_key(tiny_bundle, tmp_path, image_file, capsys):
    from screening.app import launch, main, parser

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost"], check=True, capture_output=True)
    port = free_port()
    demo = launch(parser().parse_args(["--port", str(port), "--no-browser", "--model", str(tiny_bundle),
                                       "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]), block=False)
    try:
        client = gradio_client.Client(f"https://127.0.0.1:{port}/", ssl_verify=False, verbose=False)
        label, *_ = client.predict(gradio_client.handle_file(str(image_file)), api_name="/predict")
        assert len(label["confidences"]) == 7
        # started again without the HTTPS options (the executable double-clicked): the page is found
        capsys.readouterr()
        assert main(["--port", str(port), "--no-browser"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"SkinScreen is already running at https://127.0.0.1:{port}: open" in err
    finally:
        demo.close()


def test_add_user_sets_a_hashed_password_from_the_command_line(tmp_path, capsys):
    from screening.app import main
    from screening.signin import read_auth_file, verify

    path = tmp_path / "logins.txt"
    done = subprocess.run([sys.executable, str(ROOT / "app.py"), "--auth-file", str(path), "--add-user", "nurse"],
                          input="long-passphrase\nlong-passphrase\n", capture_output=True, text=True, timeout=300,
                          start_new_session=True, check=False)  # no terminal: getpass reads the piped answers
    assert done.returncode == 0 and f"added nurse in {path}" in done.stderr
    ((user, stored),) = read_auth_file(path)
    assert user == "nurse" and verify("long-passphrase", stored)
    assert main(["--add-user", "doctor"]) == 2
    assert "--add-user needs --auth-file FILE" in capsys.readouterr().err


def test_https_needs_both_files(tmp_path, capsys):
    from screening.app import main

    assert main(["--ssl-certfile", str(tmp_path / "cert.pem"), "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs both --ssl-certfile and --ssl-keyfile" in err


def test_refuses_bad_port(capsys):
    from screening.app import main

    assert main(["--port", "0", "--no-browser"]) == 2
    assert "--port must be between" in capsys.readouterr().err


def test_a_port_in_use_is_one_line_that_says_what_to_do(capsys):
    from screening.app import main

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert main(["--port", str(port), "--no-browser"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"port {port} is in use, and not by a SkinScreen page: start with another --port" in err


def test_a_second_start_opens_the_page_already_running(server, monkeypatch, capsys):
    """The executable double-clicked again, before or after the first has its port."""
    from screening import app

    opened = []
    monkeypatch.setattr(app.webbrowser, "open", opened.append)
    port = server.rstrip("/").rsplit(":", 1)[1]
    assert app.main(["--port", port]) == 0
    assert "SkinScreen is already running: opening" in capsys.readouterr().err
    assert app.main(["--port", port, "--no-browser"]) == 2  # asked to serve headless: refused
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"SkinScreen is already running at http://127.0.0.1:{port}: open that" in err

    def lost_the_race(args, block=True):  # both passed the port check; the first took the port
        raise OSError(f"Cannot find empty port in range: {port}-{port}")

    monkeypatch.setattr(app, "launch", lost_the_race)
    assert app.main(["--port", port]) == 0
    assert opened == [f"http://127.0.0.1:{port}"] * 2


def test_without_port_another_programs_port_moves_the_page_on_and_a_second_start_finds_it(server, monkeypatch,
                                                                                          capsys):
    """Another Gradio app (they default to 7860 too) must not stop a double-clicked SkinScreen,
    and a second double-click must find the page where the first one went."""
    import screening.serving
    from screening import app
    from screening.errors import UserError
    from screening.serving import AlreadyRunning, serving

    with socket.create_server(("127.0.0.1", 0)) as taken:  # another program's port
        first = taken.getsockname()[1]
        monkeypatch.setattr(screening.serving, "DEFAULT_PORT", first)
        args = app.parser().parse_args([])
        url, settings = serving(args)
        assert args.port != first and settings["server_port"] == args.port and url == f"http://127.0.0.1:{args.port}"
        assert f"SkinScreen: port {first} is taken by another program; using {args.port}" in capsys.readouterr().err
        with pytest.raises(UserError, match=f"port {first} is in use, and not by a SkinScreen page"):
            serving(app.parser().parse_args(["--port", str(first)]))  # the one asked for, or none
    page = int(server.rstrip("/").rsplit(":", 1)[1])
    try:
        other = socket.create_server(("127.0.0.1", page - 1))  # the port before the page's: another program's
    except OSError:
        other = None  # taken already
    try:
        monkeypatch.setattr(screening.serving, "DEFAULT_PORT", page - 1)
        with pytest.raises(AlreadyRunning, match=f"running at http://127.0.0.1:{page}"):
            serving(app.parser().parse_args([]))
    finally:
        if other:
            other.close()


def test_a_refused_start_leaves_no_audit_log_behind_and_an_existing_one_as_it_was(tmp_path, capsys):
    from screening.app import main

    new, kept = tmp_path / "new.jsonl", tmp_path / "kept.jsonl"
    kept.write_text('{"action": "stop"}\n')
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        for log in (new, kept):
            assert main(["--port", str(port), "--no-browser", "--audit-log", str(log)]) == 2
    assert capsys.readouterr().err.count("is in use") == 2
    assert not new.exists() and kept.read_text() == '{"action": "stop"}\n'


@pytest.mark.parametrize(("option", "message"), [("--threshold", "--threshold must be between 0 and 1, got 1.5"),
                                                 ("--prevalence", "--prevalence must be a share between 0 and 1")])
def test_refuses_a_threshold_or_prevalence_that_is_not_a_probability(capsys, option, message):
    from screening.app import main

    assert main([option, "1.5", "--no-browser", "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_a_prevalence_of_ones_own_applies(tiny_bundle, tmp_path):
    from screening.app import ScreeningApp
    from tests.conftest import with_validation_mix

    bundle = with_validation_mix(tiny_bundle, tmp_path / "b")
    base, rare = (ScreeningApp(bundle, prevalence=p).predict(lesion_like())[1] for p in (None, 0.05))
    assert "for a malignant share of 20.0%, as among its validation images" in base
    assert "converted to a malignant share of 5.0% (--prevalence; validation images: 20.0%)" in rare
    assert base.split("Recommendation: ")[1][:5] == rare.split("Recommendation: ")[1][:5]  # the same flag
    assert "referred 88.0% of malignant and 25.0% of benign lesions among 1,234 HAM10000 images" in " ".join(rare.split())


def test_a_threshold_of_ones_own_applies(tiny_bundle):
    from screening.app import ScreeningApp

    _, assessment, *_ = ScreeningApp(tiny_bundle, threshold=0.0).predict(lesion_like())  # everything is referred
    assert "Recommendation: REFER" in assessment and "threshold of 0.0%" in assessment


def test_phone_heic_photo_in_both_tabs(client, tmp_path):
    pytest.importorskip("pi_heif", reason="HEIC needs the optional pi-heif package (the test extra installs it)")
    import openpyxl

    from tests.conftest import HEIC

    label, assessment, *_ = client.predict(gradio_client.handle_file(str(HEIC)), api_name="/predict")
    assert len(label["confidences"]) == 7 and "Malignancy probability" in assessment
    report, *_ = client.predict([gradio_client.handle_file(str(HEIC))], api_name="/batch")
    (row,) = openpyxl.load_workbook(report)["Results"].iter_rows(min_row=2, max_col=2, values_only=True)
    assert row == (HEIC.name, "ok")


def test_an_upload_the_browser_cannot_show_is_replaced_by_its_png(tiny_bundle, tmp_path, image_file):
    """TIFF (as dermatoscope cameras save) and HEIC showed as a broken picture in Chromium's
    image box; the box now gets a PNG of the same pixels. What browsers show is left alone."""
    from screening.app import ScreeningApp
    from screening.preprocessing import preprocess

    app = ScreeningApp(tiny_bundle)
    tiff = tmp_path / "camera.tif"
    Image.fromarray(lesion_like()).save(tiff)
    shown = app.viewable({"path": str(tiff)})
    assert Path(shown).name == "camera.tif.png" and (preprocess(shown) == preprocess(tiff)).all()
    for kept in (image_file, tmp_path / "not-an-image.png"):  # a JPEG; a broken file (its message comes next)
        kept.touch()
        assert not isinstance(app.viewable({"path": str(kept)}), str)


def test_a_dicom_export_in_both_tabs(tiny_bundle, client, tmp_path, image_file, monkeypatch):
    """The One image tab's "Open a DICOM file" shows what it reads as a PNG (no browser shows
    DICOM) and assesses it; a zip of a PACS export, suffix-less files and all, is a worklist."""
    import openpyxl

    from screening.app import ScreeningApp
    from screening.preprocessing import preprocess
    from tests.dicom_files import write_dicom

    export = write_dicom(tmp_path / "IM0001", lesion_like(), syntax="jpeg", PatientID="12345", StudyDate="20261120")
    app = ScreeningApp(tiny_bundle)
    shown = app.as_png(str(export))
    assert Path(shown).name == "IM0001.png" and (preprocess(shown) == preprocess(export)).all()
    for image in (shown, str(export)):  # its record says whose image it is, from the PNG shown or the file itself
        assert "DICOM header: patient 12345; 2026-11-20" in pdf_text(app.record(image))
    assert "DICOM header" not in pdf_text(app.record(str(image_file)))
    crafted = tmp_path / "crafted.png"  # what the app once wrote into its PNGs, here naming another patient
    text = PngInfo()
    text.add_itxt("SkinScreen DICOM identification", "patient 99999")
    Image.open(shown).save(crafted, pnginfo=text)
    assert "DICOM header" not in pdf_text(app.record(str(crafted)))  # only the app's own PNGs are known
    monkeypatch.setattr("screening.app.KEPT_IDENTIFIED", 1)  # the newest PNGs' patients alone are kept
    app.as_png(str(write_dicom(tmp_path / "IM0009", lesion_like(seed=9), PatientID="67890")))
    assert list(app.identified.values()) == ["patient 67890"] and app.identification(shown) == ""
    grey = write_dicom(tmp_path / "IM0002", lesion_like()[..., 0], modality="CR")
    with pytest.raises(Exception, match="This file cannot be used: a greyscale DICOM image"):
        app.as_png(str(grey))
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(export, "DICOM/PAT1/IM0001")
        z.write(grey, "DICOM/PAT1/IM0002")
        z.writestr("DICOMDIR", bytes(128) + b"DICM")
    report, *_ = client.predict([gradio_client.handle_file(str(archive))], api_name="/batch")
    rows = list(openpyxl.load_workbook(report)["Results"].iter_rows(min_row=2, max_col=2, values_only=True))
    assert rows == [("export/DICOM/PAT1/IM0001", "ok"), ("export/DICOM/PAT1/IM0002", "error")]
    notes = tmp_path / "notes.txt"  # files added one by one, suffix or none: each gets a row
    notes.write_text("not an image")
    report, *_ = client.predict([gradio_client.handle_file(str(export)), gradio_client.handle_file(str(notes))],
                                api_name="/batch")
    rows = list(openpyxl.load_workbook(report)["Results"].iter_rows(min_row=2, max_col=2, values_only=True))
    assert rows == [("IM0001", "ok"), ("notes.txt", "error")]


def test_version_option(capsys):
    from screening.app import main

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("SkinScreen ")


NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@pytest.mark.skipif(not Path(NGINX).is_file(), reason="nginx not installed (apt-get install nginx-light)")
def test_behind_nginx_at_a_sub_path_with_the_readme_block(tiny_bundle, tmp_path, image_file):
    """The README's nginx block, in front of ``--root-path /skinscreen``: the page, an
    assessment and its PDF record through the proxy; no Quit button for everyone behind it; the
    audit log names the address each sign-in came from, not the proxy's."""
    import json

    import httpx

    from screening.app import launch, parser

    block = (ROOT / "README.md").read_text().split("```nginx\n", 1)[1].split("```", 1)[0]
    app_port, proxy_port = free_port(), free_port()
    temp = "".join(f"{kind}_temp_path {tmp_path / kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi",
                                                                          "scgi"))
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path / 'nginx.pid'};\nerror_log {tmp_path / 'error.log'};\nevents {{}}\n"
        f"http {{\naccess_log off;\n{temp}server {{\nlisten 127.0.0.1:{proxy_port};\n"
        f"{block.replace('127.0.0.1:7860', f'127.0.0.1:{app_port}')}}}\n}}\n")
    proxy = subprocess.Popen([NGINX, "-c", str(tmp_path / "nginx.conf"), "-g", "daemon off;"], stderr=subprocess.PIPE)
    audit = tmp_path / "audit.jsonl"
    demo = launch(parser().parse_args(["--port", str(app_port), "--no-browser", "--model", str(tiny_bundle),
                                       "--root-path", "/skinscreen/", "--audit-log", str(audit),
                                       "--auth-file", str(auth_file(tmp_path, "nurse:s3cret\n"))]), block=False)
    try:
        url = f"http://127.0.0.1:{proxy_port}/skinscreen/"
        for _ in range(50):  # nginx takes a moment to listen
            if httpx.get(url, timeout=10).status_code == 200:
                break
            time.sleep(0.1)
        desk = httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2"))  # another computer, as it were
        assert desk.post(url + "login", data={"username": "nurse", "password": "s3cret"}, timeout=30).status_code == 200
        signed_in = json.loads(audit.read_text().splitlines()[-1])
        assert signed_in["action"] == "sign-in" and signed_in["client"] == "127.0.0.2"  # not the proxy's 127.0.0.1
        config = desk.get(url + "config", timeout=30).json()
        assert config["root"].endswith("/skinscreen") and "quit" not in {d.get("api_name") for d in
                                                                          config["dependencies"]}
        client = gradio_client.Client(url, auth=("nurse", "s3cret"), verbose=False)
        _, assessment, _, _ = client.predict(gradio_client.handle_file(str(image_file)), api_name="/predict")
        assert "Malignancy probability" in assessment
        record = client.predict(gradio_client.handle_file(str(image_file)), api_name="/record")
        assert Path(record).read_bytes().startswith(b"%PDF")  # downloaded through the proxy
    finally:
        demo.close()
        proxy.terminate()
        proxy.wait(30)
