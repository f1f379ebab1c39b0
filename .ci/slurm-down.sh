#!/usr/bin/env bash
# Stop exactly the SLURM daemons that .ci/slurm-up.sh started (PIDs from
# $SLURM_CI_STATE_DIR/pids), in reverse order: slurmd, slurmctld, munged.
# Daemons it did not start are left alone. Safe to run twice.
set -euo pipefail

STATE_DIR=${SLURM_CI_STATE_DIR:-/run/nnip-slurm-ci}
PIDS="$STATE_DIR/pids"

log() { echo "slurm-down: $*" >&2; }

if [[ ! -f $PIDS ]]; then
    log "no $PIDS: nothing was started by slurm-up.sh"
    exit 0
fi

# The process name must still match, so a recycled PID is never signalled.
alive() { [[ $(cat "/proc/$2/comm" 2>/dev/null) == "$1" ]]; }

tac "$PIDS" | while read -r name pid; do
    [[ -n ${name:-} && -n ${pid:-} ]] || continue
    if ! alive "$name" "$pid"; then
        log "$name ($pid) already gone"
        continue
    fi
    kill -TERM "$pid"
    for ((i = 0; i < 50; i++)); do
        alive "$name" "$pid" || break
        sleep 0.2
    done
    if alive "$name" "$pid"; then
        log "$name ($pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid"
    fi
    log "stopped $name ($pid)"
done
rm -f "$PIDS"
