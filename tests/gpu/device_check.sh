#!/usr/bin/env bash
# One prepared check for a lent GPU machine (no TensorRT, no network needed): see tests/gpu/README.md.
#
#   bash tests/gpu/device_check.sh        # or OUT=/some/folder bash tests/gpu/device_check.sh
#
# Builds the plugin's host library in place (setup.py build_ext --inplace; if that fails, g++ on
# the one source file), then runs tests/gpu/device_check.py with the checkout on PYTHONPATH. It
# writes ${OUT:-tests/gpu/device_check_out}/device_check.json, device_check.md and host_build.log.
# Exit status: device_check.py's (1 only when a comparison failed), or 124 when it ran past its
# time limit (DEVICE_CHECK_TIMEOUT seconds, default 450: the files then hold the sections done).
set -u
cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)
PYTHON=${PYTHON:-python3}
OUT_DIR=${OUT:-tests/gpu/device_check_out}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
LOG="$OUT_DIR/host_build.log"

built="failed (see host_build.log)"
if "$PYTHON" setup.py build_ext --inplace >"$LOG" 2>&1; then
    built="setup.py build_ext --inplace"
else
    echo "--- setup.py failed; g++ directly" >>"$LOG"
    if g++ -std=c++17 -O3 -ffp-contract=off -shared -fPIC -Iplugins/yolo_decode_nms \
        -o yolov3_trt/plugin/libyolo_decode_nms.so plugins/yolo_decode_nms/yolo_decode_nms_host.cpp >>"$LOG" 2>&1; then
        built="g++ (setup.py failed)"
    fi
fi
echo "host library: $built"
export YOLOV3_TRT_HOST_BUILD="$built"

if command -v timeout >/dev/null 2>&1; then
    timeout "${DEVICE_CHECK_TIMEOUT:-450}" "$PYTHON" tests/gpu/device_check.py --out "$OUT_DIR" "$@"
else
    "$PYTHON" tests/gpu/device_check.py --out "$OUT_DIR" "$@"
fi
