#!/bin/bash
# Usage (device tool, from the repository root, one call of at most 600 s):
#   bash scripts/device/followup.sh
# On an H200: the cuBLASLt recording of every family (packed as $OUT/rec.tar), then
# training_whatif.sh (bit checks and the K split's planted bugs, the engine benchmark: its
# TMAC/s target is set on the H200, step times, study 06 in the time left). On an H100
# (recorded already): the same without the recording, the engine benchmark and step times.
# The card's name is read from nvidia-smi.
CARD=$(nvidia-smi --query-gpu=name --format=csv,noheader | grep -o 'H[12]00' | head -1)
REC_S=0; SKIP=1; export SKIP_STEP=1 CHECK_S=${CHECK_S:-100}  # the H100's step times are in
if [ "$CARD" = H200 ]; then
  REC_S=300; SKIP=; unset SKIP_STEP
  mkdir -p /tmp/r
  OUT=/tmp/r CAPTURES=72 timeout $REC_S \
    bash scripts/device/record_cublaslt.sh H200 20 285 230 > /tmp/r/stdout.txt 2>&1
  tail -5 /tmp/r/log.txt; tar cf $OUT/rec.tar -C /tmp/r .
fi
MUTANTS=1 SKIP_LINEAR=1 SKIP_BENCH=$SKIP LIMIT=${LIMIT:-$(( 580 - REC_S ))} bash scripts/device/training_whatif.sh
cd $OUT && tar cf extra.tar $(ls bench_*.json study_stderr.txt 2>/dev/null) --remove-files
ls -la $OUT
