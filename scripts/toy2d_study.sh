#!/bin/bash
# The 2D convergence study from one command, as shard K of 2 (two processes, one per core):
#   nohup setsid bash scripts/toy2d_study.sh K SWEEP_DIR GRID_DIR > LOG 2>&1 < /dev/null &
# for K = 0 and 1. It trains at nice 19 (idle CPU only). Shard K finishes shard K of the 2D
# learning-rate sweep; once both shards have finished it, shard 0 writes the sweep's report
# (SWEEP_DIR/toy2d_convergence_table.md); then shard K of the full 2D grid at
# the learning rate the sweep selects (--lr_from: toy2d_report.choose_lr); shard 0 writes the
# grid's report at the end. Every step is resumable: rerun the same command after a kill
# (finished runs are skipped, an interrupted one resumes from its checkpoint).
set -u
if [ $# -ne 3 ] || { [ "$1" != 0 ] && [ "$1" != 1 ]; }; then
  echo "usage: toy2d_study.sh K SWEEP_DIR GRID_DIR (K: 0 or 1, the shard)" >&2
  exit 2
fi
K=$1
SWEEP_DIR=$(realpath -m "$2")
GRID_DIR=$(realpath -m "$3")
FLAGS=$GRID_DIR/flags
mkdir -p "$FLAGS"
cd "$(dirname "$0")/.."
COMMON=(--num_steps 3000 --evals 10 --batch_size 256 --seeds 0,1,2,3,4)
SWEEP=(python scripts/toy2d_convergence.py "$SWEEP_DIR" --methods r1 unregularized
       --lrs 0.1,0.03,0.01 "${COMMON[@]}")
GRID=(python scripts/toy2d_convergence.py "$GRID_DIR" --methods unregularized
      non_saturating wgan wgan_gp instance_noise conopt r1 r2 r1_r2 dragan roth
      --problems gaussian line circle four_lines ring8 --lr_from "$SWEEP_DIR"
      "${COMMON[@]}")
wait_for() { while [ ! -e "$FLAGS/$1" ]; do sleep 60; done; }

nice -n 19 "${SWEEP[@]}" --shard "$K/2" --train_only || exit 1
touch "$FLAGS/sweep_done_$K"
if [ "$K" = 0 ]; then
  wait_for sweep_done_1
  nice -n 19 "${SWEEP[@]}" --report_only || exit 1
  touch "$FLAGS/sweep_report_done"
fi
wait_for sweep_report_done
nice -n 19 "${GRID[@]}" --shard "$K/2" --train_only || exit 1
touch "$FLAGS/grid_done_$K"
if [ "$K" = 0 ]; then
  wait_for grid_done_1
  nice -n 19 "${GRID[@]}" --report_only || exit 1
  touch "$FLAGS/grid_report_done"
fi
