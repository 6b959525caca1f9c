#!/usr/bin/env bash
# The quality numbers of a generator, measured with brain-ldm itself (the exported bundles, as users run them):
#
#   bash train/evaluate_generator.sh GENERATOR DATA OUT [--samples N] [--requests R] [--per-request K]
#
#   1. autoencoder-dice on DATA/heldout/labels (the held-out subjects)         -> OUT/autoencoder-dice.json
#   2. label-presence: where each label lies in DATA/labels (the training maps)      -> OUT/label-presence.json
#      calibrate: label offsets fitted to DATA/labels on 64 masks, then R conditions x K masks,
#      then R targets x K masks through the map (writes both into GENERATOR/generator.json)
#                                                                                -> OUT/calibration.json
#   3. generate N pairs with volumes uniform over the training range (PNG montages too) -> OUT/samples/
#   4. evaluate those pairs: anatomy, T1 contrast, volume adherence             -> OUT/evaluation.json
#   5. one pair with the generator's defaults, timed                            -> OUT/timing.json
# train/write_model_card.py turns these and the training run into MODEL_CARD.md.
set -euo pipefail
die() { echo "evaluate_generator: $*" >&2; exit 1; }
[ $# -ge 3 ] || die "usage: bash train/evaluate_generator.sh GENERATOR DATA OUT [--samples N] [--requests R] [--per-request K]"
GEN="$1"; DATA="$2"; OUT="$3"; shift 3
SAMPLES=64; REQUESTS=8; PER_REQUEST=4
while [ $# -gt 0 ]; do
  case "$1" in
    --samples) SAMPLES="$2" ;;
    --requests) REQUESTS="$2" ;;
    --per-request) PER_REQUEST="$2" ;;
    *) die "unknown option $1" ;;
  esac
  shift 2
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
read -r -a BL <<< "${BRAIN_LDM:-node $ROOT/bin/brain-ldm.mjs}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
[ -f "$GEN/generator.json" ] || die "$GEN: generator.json is missing"
[ -d "$DATA/heldout/labels" ] || die "$DATA/heldout/labels is missing (train/make_training_set.sh makes it)"
[ -d "$DATA/labels" ] || die "$DATA/labels is missing (the training label maps; train/make_training_set.sh makes it)"
mkdir -p "$OUT"

"${BL[@]}" autoencoder-dice "$DATA"/heldout/labels/*.nii.gz --generator "$GEN" --json > "$OUT/autoencoder-dice.json"
"${BL[@]}" label-presence "$GEN" --reference "$DATA/labels" --json > "$OUT/label-presence.json"
"${BL[@]}" calibrate "$GEN" --label-reference "$DATA/labels" --requests "$REQUESTS" --samples "$PER_REQUEST" --quiet --json > "$OUT/calibration.json"
RANGE=$("$PY" -c 'import json,sys; lo,hi=json.load(open(sys.argv[1]))["conditioning"]["trainingVentricleMl"]; print(f"{lo:.1f}:{hi:.1f}")' "$GEN/generator.json")
rm -rf "$OUT/samples"
"${BL[@]}" generate "$GEN" --out "$OUT/samples" --count "$SAMPLES" --volume-dist "uniform:$RANGE" --seed 1 --png --quiet
"${BL[@]}" evaluate "$OUT/samples" --json > "$OUT/evaluation.json"
rm -rf "$OUT/timing"
T0=$(date +%s.%N)
"${BL[@]}" generate "$GEN" --out "$OUT/timing" --count 1 --ventricle-volume 60 --quiet
T1=$(date +%s.%N)
"$PY" -c 'import json,sys,os; json.dump({"seconds": float(sys.argv[1]), "command": "brain-ldm generate GENERATOR --out DIR --count 1 --ventricle-volume 60", "cpus": os.cpu_count()}, open(sys.argv[2], "w"))' \
  "$(echo "$T1 - $T0" | bc)" "$OUT/timing.json"
echo "evaluate_generator: wrote $OUT/{autoencoder-dice,calibration,evaluation,timing}.json" >&2
