#!/bin/bash
# Usage (device tool, from the repository root): [FAMILIES=block1] bash scripts/device/record_cublaslt.sh H100|H200 [BUDGET_S] [TIMEOUT_S]
# Writes the recording under $OUT; then, here: python fp8sim/capture/cublaslt_probe/tabulate.py (CUBLASLT_SPLITS.md).
# $1: card name. Builds the probe, runs record.py all under it, packs the results into $OUT.
cd "$(dirname "$0")/../../fp8sim/capture/cublaslt_probe"
NV=$(python3 -c "import nvidia;print(list(nvidia.__path__)[0])")
INC=$NV/cu13/include; [ -f $INC/cublasLt.h ] || INC=/usr/local/cuda/include
echo "include: $INC"; ls $NV | head -30
gcc -O2 -shared -fPIC -I$INC -I/usr/local/cuda/include -o libltprobe.so interpose.c -ldl || exit 1
nvidia-smi --query-gpu=name,driver_version --format=csv
LD_PRELOAD=$PWD/libltprobe.so FP8SIM_LT_LOG=/tmp/calls.jsonl PYTHONUNBUFFERED=1 \
  timeout ${3:-420} python3 record.py all --out $OUT --card $1 --budget ${2:-240} ${FAMILIES:+--families $FAMILIES} 2>&1 | tee $OUT/log.txt | tail -c 6000
grep -v '"tag":"grid' /tmp/calls.jsonl | gzip > $OUT/calls_nongrid.jsonl.gz
grep -m 300 '"tag":"grid' /tmp/calls.jsonl | gzip > $OUT/calls_grid_head.jsonl.gz
[ -f $OUT/grid.csv ] && gzip $OUT/grid.csv
ls -la $OUT; wc -l /tmp/calls.jsonl
