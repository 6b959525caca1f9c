#!/usr/bin/env bash
# The thesis-size mask UNet (553M parameters, latent 24x32x24) forward, brain-ldm native beside PyTorch on
# the same machine, same weights and inputs; each side in its own process so peak RSS is its own.
#
#   bash bench/thesis-mask-unet.sh [batch=2] [repeat=2]
# Needs: npm run build:native && npm run build:ts, bash train/setup_venv.sh. Uses ~10 GB of /tmp.
set -euo pipefail
cd "$(dirname "$0")/.."
batch="${1:-2}"; repeat="${2:-2}"
work="${BRAIN_LDM_BENCH_DIR:-/tmp/brain-ldm-thesis-unet}"
mkdir -p "$work"
py=.venv/bin/python
[ -f "$work/thesis_unet.pth" ] || $py bench/thesis_mask_unet.py make "$work"
$py bench/thesis_mask_unet.py run "$work" "$batch" "$repeat"
[ -f "$work/bundle/model.json" ] || node bin/brain-ldm.mjs import "$work/thesis_unet.pth" --network DiffusionModelUNet \
  --args "@$work/args.json" --out "$work/bundle"
node bin/brain-ldm.mjs run-network "$work/bundle" --inputs "$work/inputs_b$batch.safetensors" \
  --out "$work/brain_ldm_out_b$batch.safetensors" --repeat "$repeat" --backend native --threads 2
$py - "$work" "$batch" <<'PY'
import sys
from safetensors.torch import load_file
w, b = sys.argv[1], sys.argv[2]
a, r = load_file(f'{w}/brain_ldm_out_b{b}.safetensors')['out'], load_file(f'{w}/torch_out_b{b}.safetensors')['out']
print(f'relative L2 error brain-ldm vs PyTorch: {((a - r).norm() / r.norm()).item():.2e}')
PY
