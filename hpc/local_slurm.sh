#!/bin/bash
# A two-node Slurm cluster on this one machine (slurmctld + two slurmd daemons, nodes n1 and n2, as root),
# to run the hpc/ scripts for real, across nodes: `srun --mpi=pmi2 -N 2 -n 4 --overcommit` gives one MPI
# world whose ranks see SLURMD_NODENAME n1 / n2 and SLURM_NODEID 0 / 1.
#
#   hpc/local_slurm.sh start [STATE_DIR]    install (apt) if needed, configure, start; prints the SLURM_CONF to export
#   hpc/local_slurm.sh stop  [STATE_DIR]    stop the daemons (by their pid files)
#
# Needs root and apt (Debian's slurm-wlm and munge). The tests call it; on a laptop, run it in a VM or container.
set -euo pipefail
ACTION=${1:-start}
STATE=${2:-/tmp/yprov4ml-slurm}
CONF="$STATE/slurm.conf"
# Tools that clear SLURM_* from a job's environment (Snakemake's Slurm job step) read the configuration
# where a real cluster keeps it: while this cluster runs, that place points at ours (when nothing else is there).
SYSTEM_CONF=/etc/slurm/slurm.conf

stop() {
    # end the jobs first: stopping the daemons alone would leave their processes running
    if [ -f "$CONF" ] && [ -f "$STATE/slurmctld.pid" ] && kill -0 "$(cat "$STATE/slurmctld.pid")" 2>/dev/null; then
        SLURM_CONF="$CONF" scancel --full --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 1 20); do
            [ -z "$(SLURM_CONF="$CONF" squeue -h 2>/dev/null)" ] && break
            sleep 0.5
        done
    fi
    for pid in "$STATE"/slurmd.*.pid "$STATE/slurmctld.pid"; do
        if [ -f "$pid" ]; then kill "$(cat "$pid")" 2>/dev/null || true; fi
    done
    sleep 1
    for pid in "$STATE"/slurmd.*.pid "$STATE/slurmctld.pid"; do
        if [ -f "$pid" ]; then kill -9 "$(cat "$pid")" 2>/dev/null || true; rm -f "$pid"; fi
    done
    if [ "$(readlink "$SYSTEM_CONF" 2>/dev/null)" = "$CONF" ]; then rm -f "$SYSTEM_CONF"; fi
}

if [ "$ACTION" = stop ]; then stop; exit 0; fi

[ "$(id -u)" = 0 ] || { echo "local_slurm: needs root (it installs packages and runs the daemons)" >&2; exit 3; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    command -v apt-get >/dev/null || { echo "local_slurm: no apt-get to install slurm-wlm and munge" >&2; exit 3; }
    (apt-get install -y -qq slurm-wlm munge >/dev/null 2>&1) || (apt-get update -qq && apt-get install -y -qq slurm-wlm munge >/dev/null)
fi

# munge: a key owned by munge, mode 400, and munged running as munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
mkdir -p /run/munge && chown munge:munge /run/munge
if ! pgrep -x munged >/dev/null; then
    if command -v runuser >/dev/null; then runuser -u munge -- /usr/sbin/munged; else su -s /bin/sh munge -c /usr/sbin/munged; fi
fi

stop
mkdir -p "$STATE/spool" "$STATE/state" "$STATE/log"
# Ports nothing listens on now: daemons of another cluster on this host (an earlier run left behind, the
# distribution's own service) would otherwise answer in our place — sinfo then reports *their* nodes idle,
# and srun's PMI2 looks for the job step's socket in our spool directory while theirs runs it.
read -r CTLD_PORT N1_PORT N2_PORT < <(python3 -c '
import socket
held = [socket.socket() for _ in range(3)]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))')
HOST=$(hostname -s)
CPUS=$(nproc)
MEM=$(( ($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 512) / 2 ))  # half the machine per node
cat > "$CONF" <<CONFEOF
ClusterName=yprov4ml
SlurmctldHost=$HOST
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool/%n
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.%n.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmi2
ReturnToService=2
KillWait=5
# Two nodes on this host: each its own name, its own port, the same address.
NodeName=n1 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$N1_PORT CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
NodeName=n2 NodeHostname=$HOST NodeAddr=127.0.0.1 Port=$N2_PORT CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
CONFEOF
export SLURM_CONF="$CONF"
if [ ! -e "$SYSTEM_CONF" ] || [ -L "$SYSTEM_CONF" ]; then mkdir -p "$(dirname "$SYSTEM_CONF")"; ln -sfn "$CONF" "$SYSTEM_CONF"; fi
slurmctld -c -f "$CONF"
slurmd -N n1 -f "$CONF"
slurmd -N n2 -f "$CONF"
ours_alive() {  # the daemons this script started, by their pid files — not whoever answers on a port
    for pid in "$STATE/slurmctld.pid" "$STATE/slurmd.n1.pid" "$STATE/slurmd.n2.pid"; do
        [ -f "$pid" ] && kill -0 "$(cat "$pid")" 2>/dev/null || return 1
    done
}
for _ in $(seq 1 60); do
    if ours_alive && [ "$(sinfo -h -o %T 2>/dev/null | grep -c idle)" -ge 1 ] && \
       [ "$(sinfo -h -N -o %T 2>/dev/null | grep -c idle)" -eq 2 ]; then echo "SLURM_CONF=$CONF"; exit 0; fi
    sleep 0.5
done
echo "local_slurm: the two nodes did not become idle; see $STATE/log:" >&2
tail -n 5 "$STATE"/log/*.log >&2 || true
exit 4
