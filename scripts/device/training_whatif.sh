#!/bin/bash
# Usage (device tool, from the repository root, one call): LIMIT=540 bash scripts/device/training_whatif.sh
# Bit checks on the GPU (MUTANTS=1: and the K split's planted bugs), the engine and Linear
# benchmarks (SKIP_BENCH=1: none; SKIP_LINEAR=1: no Linear), the step time with and without
# the K split (SKIP_STEP=1: none), then study 06 in the time left, under MPS where it works
# (NO_MPS=1: never; JOBS: runs at once, 4 under MPS, else 3); all under $OUT.
# the device call: environment, GPU bit checks, benchmarks, then the study in the time left
START=$(date +%s)
LIMIT=${LIMIT:-540}
cd "$(dirname "$0")/../.."
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
L=$OUT/log.txt
left() { echo $(( LIMIT - ($(date +%s) - START) )); }
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, cupy, numba, numpy, ml_dtypes, matplotlib, tqdm; print('torch', torch.__version__, 'cupy', cupy.__version__, 'numba', numba.__version__, 'numpy', numpy.__version__, torch.cuda.get_device_name())"
  python3 --version; } >> $L 2>&1
echo "== gpu_check" >> $L
timeout ${CHECK_S:-150} python3 scripts/device/gpu_check.py > /tmp/gpu_check.txt 2>&1; echo "gpu_check rc=$?" >> /tmp/gpu_check.txt
grep -E "^(OK|FAIL)|failures|rc=" /tmp/gpu_check.txt >> $L; grep -A12 "^FAIL" /tmp/gpu_check.txt | head -60 >> $L
echo "== bench_gpu $(left)s left" >> $L
[ -n "$SKIP_BENCH" ] || timeout 40 python3 scripts/bench_gpu.py --sizes 4096 --promotes 0,128 --reps 3 --json $OUT/bench_gpu.json >> $L 2>&1; echo "rc=$?" >> $L
echo "== bench_gpu_linear $(left)s left" >> $L
[ -n "$SKIP_BENCH$SKIP_LINEAR" ] || timeout 60 python3 scripts/bench_gpu_linear.py --size 4096 --reps 3 --json $OUT/bench_linear.json >> $L 2>&1; echo "rc=$?" >> $L
echo "== step bench $(left)s left" >> $L
export FP8SIM_GPU_K_SPLIT=1  # the study and the first step bench: intervals in parallel
if grep -q "^FAIL engine" /tmp/gpu_check.txt; then export FP8SIM_GPU_K_SPLIT=0; echo "K split off: its checks failed" >> $L; fi
if [ -z "$SKIP_STEP" ]; then
  timeout 45 python3 experiments/06_training_whatif.py --step-bench 5 >> $L 2>/tmp/step_stderr.txt; echo "rc=$?" >> $L
  tail -5 /tmp/step_stderr.txt >> $L
  echo "== step bench, K split off" >> $L
  [ $(left) -gt 60 ] && FP8SIM_GPU_K_SPLIT=0 timeout 45 python3 experiments/06_training_whatif.py --step-bench 5 >> $L 2>/tmp/step_stderr.txt; echo "rc=$?" >> $L
fi
if [ -n "$MUTANTS" ] && [ $(left) -gt 100 ]; then
  echo "== gpu_mutants $(left)s left" >> $L; timeout $(( $(left) - 20 )) python3 scripts/device/gpu_mutants.py >> $L 2>&1
fi
R=experiments/results/06_training_whatif
if [ -f $R.csv ] && ! grep -q ",cpu," $R.csv; then  # resume the committed GPU run
  cp $R.csv $OUT/training_whatif.csv; cp ${R}_timing.csv $OUT/training_whatif_timing.csv 2>/dev/null
  echo "resuming from $R.csv ($(wc -l < $R.csv) lines)" >> $L
fi
# MPS lets the runs' kernels share the SMs (the promote-never GEMMs leave most of them idle);
# kept only when a CUDA client works under it
if [ -z "$NO_MPS" ] && command -v nvidia-cuda-mps-control > /dev/null; then
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p /tmp/mps /tmp/mps-log; nvidia-cuda-mps-control -d >> $L 2>&1; sleep 1
  if timeout 60 python3 -c "import torch; print(float(torch.ones(8, device='cuda').sum()))" > /dev/null 2>&1; then
    echo "MPS on" >> $L; JOBS=${JOBS:-4}
  else
    echo quit | nvidia-cuda-mps-control; unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    echo "MPS off: no CUDA client worked under it" >> $L; tail -3 /tmp/mps-log/*.log >> $L 2>/dev/null
  fi
fi
B=$(( $(left) - 35 ))
echo "== study budget ${B}s" >> $L
[ $B -gt 30 ] && timeout $(( B + 30 )) python3 experiments/06_training_whatif.py --out $OUT --jobs ${JOBS:-3} --budget-s $B 2> /tmp/study_stderr.txt
echo "study rc=$?" >> $L
[ -n "$CUDA_MPS_PIPE_DIRECTORY" ] && echo quit | nvidia-cuda-mps-control
tr '\r' '\n' < /tmp/study_stderr.txt | grep -v "it/s\]\|s/it\]\|^ *$" > $OUT/study_stderr.txt
tail -25 $OUT/study_stderr.txt >> $L
wc -l $OUT/training_whatif.csv >> $L
cat $L
