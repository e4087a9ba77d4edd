#!/usr/bin/env bash
# kinetics-dl on a Slurm cluster: one job array, each task one worker with its own output folder on local
# scratch. Submit with:
#
#   sbatch --array=0-15 deploy/slurm.sh            # 16 static shards (no database)
#   KINETICS_DL_DB=postgres://kdl@db/kinetics sbatch --array=0-15 deploy/slurm.sh   # 16 fleet workers
#
# Without KINETICS_DL_DB each task takes `--shard auto` (shard i of N from SLURM_ARRAY_TASK_ID/COUNT/MIN/
# STEP); join the shard folders afterwards with `kinetics-dl merge`. With it, the tasks pull clips from
# the fleet's database and every node is its own throttle domain (its host name). Nodes that leave the
# cluster through one NAT share one public IP: give them one domain (KDL_THROTTLE_DOMAIN=cluster-nat) and
# expect about 300 videos an hour for all of them together, not per node.
#SBATCH --job-name=kinetics-dl
#SBATCH --cpus-per-task=4
#SBATCH --mem=4G
#SBATCH --time=2-00:00:00
#SBATCH --output=kinetics-dl-%A_%a.log
set -euo pipefail

dataset=${KDL_DATASET:-k700-2020}
split=${KDL_SPLIT:-train}
out_root=${KDL_OUT_ROOT:-${SCRATCH:-$HOME}/kinetics-dl}
task=${SLURM_ARRAY_TASK_ID:?submit this script as a job array: sbatch --array=0-N deploy/slurm.sh}
out="$out_root/$dataset-$split-$task"
mkdir -p "$out"

if [[ -n "${KINETICS_DL_DB:-}" ]]; then
    # Fleet mode: the database (KINETICS_DL_DB) hands out the clips; the first task seeds the fleet.
    exec kinetics-dl download "$dataset" --split "$split" --out "$out" \
        --fleet "${KDL_FLEET:-$dataset-$split}" \
        --throttle-domain "${KDL_THROTTLE_DOMAIN:-$(hostname -s)}" \
        --jobs "${SLURM_CPUS_PER_TASK:-4}" --quiet
else
    # Static shards: each task takes its stable share of the plan from the array's variables.
    exec kinetics-dl download "$dataset" --split "$split" --out "$out" \
        --shard auto \
        --jobs "${SLURM_CPUS_PER_TASK:-4}" --quiet
fi
