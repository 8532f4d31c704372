#!/bin/bash
# Usage (device tool, from the repository root):
#   [FAMILIES=block1,...] bash scripts/device/record_cublaslt.sh H100|H200 [GRID_S] [TIMEOUT_S] [DENSE_S]
# Builds the probe, runs record.py all under it (captures, dense, grid, random) and packs the
# results into $OUT (5 files); then, here: tabulate.py (fp8sim/engine/CUBLASLT_SPLITS.md).
cd "$(dirname "$0")/../../fp8sim/capture/cublaslt_probe"
NV=$(python3 -c "import nvidia;print(list(nvidia.__path__)[0])")
INC=$NV/cu13/include; [ -f $INC/cublasLt.h ] || INC=/usr/local/cuda/include
gcc -O2 -shared -fPIC -I$INC -I/usr/local/cuda/include -o libltprobe.so interpose.c -ldl || exit 1
nvidia-smi --query-gpu=name,driver_version --format=csv
W=/tmp/rec; mkdir -p $W
LD_PRELOAD=$PWD/libltprobe.so FP8SIM_LT_LOG=/tmp/calls.jsonl PYTHONUNBUFFERED=1 \
  timeout ${3:-420} python3 record.py all --out $W --card $1 --budget ${2:-100} \
  --dense-budget ${4:-170} --captures ${CAPTURES:-72} ${FAMILIES:+--families $FAMILIES} 2>&1 \
  | tee $OUT/log.txt | tail -c 5000
grep -v '"tag":"grid' /tmp/calls.jsonl | gzip > $OUT/calls_nongrid.jsonl.gz
cp $W/env.json $W/captures.npz $OUT/ 2>/dev/null
(cd $W && gzip -f *.csv && tar cf $OUT/rec_csv.tar *.csv.gz)
ls -la $OUT $W; wc -l /tmp/calls.jsonl
