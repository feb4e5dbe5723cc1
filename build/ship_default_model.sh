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
python - "$TTA" <<'PY'
import json, sys
p = "screening/models/default/bundle.json"
meta = json.load(open(p))
meta.update(name="skinscreen-mobilenet-ham10000", tta=sys.argv[1] == "--tta")
meta.setdefault("version", meta["created"][:10].replace("-", "."))
json.dump(meta, open(p, "w"), indent=2)
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
