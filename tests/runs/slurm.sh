#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for fuselab's cluster tests and for trying the
# hydra/launcher=slurm preset locally (root, Debian/Ubuntu; no systemd needed).
#   tests/runs/slurm.sh up     install slurm-wlm and munge if missing, start munged, slurmctld, slurmd
#   tests/runs/slurm.sh env    print the export that points sbatch/squeue/sacct at this cluster
#   tests/runs/slurm.sh down   stop the daemons and remove the state
# State (config, spool, logs) lives in $FUSELAB_SLURM_DIR (default /tmp/fuselab-slurm).
# No accounting daemon (slurmdbd): fuselab's sweep bookkeeping reads each job's summary.json,
# not sacct (see README, "Clusters").
set -euo pipefail
DIR="${FUSELAB_SLURM_DIR:-/tmp/fuselab-slurm}"
CONF="$DIR/slurm.conf"

install() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    if [ "$(id -u)" != 0 ]; then echo "slurm.sh: slurm-wlm and munge are missing and this is not root" >&2; exit 2; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$DIR/apt.log" 2>&1 \
      || { apt-get update -q >>"$DIR/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >>"$DIR/apt.log" 2>&1; } \
      || { echo "slurm.sh: apt-get install slurm-wlm munge failed (see $DIR/apt.log)" >&2; exit 2; }
  fi
}

write_conf() {
  local node
  node="$(slurmd -C | head -1)"
  cat >"$CONF" <<CONF
ClusterName=fuselab
SlurmctldHost=$(hostname -s)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MinJobAge=600
KillWait=10
$node State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
}

up() {
  mkdir -p "$DIR/state" "$DIR/spool"
  install
  if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge && dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    chown munge:munge /etc/munge/munge.key 2>/dev/null || true
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge 2>/dev/null || true
  if ! munge -n >/dev/null 2>&1; then
    if id munge >/dev/null 2>&1; then su -s /bin/sh munge -c munged 2>/dev/null || munged --force; else munged --force; fi
  fi
  write_conf
  export SLURM_CONF="$CONF"
  if pgrep -f "^slurmctld" >/dev/null && ! pgrep -f "slurmctld -f $CONF" >/dev/null; then
    echo "slurm.sh: another slurmctld runs on this machine (stop it, or run 'slurm.sh down' with its FUSELAB_SLURM_DIR)" >&2
    exit 1
  fi
  pgrep -f "slurmctld -f $CONF" >/dev/null || slurmctld -f "$CONF"
  pgrep -f "slurmd -f $CONF" >/dev/null || slurmd -f "$CONF"
  for _ in $(seq 1 60); do
    if timeout 5 sinfo -h -o "%t" 2>/dev/null | grep -Eq "^(idle|mix|alloc)"; then
      echo "slurm.sh: cluster up ($(sinfo -h -o '%N %c CPUs %t')); export SLURM_CONF=$CONF"
      return 0
    fi
    sleep 1
  done
  echo "slurm.sh: the node did not come up; see $DIR/slurmctld.log and $DIR/slurmd.log" >&2
  exit 1
}

down() {
  export SLURM_CONF="$CONF"
  [ -f "$CONF" ] && timeout 10 scancel --quiet --full --user="$(id -un)" 2>/dev/null || true
  pkill -f "slurmd -f $CONF" 2>/dev/null || true
  pkill -f "slurmctld -f $CONF" 2>/dev/null || true
  for _ in $(seq 1 20); do  # the daemons (and slurmctld's slurmscriptd) exit within seconds
    pgrep -f "slurm(ctl)?d -f $CONF|^: slurmscriptd" >/dev/null || break
    sleep 0.5
  done
  pkill -9 -f "slurm(ctl)?d -f $CONF|^: slurmscriptd" 2>/dev/null || true
  rm -rf "$DIR"
  echo "slurm.sh: cluster down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
