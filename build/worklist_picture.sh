#!/usr/bin/env bash
# Render docs/worklist.png: the Results sheet of a real batch.py report, as LibreOffice prints it.
#   build/worklist_picture.sh [LABELS_CSV]   (image_id,dx,...; default: the default model's validation images)
# Two images of each class (the 3rd and 9th of each in the CSV) and one empty file,
# copied to a temporary folder (never into the repository), scored with the packaged model.
set -euo pipefail
LABELS=${1:-docs/model/validation/predictions.csv}
HAM=../shared/data/ham10000
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
mkdir "$TMP/clinic"
for dx in akiec bcc bkl df mel nv vasc; do
    for id in $(awk -F, -v dx="$dx" '$2 == dx {print $1}' "$LABELS" | sed -n '3p;9p'); do
        cp "$(ls "$HAM/images_224/$id.jpg" 2>/dev/null || ls "$HAM/images_200x150/$id.jpg")" "$TMP/clinic/"
    done
done
: > "$TMP/clinic/ISIC_unreadable.jpg"
python batch.py "$TMP/clinic" --out "$TMP/report.xlsx" --quiet
(cd "$TMP" && libreoffice --headless --convert-to pdf report.xlsx >/dev/null && pdftoppm -r 200 -png -f 1 -l 1 report.pdf page)
python - "$TMP"/page-1.png docs/worklist.png <<'PY'
import sys
from PIL import Image, ImageOps
page = Image.open(sys.argv[1]).convert("RGB")
left, top, right, bottom = ImageOps.invert(page).getbbox()  # the printed table, without the margins
page.crop((left - 10, top - 10, right + 10, bottom + 10)).save(sys.argv[2], optimize=True)
PY
echo "wrote docs/worklist.png"
