#!/usr/bin/env bash
# Render docs/record.png: the PDF record the app saves for one image, as a reader sees it.
#   build/record_picture.sh [IMAGE]   (default: HAM10000's ISIC_0024306, as in the app screenshot)
# Scored with the packaged model through the app's own handler; the PDF stays in a temporary folder.
set -euo pipefail
IMAGE=${1:-../shared/data/ham10000/images_224/ISIC_0024306.jpg}
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
python - "$IMAGE" "$TMP/record.pdf" <<'PY'
import shutil, sys
from pathlib import Path
from screening.app import ScreeningApp
image = Path(sys.argv[1])
app = ScreeningApp()  # holds the folder the record is written to
shutil.copy(app.record({"path": str(image), "orig_name": image.name}), sys.argv[2])
PY
pdftoppm -r 80 -png -singlefile "$TMP/record.pdf" docs/record
echo "wrote docs/record.png"
