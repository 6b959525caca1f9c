#!/usr/bin/env bash
# Builds the C++ core to WebAssembly in three variants under wasm/dist/<variant>/:
#   simd-threads  simd128 kernels + pthreads (needs SharedArrayBuffer)
#   simd          simd128 kernels, one thread
#   scalar        portable kernels, one thread (engines without wasm SIMD)
# Each folder holds brain_ldm.cjs (CommonJS emscripten glue), brain_ldm.wasm,
# and for threads brain_ldm.worker.js. Usage: bash wasm/build.sh [variant...]
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dist="$root/wasm/dist"

if ! command -v em++ >/dev/null 2>&1; then
  echo "wasm/build.sh: em++ not found; install Emscripten (Debian/Ubuntu: sudo apt-get install emscripten)" >&2
  exit 1
fi
# Debian's emscripten finds its JS tools (acorn, terser) only through NODE_PATH.
if [[ -d /usr/share/nodejs ]]; then
  export NODE_PATH="/usr/share/nodejs${NODE_PATH:+:$NODE_PATH}"
fi

core_sources=(
  "$root"/native/core/*.cpp
  "$root"/native/core/ops/*.cpp
  "$root"/native/core/nets/*.cpp
  "$root/native/core/kernels/kernel_registry.cpp"
  "$root/native/core/kernels/bf16_pack.cpp"
  "$root/wasm/c_api.cpp"
)

# -fwasm-exceptions: the C ABI catches bad_alloc; native wasm EH costs nothing on
# paths that do not throw, unlike emscripten's JS-based -fexceptions.
# ABORTING_MALLOC=0: a failed allocation must return null (-> bad_alloc -> an
# error for that call) instead of aborting the whole instance.
# NODEJS_CATCH_*=0: a library must not install process-wide uncaughtException /
# unhandledRejection handlers (the glue adds one pair per instance otherwise).
common_flags=(
  -O3 -std=c++17 -DNDEBUG -fwasm-exceptions
  -I"$root/native/core"
  -sMODULARIZE=1 -sEXPORT_NAME=createBrainLdmWasm
  -sALLOW_MEMORY_GROWTH=1 -sMAXIMUM_MEMORY=4GB -sABORTING_MALLOC=0
  -sFILESYSTEM=0 -sNODEJS_CATCH_EXIT=0 -sNODEJS_CATCH_REJECTION=0
  "-sEXPORTED_RUNTIME_METHODS=[UTF8ToString,stringToUTF8,lengthBytesUTF8,ENV]"
)

# The pool is sized per instance from Module.blPoolSize (set by
# ts/backend/wasm-binding.ts to threads - 1) so a 2-core CI does not spawn idle
# workers and a 64-core host is not capped. At least one worker: with a pool
# of 0 this emscripten never resolves the module promise. STRICT=2 makes an
# oversubscribed pthread_create fail (EAGAIN -> error) instead of deadlocking.
threads_flags=(
  -msimd128 -pthread
  "-sPTHREAD_POOL_SIZE=Math.max(1,Module['blPoolSize']|0)"
  -sPTHREAD_POOL_SIZE_STRICT=2
  -Wno-pthreads-mem-growth
)

variant_flags() {
  case "$1" in
    simd-threads) printf '%s\n' "${threads_flags[@]}" ;;
    simd) printf '%s\n' -msimd128 -DBL_SINGLE_THREADED ;;
    scalar) printf '%s\n' -DBL_SINGLE_THREADED ;;
    *) echo "wasm/build.sh: unknown variant '$1' (expected simd-threads, simd, scalar)" >&2; return 1 ;;
  esac
}

variant_kernels() {
  case "$1" in
    scalar) echo "$root/native/core/kernels/kernels_scalar.cpp" ;;
    *) echo "$root/native/core/kernels/kernels_simd128.cpp" ;;
  esac
}

build_variant() {
  local variant="$1"
  local out="$dist/$variant"
  local tmp="$dist/.tmp-$variant"
  local -a flags
  mapfile -t flags < <(variant_flags "$variant")
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # emcc only emits JS glue for known suffixes (.js/.mjs); rename to .cjs after,
  # which is safe because the glue locates itself through __filename.
  em++ "${common_flags[@]}" "${flags[@]}" "${core_sources[@]}" "$(variant_kernels "$variant")" \
    -o "$tmp/brain_ldm.js"
  mv "$tmp/brain_ldm.js" "$tmp/brain_ldm.cjs"
  # The package is "type": "module"; the pthread worker script is CommonJS.
  printf '{"type":"commonjs"}\n' >"$tmp/package.json"
  # Swap in whole so an interrupted build never leaves a half-written variant.
  rm -rf "$out"
  mv "$tmp" "$out"
}

variants=("$@")
[[ ${#variants[@]} -gt 0 ]] || variants=(simd-threads simd scalar)
for v in "${variants[@]}"; do variant_flags "$v" >/dev/null; done

mkdir -p "$dist"
# Variants build in parallel; each logs to its own file so errors stay readable.
declare -A pids
for v in "${variants[@]}"; do
  build_variant "$v" >"$dist/.build-$v.log" 2>&1 &
  pids[$v]=$!
done
failed=0
for v in "${variants[@]}"; do
  if ! wait "${pids[$v]}"; then
    echo "wasm/build.sh: variant $v failed:" >&2
    cat "$dist/.build-$v.log" >&2
    rm -rf "$dist/.tmp-$v"  # the previous build of $v, if any, stays in place
    failed=1
  else
    # Warnings are not errors, but should not scroll by unseen.
    [[ -s "$dist/.build-$v.log" ]] && { echo "wasm/build.sh: $v warnings:" >&2; cat "$dist/.build-$v.log" >&2; }
  fi
  rm -f "$dist/.build-$v.log"
done
[[ $failed -eq 0 ]] || exit 1

summary=""
for v in "${variants[@]}"; do
  wasm_kib=$(( $(stat -c %s "$dist/$v/brain_ldm.wasm") / 1024 ))
  js_kib=$(( $(stat -c %s "$dist/$v/brain_ldm.cjs") / 1024 ))
  summary+="${summary:+, }$v ${wasm_kib} KiB wasm + ${js_kib} KiB js"
done
echo "wasm/build.sh: built $summary ($(em++ --version | head -n1 | sed -E 's/.* ([0-9]+\.[0-9]+\.[0-9]+).*/emscripten \1/'))"
