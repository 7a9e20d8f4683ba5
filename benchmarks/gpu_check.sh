#!/usr/bin/env bash
# Every GPU check in one call, for a machine with a CUDA GPU and torch already installed (no network
# needed). Steps, most wanted first:
#
#   cuda-tests  the `cuda`-marked tests
#   bench       the pipeline benchmark on the GPU (official vs ours, same run)
#   training    the trainer's throughput (composites/s, GPU utilisation)
#   synthesis   synthetic composites/s: numpy, torch on the CPU, torch on the GPU
#   suite       the whole test suite with the GPU as the best device (the `cuda` tests excepted: done above);
#               last, as the longest: it takes what time is left, and a rerun with STEPS=suite finishes it
#
#   OUT=/tmp/gpu WHEELS=wheelhouse bash benchmarks/gpu_check.sh                 # all of them
#   OUT=/tmp/gpu WHEELS=wheelhouse STEPS="bench suite" bash benchmarks/gpu_check.sh   # a rerun of some
#   OUT=/tmp/gpu REHEARSE=1 bash benchmarks/gpu_check.sh       # on the CPU, tiny sizes: two minutes, before GPU time
#
# REHEARSE=1 runs the same commands on the CPU with the smallest settings (and without the suite unless
# STEPS names it), so that a broken option or import shows here and not on the GPU's clock.
#
# All steps share DEADLINE seconds (default 540, inside a 10-minute call; a rehearsal's caps are doubled, and
# so is its default); each also has its own cap, so a step that hangs costs its cap, not the rest.
# $OUT/summary.txt gives each step's exit status and time, $OUT/<step>.txt its output, $OUT/machine.txt the
# GPU, the versions and the time limits: seven files in all. OUT is gpu-out in the checkout where it is not given
# (the folder is git-ignored); a relative OUT or WHEELS is taken from where the script is called.
# The first CUDA calls (the GPU's name, whether torch sees one) get CUDA_INIT_TIMEOUT seconds (default 60): a
# wedged driver can hang them, and the call's time is for the steps.
# Packages the machine lacks can be carried in as wheels (pip install --no-index): on an image without
# segment-anything the SAM, node-workflow and WebUI tests skip, so build the folder where there is a network, e.g.
#   pip download --no-deps -d wheelhouse segment-anything
# and run with WHEELS=wheelhouse (the folder is git-ignored).
set -uo pipefail
# before the cd: a relative OUT or WHEELS is the caller's
case ${OUT:-/} in /*) ;; *) OUT="$PWD/$OUT" ;; esac
case ${WHEELS:-/} in /*) ;; *) WHEELS="$PWD/$WHEELS" ;; esac
cd "$(dirname "$0")/.."
# the exit status: 1 when the WHEELS were not installed (the tests that need them skip) or a step did not exit 0
# (its output and time are in summary.txt all the same)
failed=0
OUT="${OUT:-gpu-out}"
CUDA_INIT_TIMEOUT="${CUDA_INIT_TIMEOUT:-60}"
if [ -n "${REHEARSE:-}" ]; then
  DEVICE=cpu STEPS="${STEPS:-cuda-tests bench training synthesis}"
  SLOW=2  # the caps are the GPU call's: a busy CPU took 158 s of the bench's 180
  BENCH=(--rounds 1 --sizes 512² --no-frames)
  TRAINING=(--size 64 --batch 8 --steps 10 --photos 24 --workers 1)
  SYNTHESIS=(--size 64 --rounds 1 --numpy-samples 4 --batch 8)
else
  DEVICE=cuda STEPS="${STEPS:-cuda-tests bench suite training synthesis}"
  SLOW=1
  BENCH=(--rounds 5)
  TRAINING=(--size 256 --batch 64 --steps 150)
  SYNTHESIS=()
fi
DEADLINE="${DEADLINE:-$((540 * SLOW))}"  # a rehearsal's doubled caps add up to twice the GPU call's
for name in $STEPS; do  # a misspelt step would run nothing and exit 0, the call spent
  case " cuda-tests bench suite training synthesis " in *" $name "*) ;; *)
    echo "gpu_check.sh: unknown step '$name' in STEPS; the steps are: cuda-tests bench suite training synthesis" >&2
    exit 2 ;;
  esac
done
unwritable() {
  echo "error: cannot write to OUT=$OUT: give a writable folder" >&2
  exit 2
}
mkdir -p "$OUT" 2>/dev/null && [ -w "$OUT" ] || unwritable  # before torch is imported, let alone a step run
# the first Python that has torch: $PYTHON, the README's .venv, python3 (an image may have no `python`), python
PY=
for candidate in ${PYTHON:+"$PYTHON"} .venv/bin/python "$(command -v python3)" "$(command -v python)"; do
  [ -n "$candidate" ] && "$candidate" -c "import torch" 2>/dev/null && { PY=$candidate; break; }
done
if [ -z "$PY" ]; then
  echo "error: no Python here can import torch (PYTHON, .venv/bin/python, python3, python): set PYTHON to the one that has it" >&2
  exit 2
fi
{ : > "$OUT/summary.txt"; } 2>/dev/null || unwritable  # this call's steps only
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
started=$SECONDS

{
  if [ -n "${WHEELS:-}" ]; then
    wheels=("$WHEELS"/*.whl) why=
    if [ ! -d "$WHEELS" ]; then
      why="no such folder"
    elif [ ! -e "${wheels[0]}" ]; then
      why="the folder holds no .whl file"
    # an image's system Python may be "externally managed": these wheels go into it all the same
    elif ! PIP_BREAK_SYSTEM_PACKAGES=1 "$PY" -m pip install -q --no-index --find-links "$WHEELS" "${wheels[@]}" \
        2>&1; then
      why="machine.txt says why"
    fi
    if [ -n "$why" ]; then
      echo "wheels from $WHEELS: not installed ($why)" | tee -a "$OUT/summary.txt"
      failed=1
    fi
  fi
  echo "DEADLINE=${DEADLINE} s for all steps, each step's cap x${SLOW}"
  timeout 20 nvidia-smi 2>&1  # (a wedged driver can hang it: the call's time is for the steps)
  timeout --kill-after=5 "$CUDA_INIT_TIMEOUT" "$PY" - 2>&1 <<'PY'
import torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
print("torch", torch.__version__, "cuda", torch.version.cuda, gpu)
PY
  rc=$?  # 124 or 137: it hung, and the check below would hang as long
} > "$OUT/machine.txt"
if [ -z "${REHEARSE:-}" ]; then
  if [ "$rc" != 124 ] && [ "$rc" != 137 ]; then
    timeout --kill-after=5 "$CUDA_INIT_TIMEOUT" "$PY" -c "import sys, torch; sys.exit(not torch.cuda.is_available())" \
      2>/dev/null
    rc=$?
  fi
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    echo "error: CUDA initialisation hung after $CUDA_INIT_TIMEOUT s (torch.cuda in $PY): the GPU or its driver is" \
      "wedged, so no step can use it; try another machine" | tee -a "$OUT/summary.txt" >&2
    exit 2
  elif [ "$rc" != 0 ]; then
    # every step would run on the CPU (the cuda tests skipped, "exit 0"), spending the GPU call's time for nothing
    echo "error: $PY's torch sees no CUDA GPU (machine.txt says why): set PYTHON to one whose torch does" |
      tee -a "$OUT/summary.txt" >&2
    exit 2
  fi
fi

step() {  # step NAME CAP_SECONDS COMMAND...: run it if STEPS names it, within its cap and what is left
  local name=$1 cap=$2 left limit began rc
  shift 2
  case " $STEPS " in *" $name "*) ;; *) return 0 ;; esac
  rm -f "$OUT/$name.txt"  # an earlier call's output is not this one's
  left=$((DEADLINE - (SECONDS - started)))
  if [ "$left" -lt 30 ]; then
    echo "$name: not run, ${left}s left of DEADLINE=${DEADLINE}s" >> "$OUT/summary.txt"
    failed=1
    return 0
  fi
  cap=$((cap * SLOW))
  limit=$((cap < left ? cap : left))
  began=$SECONDS
  timeout --signal=INT --kill-after=15 "$limit" "$@" > "$OUT/$name.txt" 2>&1
  rc=$?
  [ "$rc" = 0 ] || failed=1
  # 124: stopped at the limit; 137: killed 15 s later, as a step that ignored the stop (a hung CUDA call)
  late=$([ "$rc" = 124 ] || { [ "$rc" = 137 ] && [ $((SECONDS - began)) -ge "$limit" ]; } && echo ', timed out')
  echo "$name: exit $rc after $((SECONDS - began)) s (limit ${limit} s)$late" >> "$OUT/summary.txt"
}

# a test module that cannot be imported on this machine is reported, and the others still run
step cuda-tests 90 "$PY" -m pytest -q -p no:cacheprovider --continue-on-collection-errors -m cuda tests -rs
step bench 180 "$PY" benchmarks/pipeline_speed.py --device "$DEVICE" "${BENCH[@]}"
step training 210 "$PY" benchmarks/training_speed.py --device "$DEVICE" "${TRAINING[@]}"
step synthesis 60 "$PY" benchmarks/synthesis_speed.py ${SYNTHESIS[@]+"${SYNTHESIS[@]}"}
parallel=()  # pytest-xdist, where the machine has it: the suite in 8 processes
"$PY" -c "import xdist" 2>/dev/null && parallel=(-n 8)
step suite 300 "$PY" -m pytest -q -p no:cacheprovider --continue-on-collection-errors ${parallel[@]+"${parallel[@]}"} \
  -m "not cuda" tests -rs

cat "$OUT/summary.txt"
for name in $STEPS; do
  [ -f "$OUT/$name.txt" ] && { echo "== $name"; tail -n 14 "$OUT/$name.txt"; }
done
exit "$failed"
