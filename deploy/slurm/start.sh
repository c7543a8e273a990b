#!/usr/bin/env bash
# Start a single-node Slurm (Debian 12 slurm-wlm 22.05) with munge on this machine, without systemd.
#
#   bash deploy/slurm/start.sh          # as root
#   bash deploy/slurm/stop.sh           # stops exactly the daemons this script started
#
# What it does, in order:
#   1. installs munge, slurmctld, slurmd and slurm-client when missing (no recommends, daemons kept
#      from starting during the install);
#   2. starts munged as user munge (a munged already running is used, never stopped);
#   3. when no slurmctld/slurmd of ours runs: writes /etc/slurm/slurm.conf for this one node (node
#      line from `slurmd -C`, so --mem requests fit; partition $SLURM_PARTITION; no accounting, no
#      cgroups), then starts slurmctld -D -c (clean state) and slurmd -D in the background;
#   4. waits until the node is idle and a probe batch job has completed.
# Running it again while Slurm is up only re-runs the probe. The PIDs it started are recorded in
# $STATE/slurm.pids (name, pid, start time) as soon as each daemon is up.
#
# Settings (environment): SLURM_PARTITION (debug), SLURM_NODE_CPUS (CPUs to advertise, default: all;
# more than there are is allowed), SLURM_READY_TIMEOUT (120 s), FINDSPOTS_SCHED_STATE (/run/findspots-sched).
set -Eeuo pipefail

readonly CONF=/etc/slurm/slurm.conf LOGS=/var/log/slurm SPOOL=/var/lib/slurm
readonly PACKAGES=(munge slurm-client slurmctld slurmd)
PARTITION=${SLURM_PARTITION:-debug}
TIMEOUT=${SLURM_READY_TIMEOUT:-120}
STATE=${FINDSPOTS_SCHED_STATE:-/run/findspots-sched}
PIDS=$STATE/slurm.pids
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DEPLOY=$(dirname "$HERE")
OWN_POLICY=""

say() { printf 'slurm/start: %s\n' "$*"; }
fail() { printf 'slurm/start: FAILED: %s\n' "$*" >&2; exit 1; }
cleanup() { if [ -n "$OWN_POLICY" ]; then rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT
trap 'fail "line $LINENO: \"$BASH_COMMAND\" exited with $?"' ERR
T0=$SECONDS

# ---- helpers -------------------------------------------------------------------------------------
# shellcheck source-path=SCRIPTDIR source=../lib/daemons.sh
source "$DEPLOY/lib/daemons.sh"  # starttime, other_pid, recorded_pid, record
record_ours() { # rewrite the pid file with the daemons of ours that run now
    record munged "${OURS[munged]:-}" slurmctld "${OURS[slurmctld]:-}" slurmd "${OURS[slurmd]:-}"
}
alive() { [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }

# ---- 1. packages ---------------------------------------------------------------------------------
install_packages() {
    local missing=() p log=$STATE/apt-slurm.log
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    if [ ! -e /usr/sbin/policy-rc.d ]; then   # no daemon may start from a maintainer script
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        OWN_POLICY=1
    fi
    apt_install() {
        DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 \
            install --no-install-recommends "${PACKAGES[@]}" >>"$log" 2>&1
    }
    : >"$log"
    if ! apt_install; then   # stale package lists: refresh once and retry
        apt-get -q -o DPkg::Lock::Timeout=600 update >>"$log" 2>&1 || true
        apt_install || fail "apt-get install ${PACKAGES[*]} failed (log: $log)"
    fi
    if [ -n "$OWN_POLICY" ]; then rm -f /usr/sbin/policy-rc.d; OWN_POLICY=""; fi
    rm -f "$log"
    say "packages installed ($(( SECONDS - T0 )) s)"
}

# ---- 2. munge ------------------------------------------------------------------------------------
start_munge() {
    OURS[munged]=$(recorded_pid munged)
    local other
    other=$(other_pid munged)
    if [ -z "${OURS[munged]}" ] && [ -n "$other" ]; then
        say "using the munged that already runs (pid $other; not ours, so stop.sh leaves it)"
    elif [ -z "${OURS[munged]}" ]; then
        if [ ! -s /etc/munge/munge.key ]; then    # the package's postinst normally creates it
            install -d -m 700 -o munge -g munge /etc/munge
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 400 /etc/munge/munge.key
        install -d -m 755 -o munge -g munge /run/munge
        install -d -m 700 -o munge -g munge /var/lib/munge /var/log/munge
        # --force: a munged killed hard leaves its socket and lock behind
        runuser -u munge -- /usr/sbin/munged --force
        local t=$SECONDS pid=""
        until pid=$(cat /run/munge/munged.pid 2>/dev/null) && alive "$pid" munged; do
            [ $(( SECONDS - t )) -lt 10 ] || fail "munged did not start (see /var/log/munge/munged.log)"
            sleep 0.1
        done
        OURS[munged]=$pid
        record_ours
        say "munged started (pid $pid)"
    fi
    munge -n | unmunge >/dev/null 2>&1 || fail "munge cannot decode its own credential (munge -n | unmunge)"
}

# ---- 3. configuration and daemons -----------------------------------------------------------------
write_conf() {
    local node cpus want memory extra=""
    node=$(slurmd -C | head -n 1)     # NodeName=<host> CPUs=... RealMemory=...
    cpus=$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node")
    want=${SLURM_NODE_CPUS:-$cpus}
    if [ "$want" != "$cpus" ]; then
        memory=$(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
        node="NodeName=$HOST CPUs=$want RealMemory=$memory"
        extra="SlurmdParameters=config_overrides"   # or slurmd drains the node for the CPU mismatch
    fi
    mkdir -p /etc/slurm
    install -d -o slurm -g slurm "$SPOOL/slurmctld" "$SPOOL/slurmd" "$LOGS"
    cat >"$CONF" <<EOF
# One-node Slurm written by findspots deploy/slurm/start.sh; rewritten at every fresh start.
ClusterName=findspots
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
StateSaveLocation=$SPOOL/slurmctld
SlurmdSpoolDir=$SPOOL/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# no cgroups, no accounting daemon: nothing here needs systemd
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
Waittime=0
$extra
$node State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
    say "wrote $CONF ($node)"
}

start_daemon() { # start_daemon NAME ARGS...: run it in the foreground mode, in the background
    local name=$1; shift
    nohup "/usr/sbin/$name" "$@" >>"$LOGS/$name.out" 2>&1 </dev/null &
    OURS[$name]=$!
    record_ours
    sleep 0.2
    alive "${OURS[$name]}" "$name" || fail "$name exited at once (see $LOGS/$name.log and $LOGS/$name.out)"
    say "$name started (pid ${OURS[$name]})"
}

start_slurm() {
    OURS[slurmctld]=$(recorded_pid slurmctld)
    OURS[slurmd]=$(recorded_pid slurmd)
    local name other
    for name in slurmctld slurmd; do
        other=$(other_pid "$name" "${OURS[$name]}")
        [ -z "$other" ] || fail "a $name not started by this script runs (pid $other); stop it first"
    done
    if [ -z "${OURS[slurmctld]}${OURS[slurmd]}" ]; then
        write_conf
    else
        say "slurmctld/slurmd already running (pids ${OURS[slurmctld]:-none} ${OURS[slurmd]:-none})"
    fi
    # -c: forget jobs and node states of an earlier run
    [ -n "${OURS[slurmctld]}" ] || start_daemon slurmctld -D -c -f "$CONF"
    [ -n "${OURS[slurmd]}" ] || start_daemon slurmd -D -f "$CONF"
}

# ---- 4. readiness --------------------------------------------------------------------------------
wait_ready() {
    local t=$SECONDS state="" job
    until state=$(sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null) && [[ $state =~ ^(idle|mixed|allocated) ]]; do
        [ $(( SECONDS - t )) -lt "$TIMEOUT" ] \
            || fail "node $HOST is '${state:-unknown}' after $TIMEOUT s (see $LOGS/slurmctld.log, $LOGS/slurmd.log)"
        sleep 0.2
    done
    # sbatch --wait polls with growing intervals (seconds late); poll the job state instead
    if ! job=$(sbatch --parsable -p "$PARTITION" -J findspots-probe -o /dev/null --wrap true 2>&1) \
        || ! [[ $job =~ ^[0-9]+ ]]; then
        fail "could not submit the probe job: $job"
    fi
    job=${job%%;*}
    until state=$(scontrol -o show job "$job" 2>/dev/null | grep -o 'JobState=[A-Z_]*') \
        && [ "$state" = JobState=COMPLETED ]; do
        case $state in
            JobState=PENDING | JobState=CONFIGURING | JobState=RUNNING | JobState=COMPLETING | "") ;;
            *) fail "the probe job $job ended as ${state#JobState=} (see $LOGS/slurmd.log)" ;;
        esac
        [ $(( SECONDS - t )) -lt "$TIMEOUT" ] || fail "the probe job $job did not complete in $TIMEOUT s (${state:-no state})"
        sleep 0.2
    done
    say "probe job $job ran ($(( SECONDS - t )) s after the daemons)"
}

[ "$(id -u)" = 0 ] || fail "must run as root"
for knob in SLURM_READY_TIMEOUT SLURM_NODE_CPUS; do
    [ -z "${!knob:-}" ] || [[ ${!knob} =~ ^[1-9][0-9]*$ ]] || fail "$knob must be a positive whole number, not '${!knob}'"
done
mkdir -p "$STATE"
declare -A OURS=()
install_packages
HOST=$(hostname -s)
getent hosts "$HOST" >/dev/null || { say "adding '127.0.0.1 $HOST' to /etc/hosts"; echo "127.0.0.1 $HOST" >>/etc/hosts; }
start_munge
start_slurm
wait_ready
# what the pid file says must still be the running daemons (stop.sh relies on it)
for name in "${!OURS[@]}"; do
    [ -z "${OURS[$name]}" ] || [ "$(recorded_pid "$name")" = "${OURS[$name]}" ] \
        || fail "the recorded pid of $name (${OURS[$name]}, $PIDS) is no longer that daemon"
done
cat <<EOF
slurm/start: Slurm ready on $HOST in $(( SECONDS - T0 )) s: partition $PARTITION, $(sinfo -h -N -n "$HOST" -o '%c') CPUs (munged ${OURS[munged]:-not ours}, slurmctld ${OURS[slurmctld]}, slurmd ${OURS[slurmd]}; $PIDS)
  logs: $LOGS/slurmctld.log $LOGS/slurmd.log
  PBS-style qsub/qstat/qdel over this Slurm: eval "\$(bash $DEPLOY/pbs/torque-wrappers.sh)"
  stop with: bash $HERE/stop.sh
EOF
