#!/bin/bash
# Usage (device tool, from the repository root, one call of at most 600 s):
#   bash scripts/device/followup.sh
# The dense recording of per-tensor fast accumulation (record_cublaslt.sh, tensor-fast only),
# packed as $OUT/rec.tar, then study 06 (training_whatif.sh without the engine benchmark);
# 7 files under $OUT. The card's name is read from nvidia-smi.
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | grep -o 'H[12]00' | head -1)
mkdir -p /tmp/r
OUT=/tmp/r FAMILIES=tensor-fast CAPTURES=12 timeout 170 \
  bash scripts/device/record_cublaslt.sh ${CARD:-H100} 5 160 150 > /tmp/r/stdout.txt 2>&1
tail -5 /tmp/r/log.txt; tar cf $OUT/rec.tar -C /tmp/r .
SKIP_BENCH=1 LIMIT=${LIMIT:-410} bash scripts/device/training_whatif.sh
cd $OUT && tar cf extra.tar $(ls bench_*.json study_stderr.txt 2>/dev/null) --remove-files
ls -la $OUT
