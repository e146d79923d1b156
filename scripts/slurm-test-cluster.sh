#!/usr/bin/env bash
# A throw-away Slurm cluster on 127.0.0.1 for tests and benchmarks of the Slurm backend:
# its own munged, slurmctld and N slurmd ("emulated nodes", default 4) with G fake GPUs each (default 4).
# Everything (config, spool, logs, pid files, munge socket, fake GPU files) lives in one directory,
# so it neither needs nor touches /etc/slurm, and several can coexist on different ports.
#
#   scripts/slurm-test-cluster.sh start DIR   # prints: export SLURM_CONF=DIR/slurm.conf
#   scripts/slurm-test-cluster.sh stop DIR    # stops what `start DIR` started, by pid file
#
# Environment: SLURM_TEST_NODES (4), SLURM_TEST_GPUS (4), SLURM_TEST_CPUS (8),
# SLURM_TEST_PORT (6817; slurmd ports are PORT+1..PORT+N). Needs root and Debian's slurm-wlm + munge
# (`apt-get install -y --no-install-recommends slurm-wlm munge`).
set -euo pipefail
cmd=${1:?start|stop|wait DIR}; dir=${2:?DIR}
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
nodes=${SLURM_TEST_NODES:-4}; gpus=${SLURM_TEST_GPUS:-4}; cpus=${SLURM_TEST_CPUS:-8}
port=${SLURM_TEST_PORT:-6817}
export SLURM_CONF=$dir/slurm.conf

stop() {
  for f in "$dir"/run/slurmd-*.pid "$dir"/run/slurmctld.pid "$dir"/run/munged.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  done
  for f in "$dir"/run/slurmd-*.pid "$dir"/run/slurmctld.pid "$dir"/run/munged.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f" 2>/dev/null || true)
    for _ in $(seq 50); do { [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; } || break; sleep 0.1; done
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    rm -f "$f"
  done
  # job steps outlive a killed slurmd (slurmstepd, working in this cluster's log directory)
  for pid in $(pgrep -x slurmstepd 2>/dev/null || true); do
    case "$(readlink "/proc/$pid/cwd" 2>/dev/null)" in "$dir"/*) kill -9 "$pid" 2>/dev/null || true ;; esac
  done
}

wait_idle() {
  for _ in $(seq 300); do
    idle=$(sinfo -h -N -o '%N %T' 2>/dev/null | awk '$2=="idle"' | wc -l)
    [ "$idle" -ge "$nodes" ] && return 0
    # nodes that registered DOWN/DRAIN after a restart: resume them
    sinfo -h -N -o '%N %T' 2>/dev/null | awk '$2 ~ /down|drain|inval/ {print $1}' | while read -r n; do
      scontrol update nodename="$n" state=resume 2>/dev/null || true; done
    sleep 0.2
  done
  echo "slurm nodes not idle after 60 s:" >&2; sinfo -N >&2 || true; return 1
}

start() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null || {
    echo "slurm-wlm/munge not installed: apt-get install -y --no-install-recommends slurm-wlm munge" >&2; exit 3; }
  stop
  rm -rf "$dir/state" "$dir/spool" "$dir/log"
  mkdir -p "$dir/run" "$dir/state" "$dir/log" "$dir/gpu" "$dir/munge"
  chmod 700 "$dir/munge"
  [ -f "$dir/munge/munge.key" ] || { if [ -r /etc/munge/munge.key ]; then cp /etc/munge/munge.key "$dir/munge/munge.key";
    else dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none; fi; }
  chmod 400 "$dir/munge/munge.key"
  munged --force --socket="$dir/munge/munge.sock" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" --seed-file="$dir/munge/seed"
  host=$(hostname)
  local gres="" i n first
  for n in $(seq 1 "$nodes"); do
    mkdir -p "$dir/spool/node$n"
    first=$(( (n - 1) * gpus ))
    for i in $(seq "$first" $(( first + gpus - 1 ))); do
      # GPU gres needs File=; a char device (null's numbers) stands in for /dev/nvidiaN
      [ -e "$dir/gpu/fakegpu$i" ] || mknod "$dir/gpu/fakegpu$i" c 1 3 2>/dev/null || touch "$dir/gpu/fakegpu$i"
    done
    gres+="NodeName=node$n Name=gpu File=$dir/gpu/fakegpu[$first-$(( first + gpus - 1 ))]"$'\n'
  done
  cat > "$dir/slurm.conf" <<CONF
ClusterName=paitest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.sock
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
MpiDefault=none
SlurmdParameters=config_overrides
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=1000
MaxJobCount=100000
MinJobAge=60
KillWait=5
CONF
  for n in $(seq 1 "$nodes"); do
    echo "NodeName=node$n NodeHostname=$host NodeAddr=127.0.0.1 Port=$(( port + n )) CPUs=$cpus RealMemory=4000 Gres=gpu:$gpus State=UNKNOWN" >> "$dir/slurm.conf"
  done
  echo "PartitionName=pai Nodes=node[1-$nodes] Default=YES MaxTime=INFINITE State=UP" >> "$dir/slurm.conf"
  { echo "AutoDetect=off"; printf '%s' "$gres"; } > "$dir/gres.conf"
  slurmctld -f "$dir/slurm.conf"
  for n in $(seq 1 "$nodes"); do slurmd -f "$dir/slurm.conf" -N "node$n"; done
  wait_idle
  echo "export SLURM_CONF=$dir/slurm.conf"
}

case $cmd in
  start) start ;;
  stop) stop ;;
  wait) wait_idle ;;
  *) echo "usage: $0 start|stop|wait DIR" >&2; exit 2 ;;
esac
