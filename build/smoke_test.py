"""Smoke test of the desktop bundle: batch mode writes a workbook, evaluate scores labelled
images and subgroups splits its figures, the UI answers headless and saves the PDF record of an assessment, a sign-in password
is stored hashed.

    python build/smoke_test.py [--build]     (exit 0 when both work)

Prints the cold-start time of the UI (process start until the page answers).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = ROOT / "dist" / "SkinScreen" / ("SkinScreen.exe" if sys.platform == "win32" else "SkinScreen")
HEIC = ROOT / "tests" / "fixtures" / "lesion_like_seed0.heic"


def _images(folder: Path) -> int:
    import numpy as np
    from PIL import Image, features

    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(60, 220, (300, 400, 3), dtype=np.uint8)).save(folder / f"img{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"not an image")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.dicom_files import write_dicom

    # a PACS export's JPEG-compressed DICOM, named without a suffix: pydicom and its decoder must travel
    write_dicom(folder / "IM0001", rng.integers(60, 220, (300, 400, 3), dtype=np.uint8), syntax="jpeg")
    write_dicom(folder / "IM0002", rng.integers(60, 220, (300, 400, 3), dtype=np.uint8), syntax="jpeg-ls")  # and pyjpegls
    if features.check_module("avif"):  # Pillow's own AVIF reader must travel too
        Image.fromarray(rng.integers(60, 220, (300, 400, 3), dtype=np.uint8)).save(folder / "web.avif")
    if importlib.util.find_spec("pi_heif"):  # built with the HEIC reader (the build extra): it must travel
        shutil.copy(HEIC, folder / "phone.heic")
    return len(list(folder.iterdir()))


def check_version(exe: Path = EXE) -> str:
    """``SkinScreen --version`` names the software and the model it carries (and the user
    guide travels beside it)."""
    assert (exe.parent / "USER_GUIDE.md").is_file(), "USER_GUIDE.md is missing beside the executable"
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and proc.stdout.startswith("SkinScreen ") and "packaged model: skinscreen" in \
        proc.stdout, proc.stdout + proc.stderr[-2000:]
    return proc.stdout.strip()


def check_saved_options(exe: Path = EXE) -> None:
    """Started without arguments, as a double-click starts it, the executable takes the options
    saved beside it (here ``--version``, so that it answers and exits); where they stop it, its
    console window waits for Enter, so the reason can be read (a terminal here, where there is one)."""
    from screening.__main__ import OPTIONS_FILE

    saved = exe.parent / OPTIONS_FILE
    saved.write_text("# as a clinic's IT would save them\n--version\n")
    try:
        proc = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 0 and proc.stdout.startswith("SkinScreen ") and \
            f"options from {OPTIONS_FILE}: --version" in proc.stderr, proc.stdout + proc.stderr[-2000:]
        if hasattr(os, "openpty"):
            saved.write_text("--port 0\n")
            console, terminal = os.openpty()
            try:
                os.write(console, b"\n")  # Enter, read once the program asks
                proc = subprocess.run([str(exe)], stdin=terminal, capture_output=True, text=True, timeout=120,
                                      check=False)
            finally:
                os.close(console)
                os.close(terminal)
            assert proc.returncode == 2 and "--port must be between 1 and 65535" in proc.stderr and \
                "Press Enter to close this window." in proc.stdout, proc.stdout + proc.stderr[-2000:]
    finally:
        saved.unlink()


def check_add_user(exe: Path = EXE) -> None:
    """``--add-user`` stores a scrypt hash: the bundle's Python carries OpenSSL's scrypt."""
    with tempfile.TemporaryDirectory() as tmp:
        logins = Path(tmp) / "logins.txt"
        proc = subprocess.run([str(exe), "--auth-file", str(logins), "--add-user", "nurse"], capture_output=True,
                              text=True, input="long-passphrase\nlong-passphrase\n", timeout=120, check=False,
                              start_new_session=True)  # no terminal: the password is read from the pipe
        assert proc.returncode == 0 and logins.read_text().startswith("nurse:scrypt$"), proc.stderr[-2000:]


def check_batch(exe: Path = EXE) -> tuple[float, int]:
    """Run batch mode on generated images (a DICOM file, and a HEIC photo), then on a zip of them;
    return seconds the first run took and files."""
    import openpyxl

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        n = _images(folder)
        out = Path(tmp) / "report.xlsx"
        start = time.perf_counter()
        proc = subprocess.run([str(exe), "batch", str(folder), "--out", str(out), "--quiet"],
                              capture_output=True, text=True, timeout=600, check=False)
        took = time.perf_counter() - start
        if proc.returncode != 0:
            raise AssertionError(f"batch mode failed ({proc.returncode}): {proc.stderr[-2000:]}")
        ws = openpyxl.load_workbook(out)["Results"]
        statuses = [row[1] for row in ws.iter_rows(min_row=2, values_only=True)]
        assert len(statuses) == n and statuses.count("error") == 1, statuses
        archive = Path(shutil.make_archive(str(Path(tmp) / "clinic"), "zip", folder))  # the same images, zipped
        proc = subprocess.run([str(exe), "batch", str(archive), "--out", str(Path(tmp) / "zip.csv"), "--quiet"],
                              capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr[-2000:]
        rows = (Path(tmp) / "zip.csv").read_text(encoding="utf-8").splitlines()[1:]
        assert [r.split(",")[1] for r in rows] == statuses, rows
    return took, n


def check_evaluate(exe: Path = EXE) -> None:
    """``SkinScreen evaluate`` on images labelled malignant or benign (a clinic's own check of
    the operating point): scoring, metrics and matplotlib's PNG output inside the bundle."""
    import numpy as np
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        folder, rng = Path(tmp) / "in", np.random.default_rng(0)
        folder.mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(60, 220, (300, 400, 3), dtype=np.uint8)).save(folder / f"img{i}.jpg")
        labels = Path(tmp) / "labels.csv"
        labels.write_text("image_id,dx,sex\nimg0.jpg,malignant,male\nimg1.jpg,benign,female\nimg2.jpg,benign,male\n"
                          "img3.jpg,malignant,female\n")
        out = Path(tmp) / "check"
        proc = subprocess.run([str(exe), "evaluate", "--images", str(folder), "--labels", str(labels), "--out", str(out)],
                              capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0 and "4 images: malignant AUROC" in proc.stdout, proc.stdout + proc.stderr[-2000:]
        assert json.loads((out / "metrics.json").read_text())["malignant"] == 2
        assert (out / "malignancy.png").read_bytes().startswith(b"\x89PNG")
        proc = subprocess.run([str(exe), "subgroups", str(out)], capture_output=True, text=True, timeout=300,
                              check=False)  # by the labels' own sex column
        assert proc.returncode == 0 and "| male | 2 | 1 / 1 |" in proc.stdout, proc.stdout + proc.stderr[-2000:]
        assert (out / "subgroups.png").read_bytes().startswith(b"\x89PNG")


def check_record(url: str, auth: tuple[str, str] | None = None) -> None:
    """Assess an image and save its PDF record through the app's API, as the page's buttons do
    (this exercises the model, Grad-CAM and matplotlib's PDF output inside the bundle)."""
    from gradio_client import Client, handle_file
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "lesion.jpg"
        Image.new("RGB", (400, 300), (180, 120, 110)).save(image)
        record = Client(url, auth=auth, verbose=False).predict(handle_file(str(image)), api_name="/record")
        assert Path(record).read_bytes().startswith(b"%PDF"), record


def check_ui(exe: Path = EXE, timeout: float = 300) -> float:
    """Start the UI headless with a sign-in and an audit log; return seconds until it answers
    HTTP, then check a PDF record, that the page's Quit button ends the program cleanly, and
    the log (who signed in from where, its chain checked by ``SkinScreen audit``), and that a
    second start opens the running page instead."""
    from screening.serving import free_port

    port = free_port()
    start = time.perf_counter()
    log, logins = (Path(tempfile.mkdtemp()) / name for name in ("audit.jsonl", "logins.txt"))
    logins.write_text("nurse:long-passphrase\n")
    logins.chmod(0o600)
    auth = ("nurse", "long-passphrase")
    proc = subprocess.Popen([str(exe), "--no-browser", "--port", str(port), "--audit-log", str(log),
                             "--auth-file", str(logins)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        from screening.serving import running_at

        while not running_at(f"http://127.0.0.1:{port}/"):
            if proc.poll() is not None:
                raise AssertionError(f"UI exited with {proc.returncode}: {proc.stdout.read()[-2000:]}")
            if time.perf_counter() - start > timeout:
                raise AssertionError(f"UI did not answer within {timeout} s")
            time.sleep(0.5)
        took = time.perf_counter() - start
        try:
            check_record(f"http://127.0.0.1:{port}/", auth)
        except Exception as err:  # the app's own log says why
            proc.terminate()
            raise AssertionError(f"PDF record failed ({err}): {proc.communicate(timeout=30)[0][-3000:]}") from err
        # started again (double-clicked twice): opens the running page and ends; BROWSER: no real browser
        again = subprocess.run([str(exe), "--port", str(port)], capture_output=True, text=True, timeout=120,
                               env={**os.environ, "BROWSER": "true"}, check=False)
        assert again.returncode == 0 and "SkinScreen is already running: opening" in again.stderr, again.stderr
        from gradio_client import Client

        Client(f"http://127.0.0.1:{port}/", auth=auth, verbose=False).predict(api_name="/quit")
        if proc.wait(60) != 0:
            raise AssertionError(f"Quit ended the UI with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        check = subprocess.run([str(exe), "audit", str(log)], capture_output=True, text=True, timeout=120, check=False)
        entries = [json.loads(line) for line in log.read_text().splitlines()]
        assert check.returncode == 0 and "5 entries; chain intact" in check.stdout, check.stdout + check.stderr
        assert [e["action"] for e in entries] == ["start", "sign-in", "record", "sign-in", "stop"], entries
        assert entries[1]["client"] == "127.0.0.1" and entries[2]["user"] == "nurse", entries
        return took
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(log.parent, ignore_errors=True)
        shutil.rmtree(logins.parent, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", action="store_true", help="build the bundle first")
    args = p.parse_args()
    if args.build or not EXE.exists():
        code = subprocess.run([sys.executable, str(ROOT / "build" / "build.py")], check=False).returncode
        if code:
            return code
    print(check_version())
    check_saved_options()
    print("saved options (double-click start), and its window kept open on an error: ok")
    check_add_user()
    print("--add-user: ok (scrypt)")
    took, n = check_batch()
    print(f"batch mode: ok ({took:.1f} s for {n} files, including start-up)")
    check_evaluate()
    print("evaluate (labels of malignant or benign): ok")
    print(f"UI: answered {check_ui():.1f} s after start (cold start); PDF record: ok; second start: ok; Quit: ok; "
          "audit log: ok")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
