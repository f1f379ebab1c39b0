#!/usr/bin/env bash
# Bring up a single-node SLURM (22.05, Debian packages) for CI, without systemd.
#
# One node ("ci-node", this host) with all its CPUs, most of its memory and one
# *declared* GPU (gres.conf points at /dev/null: there is no hardware; jobs see
# CUDA_VISIBLE_DEVICES=0 while torch.cuda.is_available() is False), in a
# partition named `a100`, as the workflow's training rules request, and in a
# partition named `cpu` for extraction and kappa (tests/test_slurm.py).
#
# No slurmdbd: `sacct` does not work here, so the Snakemake profile queries job
# status with `squeue`, and MinJobAge keeps finished jobs visible to `squeue`
# and `scontrol show job` for an hour (the tests read the partition and GRES of
# finished jobs from there).
#
# Root only. Installs the packages with apt-get when they are missing, writes
# /etc/slurm/{slurm,gres}.conf, creates a munge key when there is none, starts
# munged, slurmctld and slurmd by hand and waits until `sinfo` shows the node
# idle. The PIDs of the daemons it started go to $STATE_DIR/pids, which
# .ci/slurm-down.sh reads to stop exactly those. If a SLURM with an `a100`
# partition already answers, nothing is started or changed.
#
# Environment:
#   SLURM_CI_STATE_DIR  where the PID list goes (default /run/nnip-slurm-ci)
#   SLURM_CI_TIMEOUT    seconds to wait for the node to become idle (default 60)
set -euo pipefail

STATE_DIR=${SLURM_CI_STATE_DIR:-/run/nnip-slurm-ci}
TIMEOUT=${SLURM_CI_TIMEOUT:-60}
NODE=ci-node
CONF_DIR=/etc/slurm
LOG_DIR=/var/log/slurm

log() { echo "slurm-up: $*" >&2; }
die() {
    log "ERROR: $*"
    for f in "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd.log; do
        [[ -f $f ]] && { log "--- tail of $f"; tail -n 20 "$f" >&2; }
    done
    exit 1
}

if [[ $EUID -ne 0 ]]; then
    die "must run as root (it installs packages and starts daemons). As another user, run
  SKIP_SLURM=1 bash .ci/run   (everything but the SLURM tests, which then skip and say why)"
fi

if command -v sinfo >/dev/null 2>&1 && timeout 10 sinfo -h -p a100 -o %P 2>/dev/null | grep -q a100; then
    log "a SLURM with partition a100 already answers; starting nothing"
    timeout 10 sinfo -h -p cpu -o %P 2>/dev/null | grep -q cpu ||
        log "WARNING: it has no partition 'cpu'; the extraction/kappa SLURM test will fail"
    mkdir -p "$STATE_DIR"
    touch "$STATE_DIR/pids" # keep the PIDs of an earlier start for slurm-down.sh
    exit 0
fi

# --- packages --------------------------------------------------------------
PKGS=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/slurm-ci-apt.log 2>&1; then
        apt-get update >>/tmp/slurm-ci-apt.log 2>&1 || die "apt-get update failed (see /tmp/slurm-ci-apt.log)"
        apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/slurm-ci-apt.log 2>&1 ||
            die "apt-get install ${missing[*]} failed (see /tmp/slurm-ci-apt.log)"
    fi
fi

# --- munge -----------------------------------------------------------------
id munge >/dev/null 2>&1 || die "user munge does not exist after installing munge"
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    log "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

# --- configuration ---------------------------------------------------------
ncpu=$(nproc)
mem_total_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
real_mem_mb=$((mem_total_mb * 9 / 10))
install -d -m 0755 "$CONF_DIR" "$LOG_DIR" /var/spool/slurmctld /var/spool/slurmd /run/slurm
mkdir -p "$STATE_DIR"

cat >"$CONF_DIR/slurm.conf" <<EOF
# Written by .ci/slurm-up.sh: single-node CI cluster, no accounting database.
ClusterName=nnip-ci
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in the CI container.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Finished jobs stay visible to squeue/scontrol for an hour: the profile's
# squeue status query needs MinJobAge >= 3 x its initial status delay.
MinJobAge=3600
# Seconds between SIGTERM and SIGKILL at the time limit / on cancel / requeue.
KillWait=30
# Unknown partitions and time or memory over the limits fail at submission.
EnforcePartLimits=ALL
JobRequeue=1
# A requeued job may start again cred_expire+1 s later (default 121 s).
AuthInfo=cred_expire=20
ReturnToService=2
SlurmdTimeout=300
GresTypes=gpu
NodeName=$NODE NodeHostname=$(hostname -s) NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$real_mem_mb Gres=gpu:1 State=UNKNOWN
PartitionName=a100 Nodes=$NODE Default=YES MaxTime=2-00:00:00 DefaultTime=01:00:00 State=UP
# The CPU partition of extraction and kappa (config slurm.cpu_jobs.partition): same node.
PartitionName=cpu Nodes=$NODE MaxTime=1-00:00:00 DefaultTime=01:00:00 State=UP
EOF

cat >"$CONF_DIR/gres.conf" <<EOF
# Written by .ci/slurm-up.sh: a declared GPU without hardware.
NodeName=$NODE Name=gpu File=/dev/null
EOF

# --- daemons ---------------------------------------------------------------
: >"$STATE_DIR/pids"

wait_pidfile() { # wait_pidfile FILE NAME
    local i
    for ((i = 0; i < 50; i++)); do
        if [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; then
            echo "$2 $(cat "$1")" >>"$STATE_DIR/pids"
            return 0
        fi
        sleep 0.2
    done
    die "$2 did not start (no live PID in $1)"
}

if ! pgrep -u munge -x munged >/dev/null 2>&1; then
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged --pid-file=/run/munge/munged.pid ||
        die "munged failed to start"
    wait_pidfile /run/munge/munged.pid munged
else
    log "munged already running; not starting another"
fi
munge -n | unmunge >/dev/null || die "munge round trip failed"

# -c: start from a clean job state (no jobs left over from an earlier CI run).
/usr/sbin/slurmctld -c || die "slurmctld failed to start"
wait_pidfile /run/slurm/slurmctld.pid slurmctld
/usr/sbin/slurmd || die "slurmd failed to start"
wait_pidfile /run/slurm/slurmd.pid slurmd

deadline=$((SECONDS + TIMEOUT))
state=""
while ((SECONDS < deadline)); do
    state=$(sinfo -h -n "$NODE" -o %t 2>/dev/null || true)
    case $state in
    idle) break ;;
    down* | drain* | drng*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
    esac
    sleep 1
done
[[ $state == idle ]] || die "node $NODE not idle after ${TIMEOUT}s (state: '${state:-no answer}')"
log "up: partition a100, node $NODE, $ncpu CPUs, ${real_mem_mb} MB, gres gpu:1 (declared)"
sinfo -o "%P %D %t %c %m %G" >&2
