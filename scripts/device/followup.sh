#!/bin/bash
# Usage (device tool, from the repository root, one call of at most 600 s):
#   bash scripts/device/followup.sh
# On an H100: the dense recording of per-tensor fast accumulation (the one family the H100
# lacks); on an H200: every family. Packed as $OUT/rec.tar, then study 06
# (training_whatif.sh without the engine benchmark); 7 files under $OUT. The card's name is
# read from nvidia-smi.
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | grep -o 'H[12]00' | head -1)
if [ "$CARD" = H200 ]; then FAM=; REC_S=220; CAPS=72; else FAM=tensor-fast; REC_S=170; CAPS=12; fi
mkdir -p /tmp/r
OUT=/tmp/r FAMILIES=$FAM CAPTURES=$CAPS timeout $REC_S \
  bash scripts/device/record_cublaslt.sh ${CARD:-H100} 5 160 150 > /tmp/r/stdout.txt 2>&1
tail -5 /tmp/r/log.txt; tar cf $OUT/rec.tar -C /tmp/r .
SKIP_BENCH=1 LIMIT=${LIMIT:-$(( 580 - REC_S ))} bash scripts/device/training_whatif.sh
cd $OUT && tar cf extra.tar $(ls bench_*.json study_stderr.txt 2>/dev/null) --remove-files
ls -la $OUT
