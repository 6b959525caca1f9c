#!/usr/bin/env bash
# Create (or refresh) the Python venv for training and reference numerics: .venv from train/requirements.txt.
# Idempotent: an existing venv is reused; pip runs only when requirements.txt changed since the last successful
# install (stamp in .venv/.requirements.sha256) or the pinned packages do not import.
#
#   bash train/setup_venv.sh                # .venv (torch 2.13.0 CPU, monai 1.6.1, monai-generative 0.2.3, ...)
#   bash train/setup_venv.sh --thesis-env   # also .venv-monai13: monai 1.3.0 as the thesis pinned (optional
#                                           # cross-check; generative 0.2.3 gives bit-identical fixtures on both)
#
# torch stays pinned to 2.13.0: that CPU wheel is on the project's machines; an unpinned torch would pull a
# multi-GB CUDA build. Set PYTHON to choose the interpreter (default python3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3}"
REQ="train/requirements.txt"

grep -qx 'torch==2.13.0' "$REQ" || { echo "setup_venv: $REQ must pin torch==2.13.0" >&2; exit 1; }

want_thesis=0
for a in "$@"; do
  case "$a" in
    --thesis-env) want_thesis=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup_venv: unknown argument $a" >&2; exit 2 ;;
  esac
done

# make_venv DIR STAMP_SOURCE IMPORT_CHECK PIP_ARGS...
make_venv() {
  local dir="$1" stamp_src="$2" check="$3"; shift 3
  if [ ! -x "$dir/bin/python" ]; then
    echo "setup_venv: creating $dir"
    "$PY" -m venv "$dir"
  fi
  local want have=""
  want="$(printf '%s\n' "$stamp_src" "$*" | sha256sum | cut -d' ' -f1)"
  [ -f "$dir/.requirements.sha256" ] && have="$(cat "$dir/.requirements.sha256")"
  if [ "$want" = "$have" ] && "$dir/bin/python" -c "$check" >/dev/null 2>&1; then
    echo "setup_venv: $dir up to date"
  else
    echo "setup_venv: pip install into $dir"
    "$dir/bin/python" -m pip install --disable-pip-version-check -q "$@" 2>&1 \
      | grep -v "^WARNING: Location '.*' is ignored" || true
    "$dir/bin/python" -c "$check"
    echo "$want" > "$dir/.requirements.sha256"
  fi
}

CHECK='import warnings; warnings.filterwarnings("ignore"); import torch, monai, generative, safetensors, numpy, nibabel, einops; assert torch.__version__.startswith("2.13.0"), torch.__version__'
make_venv .venv "$(cat "$REQ")" "$CHECK" -r "$REQ"

if [ "$want_thesis" = 1 ]; then
  THESIS_PKGS=(torch==2.13.0 monai==1.3.0 monai-generative==0.2.3 "numpy<2" safetensors einops)
  CHECK13='import warnings; warnings.filterwarnings("ignore"); import torch, monai, generative, safetensors; assert monai.__version__ == "1.3.0"'
  make_venv .venv-monai13 "${THESIS_PKGS[*]}" "$CHECK13" "${THESIS_PKGS[@]}"
fi

print_versions() {
  "$1/bin/python" - <<'EOF'
import importlib.metadata as md, sys
pk = ["torch", "monai", "monai-generative", "safetensors", "numpy", "nibabel", "einops"]
out = []
for p in pk:
    try:
        out.append(f"{p} {md.version(p)}")
    except md.PackageNotFoundError:
        pass
print(f"{sys.prefix}: python {sys.version.split()[0]}, " + ", ".join(out))
EOF
}
print_versions .venv
[ "$want_thesis" = 1 ] && print_versions .venv-monai13
exit 0
