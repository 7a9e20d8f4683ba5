#!/usr/bin/env bash
# Every GPU check in one call, for a machine with a CUDA GPU and torch already installed (no network
# needed): the CUDA-marked tests and the whole library suite with the GPU as the best device, the
# pipeline benchmark on the GPU, the synthesis throughput and the trainer's throughput. Results go
# to $OUT (default ./gpu-out).
#
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh
#
# Packages the machine lacks can be carried in as wheels: WHEELS=wheelhouse/ (pip install --no-index).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu-out}"
mkdir -p "$OUT"
if [ -n "${WHEELS:-}" ]; then
  python -m pip install -q --no-index --find-links "$WHEELS" segment-anything tqdm filelock > "$OUT/pip.txt" 2>&1
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1
python - > "$OUT/versions.txt" 2>&1 <<'PY'
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))
PY
python -m pytest -q -p no:cacheprovider -m cuda tests -rs > "$OUT/tests-cuda.txt" 2>&1
python -m pytest -q -p no:cacheprovider tests/phnet tests/nodes > "$OUT/tests-library-and-nodes.txt" 2>&1
python benchmarks/pipeline_speed.py --device cuda --rounds 7 > "$OUT/pipeline-speed-cuda.txt" 2>&1
python benchmarks/synthesis_speed.py > "$OUT/synthesis-speed.txt" 2>&1
python benchmarks/training_speed.py --device cuda --size 256 --batch 64 --steps 300 > "$OUT/training-speed.txt" 2>&1
tail -n 3 "$OUT"/*.txt
