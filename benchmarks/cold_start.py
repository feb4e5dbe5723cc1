"""Cold start of the scoring path with and without the persistent compilation cache.

    python benchmarks/cold_start.py [--model BUNDLE]

Runs a fresh Python process three times, each importing screening, loading the model
and scoring one image: (1) with the cache turned off, (2) with an empty cache folder,
(3) again with that now-filled folder. Prints seconds from process start to result. Then
starts ``python app.py`` twice with that folder and prints seconds until its page answers,
and how long its first assessment of an image takes when asked for 5 s later (as a user
picks a file), through the page's API (gradio_client).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PICKING = 5.0  # seconds a user takes to choose a file once the page is open
CHILD = """
import time; t0 = time.perf_counter()
import sys; sys.path.insert(0, {root!r})
import numpy as np
from screening.inference import Screener
s = Screener({model})
list(s.score([np.full((300, 400, 3), 128, np.uint8)]))
print(f"{{time.perf_counter() - t0:.2f}}")
"""


def run(model: str, cache: str) -> float:
    env = {**os.environ, "SKINSCREEN_CACHE_DIR": cache}
    code = CHILD.format(root=str(ROOT), model=model)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def app_start(model: Path | None, cache: str) -> tuple[float, float]:
    """Seconds from starting ``python app.py`` until its page answers, and of its first
    assessment, asked for ``PICKING`` seconds later."""
    import gradio_client
    import numpy as np
    from PIL import Image

    from screening.serving import free_port, running_at

    port = free_port()
    command = [sys.executable, str(ROOT / "app.py"), "--no-browser", "--port", str(port)]
    command += ["--model", str(model)] if model else []
    start = time.perf_counter()
    app = subprocess.Popen(command, env={**os.environ, "SKINSCREEN_CACHE_DIR": cache},
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not running_at(f"http://127.0.0.1:{port}/"):
            if app.poll() is not None:
                raise SystemExit(f"app.py exited with {app.returncode} before answering")
            time.sleep(0.1)
        page = time.perf_counter() - start
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        time.sleep(PICKING)
        with tempfile.TemporaryDirectory() as tmp:
            image = Path(tmp) / "lesion.png"
            Image.fromarray(np.full((300, 400, 3), (180, 120, 110), np.uint8)).save(image)
            asked = time.perf_counter()
            client.predict(gradio_client.handle_file(str(image)), api_name="/predict")
        return page, time.perf_counter() - asked
    finally:
        app.terminate()
        app.wait(30)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path)
    args = p.parse_args()
    model = repr(str(args.model)) if args.model else "None"
    with tempfile.TemporaryDirectory() as cache:
        off = run(model, "")
        first = run(model, cache)
        second = run(model, cache)
        print(f"start-up to first result: no cache {off:.2f} s, empty cache {first:.2f} s, "
              f"filled cache {second:.2f} s", flush=True)
        starts = [app_start(args.model, cache) for _ in range(2)]
    print("python app.py, filled cache: the page answered after " + ", ".join(f"{p:.1f} s" for p, _ in starts)
          + f"; its first assessment, {PICKING:.0f} s later, took " + ", ".join(f"{a:.2f} s" for _, a in starts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
