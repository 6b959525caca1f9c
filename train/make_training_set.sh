#!/usr/bin/env bash
# Build the training set for train/train.py from the 20 SynthSeg label maps, with brain-ldm's own CLIs:
#
#   bash train/make_training_set.sh OUT [--count N] [--images K] [--seed S] [--held-out H]
#                                       [--augment-at reduced|native] [--grid reduced] [--flip-prob P] [--scaling B] [--rotation DEG] [--subjects N]
#
#   1. prepare-labels: every subject -> SynthSeg labels on the training grid (OUT/prepared)
#   2. split: H subjects held out, drawn with seed S stratified by ventricle/ICV ratio (train/ldm/split.py;
#      OUT/split.json says which and how)
#   3. augment-labels: N copies (default 30) of each training subject with the ventricles enlarged by a factor
#      drawn in 1..3 (normal to hydrocephalic), randomly deformed and mirrored; by default at 1 mm before
#      preparing (--augment-at native: the enlargement moves 1 mm boundaries, ~5 s a copy), or on the prepared
#      training grid (--augment-at reduced: ~0.9 s a copy, coarser)
#   4. synthseg-images: K synthetic T1 images per training label map, 1 per held-out map
#
# Result: OUT/labels (training maps: prepared subjects + augmented copies), OUT/images, OUT/heldout/{labels,images},
# OUT/split.json, OUT/timings.tsv (seconds per step). Environment: BRAIN_LDM (default `node bin/brain-ldm.mjs`),
# PYTHON (default .venv/bin/python), LABEL_MAPS (default /work/shared/data/synthseg-label-maps).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
usage() { sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "make_training_set.sh: $*" >&2; exit 2; }

[ $# -ge 1 ] || { usage >&2; exit 2; }
case "$1" in -h|--help) usage; exit 0 ;; -*) die "the first argument must be the output directory, got '$1'" ;; esac
OUT="$1"; shift
COUNT=30; IMAGES=1; SEED=42; HELD_OUT=4; AUGMENT_AT=native; GRID=reduced; FLIP=0.5; SUBJECTS=0
# Milder than SynthSeg's affine (scaling 0.2, rotation 15 degrees): a generator should learn aligned heads of
# realistic size; SynthSeg's wide ranges serve segmenters, and +-20% per axis changes the ICV by up to +-50%.
SCALING=0.05; ROTATION=5
NATIVE_GRID=160x224x160@1,1,1
while [ $# -gt 0 ]; do
  [ $# -ge 2 ] || die "option $1 needs a value"
  case "$1" in
    --count) COUNT="$2" ;;
    --images) IMAGES="$2" ;;
    --seed) SEED="$2" ;;
    --held-out) HELD_OUT="$2" ;;
    --augment-at) AUGMENT_AT="$2" ;;
    --grid) GRID="$2" ;;
    --flip-prob) FLIP="$2" ;;
    --scaling) SCALING="$2" ;;
    --rotation) ROTATION="$2" ;;
    --subjects) SUBJECTS="$2" ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift 2
done
for v in COUNT IMAGES SEED HELD_OUT SUBJECTS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || die "--$(echo "$v" | tr 'A-Z_' 'a-z-') must be a non-negative integer, got '${!v}'"
done
[ "$IMAGES" -ge 1 ] || die "--images must be at least 1"
case "$AUGMENT_AT" in reduced|native) ;; *) die "--augment-at must be reduced or native, got '$AUGMENT_AT'" ;; esac

read -r -a BL <<< "${BRAIN_LDM:-node $ROOT/bin/brain-ldm.mjs}"
PY="${PYTHON:-$ROOT/.venv/bin/python}"
MAPS="${LABEL_MAPS:-/work/shared/data/synthseg-label-maps}"
[ -d "$MAPS" ] || die "LABEL_MAPS $MAPS: no such directory"
[ ! -e "$OUT/split.json" ] || die "$OUT already holds a training set (split.json); choose a new directory"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

mapfile -t INPUTS < <(ls "$MAPS"/training_seg_*.nii.gz | sort)
[ "${#INPUTS[@]}" -gt 0 ] || die "$MAPS: no training_seg_*.nii.gz"
if [ "$SUBJECTS" -gt 0 ]; then INPUTS=("${INPUTS[@]:0:$SUBJECTS}"); fi   # smoke runs: the first N subjects

printf 'step\tseconds\n' > "$OUT/timings.tsv"
timed() {  # timed <step name> <command...>
  local name="$1" t0; shift
  t0=$(date +%s.%N)
  echo "== $name: $*" >&2
  "$@"
  printf '%s\t%.1f\n' "$name" "$(echo "$(date +%s.%N) - $t0" | bc)" >> "$OUT/timings.tsv"
}
augment() {  # augment <out-dir> <inputs...>
  local dir="$1"; shift
  "${BL[@]}" augment-labels "$@" --out "$dir" --count "$COUNT" --seed "$SEED" --ventricle-factor 1:3 --flip-prob "$FLIP" --scaling "$SCALING" --rotation "$ROTATION"
}

timed prepare "${BL[@]}" prepare-labels "${INPUTS[@]}" --out "$OUT/prepared" --grid "$GRID"
timed split "$PY" "$ROOT/train/ldm/split.py" --report "$OUT/prepared/prepare-report.jsonl" \
  --held-out "$HELD_OUT" --seed "$SEED" --out "$OUT/split.json"

mapfile -t TRAIN < <("$PY" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["train"]))' "$OUT/split.json")
mapfile -t HELD < <("$PY" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["heldOut"]))' "$OUT/split.json")
mkdir -p "$OUT/labels" "$OUT/heldout/labels"
for s in "${TRAIN[@]}"; do cp "$OUT/prepared/$s.nii.gz" "$OUT/labels/"; done
for s in "${HELD[@]}"; do cp "$OUT/prepared/$s.nii.gz" "$OUT/heldout/labels/"; done

if [ "$COUNT" -gt 0 ]; then
  if [ "$AUGMENT_AT" = reduced ]; then
    PREPARED=(); for s in "${TRAIN[@]}"; do PREPARED+=("$OUT/prepared/$s.nii.gz"); done
    timed augment augment "$OUT/augmented" "${PREPARED[@]}"
  else
    # augment-labels takes SynthSeg maps: map and crop at 1 mm first (the thesis' 160x224x160 mm field of view).
    NATIVE=(); for s in "${TRAIN[@]}"; do NATIVE+=("$MAPS/$s.nii.gz"); done
    timed prepare-1mm "${BL[@]}" prepare-labels "${NATIVE[@]}" --out "$OUT/native" --grid "$NATIVE_GRID"
    MAPPED=(); for s in "${TRAIN[@]}"; do MAPPED+=("$OUT/native/$s.nii.gz"); done
    timed augment-1mm augment "$OUT/augmented-1mm" "${MAPPED[@]}"
    timed prepare-augmented "${BL[@]}" prepare-labels "$OUT"/augmented-1mm/*_aug*.nii.gz --out "$OUT/augmented" --grid "$GRID"
  fi
  cp "$OUT"/augmented/*_aug*.nii.gz "$OUT/labels/"
fi

timed images "${BL[@]}" synthseg-images "$OUT"/labels/*.nii.gz --out "$OUT/images" --seed "$SEED" --count "$IMAGES" --contrast t1
timed heldout-images "${BL[@]}" synthseg-images "$OUT"/heldout/labels/*.nii.gz --out "$OUT/heldout/images" \
  --seed "$((SEED + 1))" --count 1 --contrast t1

# Everything here derives from SynthSeg's label maps: keep their licence and origin beside it.
cp "$MAPS/LICENSE-Apache-2.0.txt" "$OUT/"
cat > "$OUT/SOURCE.md" <<SRC
Derived from the SynthSeg training label maps (Billot et al., Medical Image Analysis 86:102789, 2023;
https://github.com/BBillot/SynthSeg, Apache-2.0, see LICENSE-Apache-2.0.txt) by train/make_training_set.sh:
$(basename "${INPUTS[0]}") .. $(basename "${INPUTS[-1]}"), seed $SEED, $COUNT augmented copies per training subject
(augmented at the $AUGMENT_AT grid), $IMAGES image(s) per training map, held out: ${HELD[*]}.
SRC
echo "training set in $OUT: $(ls "$OUT"/labels/*.nii.gz | wc -l) label maps, $(ls "$OUT"/images/*.nii.gz | wc -l) images," \
     "held out ${HELD[*]}" >&2
cat "$OUT/timings.tsv" >&2
