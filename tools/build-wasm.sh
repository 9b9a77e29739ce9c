#!/usr/bin/env bash
# Builds the WebAssembly SIMD kernels (src/backends/wasm/kernels.c) and writes them, base64-encoded,
# into the generated module src/backends/wasm/binary.ts, which is committed: `npm install` and
# `tsc` then need no C compiler, and the same module works in browsers.
#
# Two variants from one source: plain SIMD128, and relaxed SIMD (FMA through
# wasm_f32x4_relaxed_madd); the loader picks the relaxed one where the engine accepts it. Each
# also comes as a GEMM-only build over shared memory, for the multithreaded GEMM.
#
# Needs Debian's clang-19 and lld-19 (apt-get install -y clang-19 lld-19); clang-14 emits an
# obsolete relaxed-FMA opcode that V8 rejects. Override the compiler with CLANG=/path/to/clang.
# The output is reproducible: no paths, timestamps or names end up in the binaries (the build runs
# from the repository root on relative paths and strips symbols), so running it twice gives the
# same binary.ts; `bash tools/build-wasm.sh --check` verifies that the committed file is current.
set -euo pipefail
cd "$(dirname "$0")/.."

CLANG=${CLANG:-clang-19}
SRC=src/backends/wasm/kernels.c
OUT=src/backends/wasm/binary.ts

if ! command -v "$CLANG" >/dev/null 2>&1; then
  echo "build-wasm: $CLANG not found (apt-get install -y clang-19 lld-19, or set CLANG)" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# -ffp-contract=off: no implicit a*b+c fusion, so the plain build is exact IEEE operation by
#   operation and the relaxed build fuses only where the source says MADD.
# -mbulk-memory: struct/array copies become memory.copy instead of calls to a missing memcpy.
# --export=__heap_base: where the JS arena may start (above the stack and static data).
# -z stack-size: the kernels use a few hundred bytes of stack; 64 KiB is ample.
FLAGS=(
  --target=wasm32 -O3 -msimd128 -mbulk-memory -nostdlib -ffp-contract=off
  -fno-ident -Wall -Wextra -Wno-unused-parameter
  -Wl,--no-entry -Wl,--export=__heap_base -Wl,--strip-all -Wl,-z,stack-size=65536
)

"$CLANG" "${FLAGS[@]}" -o "$tmp/simd128.wasm" "$SRC"
"$CLANG" "${FLAGS[@]}" -mrelaxed-simd -DTLM_RELAXED=1 -o "$tmp/relaxed.wasm" "$SRC"

# The threaded GEMMs: only gemm_f32 and the int8 GEMM (TLM_GEMM_ONLY), over a shared memory the JS glue creates and
# passes to every thread's instance (1 MiB initial, 4 GiB maximum, as gemm.ts expects). Each
# worker moves its own instance's stack pointer (exported) to a stack of its own.
THREADS=(
  -matomics -DTLM_GEMM_ONLY=1 -Wl,--import-memory -Wl,--shared-memory
  -Wl,--initial-memory=1048576 -Wl,--max-memory=4294967296 -Wl,--export=__stack_pointer
)
"$CLANG" "${FLAGS[@]}" "${THREADS[@]}" -o "$tmp/simd128-threads.wasm" "$SRC"
"$CLANG" "${FLAGS[@]}" "${THREADS[@]}" -mrelaxed-simd -DTLM_RELAXED=1 -o "$tmp/relaxed-threads.wasm" "$SRC"

sha() { sha256sum "$1" | cut -d' ' -f1; }
version=$("$CLANG" --version | head -n1)

{
  echo "// GENERATED FILE — do not edit. Built by tools/build-wasm.sh from src/backends/wasm/kernels.c"
  echo "// with: $version"
  echo "// Rebuild after changing kernels.c: bash tools/build-wasm.sh"
  for f in simd128 relaxed simd128-threads relaxed-threads; do
    echo "// $f.wasm: $(stat -c %s "$tmp/$f.wasm") bytes, sha256 $(sha "$tmp/$f.wasm")"
  done
  echo ""
  echo "/** sha256 of the kernels.c these binaries were built from (a test checks it is current). */"
  echo "export const sourceSha256 = '$(sha "$SRC")';"
  echo ""
  echo "/** The kernels built with -msimd128 only (base64). */"
  echo "export const simd128Base64 ="
  echo "  '$(base64 -w0 "$tmp/simd128.wasm")';"
  echo ""
  echo "/** The kernels built with -msimd128 -mrelaxed-simd: MADD is a fused multiply-add (base64). */"
  echo "export const relaxedSimdBase64 ="
  echo "  '$(base64 -w0 "$tmp/relaxed.wasm")';"
  echo ""
  echo "/** GEMM only, shared imported memory, for worker threads: -msimd128 (base64). */"
  echo "export const simd128ThreadsBase64 ="
  echo "  '$(base64 -w0 "$tmp/simd128-threads.wasm")';"
  echo ""
  echo "/** GEMM only, shared imported memory, for worker threads: -msimd128 -mrelaxed-simd (base64). */"
  echo "export const relaxedSimdThreadsBase64 ="
  echo "  '$(base64 -w0 "$tmp/relaxed-threads.wasm")';"
} >"$tmp/binary.ts"

if [ "${1:-}" = "--check" ]; then
  if cmp -s "$tmp/binary.ts" "$OUT"; then
    echo "build-wasm: $OUT is up to date"
  else
    echo "build-wasm: $OUT differs from a fresh build of $SRC (run bash tools/build-wasm.sh)" >&2
    exit 1
  fi
else
  cp "$tmp/binary.ts" "$OUT"
  echo "build-wasm: wrote $OUT ($(cat "$tmp"/*.wasm | wc -c) bytes of wasm in 4 modules)"
fi
