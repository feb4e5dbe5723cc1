#!/usr/bin/env bash
# Evaluate a finished training run and ship it as the package's default model.
#   build/ship_default_model.sh runs/default [--tta]
# Scores validation (with and without flip TTA, for the choice), then the hold-out test
# split once with the chosen setting; copies the bundle, plots and model card into
# screening/models/default and docs/model.
set -euo pipefail
RUN=${1:?run folder}; TTA=${2:---no-tta}
HAM=../shared/data/ham10000
IMAGES="$HAM/images_224 $HAM/originals_600x450 $HAM/images_200x150"  # validation/test copies as in training
for tta in --no-tta --tta; do
    [ -f "$RUN/eval_val$tta/metrics.json" ] || python -m screening.evaluate --model "$RUN/bundle" $tta \
        --images $IMAGES --labels "$RUN/val_labels.csv" --out "$RUN/eval_val$tta"
done
[ -f "$RUN/eval_test/metrics.json" ] || python -m screening.evaluate --model "$RUN/bundle" $TTA \
    --images $IMAGES --labels "$RUN/test_labels.csv" --out "$RUN/eval_test"
rm -rf screening/models/default docs/model
mkdir -p screening/models docs/model
cp -r "$RUN/bundle" screening/models/default
python - "$TTA" "$RUN/eval_test/metrics.json" <<'PY'
# the name, the TTA setting and what the threshold did on the hold-out test split, sealed into
# the bundle's check: the page, the worklist and the PDF record quote those figures
import json, sys
from screening.bundle import read_meta, update_meta
from screening.evaluate import held_out_figures
_, meta = read_meta("screening/models/default")
test = json.load(open(sys.argv[2]))
update_meta("screening/models/default", name="skinscreen-mobilenet-ham10000", tta=sys.argv[1] == "--tta",
            version=meta.get("version") or meta["created"][:10].replace("-", "."),
            metrics={**meta["metrics"], "held_out": held_out_figures(test, "HAM10000 images of its hold-out test split")})
PY
cp -r "$RUN/eval_val$TTA" docs/model/validation
cp -r "$RUN/eval_test" docs/model/test
for split in validation test; do  # figures by sex, age, body site...: from the saved predictions
    python -m screening.subgroups docs/model/$split --metadata "$HAM/HAM10000_metadata.csv" > /dev/null
done
cp docs/model/validation/{confusion_matrix,roc,reliability,subgroups}.png screening/models/default/
python -m screening.model_card --model screening/models/default --validation docs/model/validation \
    --test docs/model/test --notes build/default_model_notes.md --out MODEL_CARD.md
cp MODEL_CARD.md screening/models/default/MODEL_CARD.md
du -sh screening/models/default
