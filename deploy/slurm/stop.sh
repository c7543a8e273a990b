#!/usr/bin/env bash
# Stop the daemons that deploy/slurm/start.sh started (slurmd, slurmctld, munged), and nothing else.
#
#   bash deploy/slurm/stop.sh
#
# Reads $STATE/slurm.pids (name, pid, start time); a recorded process counts as ours only while its
# pid, command name and start time all still match. Cancels the jobs left in the queue (so no
# slurmstepd outlives slurmd), sends SIGTERM to slurmd, slurmctld and munged, SIGKILL after
# SLURM_STOP_GRACE seconds (default 20), and removes the pid files that `slurmctld -D`/`slurmd -D`
# leave in /run (a stale /run/slurmctld.pid breaks `apt-get remove slurmctld`). A second run is a no-op.
# Settings (environment): SLURM_STOP_GRACE, FINDSPOTS_SCHED_STATE (/run/findspots-sched).
set -Eeuo pipefail

STATE=${FINDSPOTS_SCHED_STATE:-/run/findspots-sched}
PIDS=$STATE/slurm.pids
GRACE=${SLURM_STOP_GRACE:-20}

say() { printf 'slurm/stop: %s\n' "$*"; }
fail() { printf 'slurm/stop: FAILED: %s\n' "$*" >&2; exit 1; }
trap 'fail "line $LINENO: \"$BASH_COMMAND\" exited with $?"' ERR
T0=$SECONDS

# shellcheck source-path=SCRIPTDIR source=../lib/daemons.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/daemons.sh"  # is_ours, load_pids, stop_together

if [ ! -e "$PIDS" ]; then
    say "nothing to stop: no $PIDS (deploy/slurm/start.sh has not started Slurm)"
    exit 0
fi
[ "$(id -u)" = 0 ] || fail "must run as root"
[[ $GRACE =~ ^[0-9]+$ ]] || fail "the grace period must be a whole number of seconds, not '$GRACE'"

declare -A PID START
load_pids

if is_ours slurmctld "${PID[slurmctld]:-}" "${START[slurmctld]:-}"; then
    mapfile -t jobs < <(squeue -h -o %i 2>/dev/null || true)
    if [ ${#jobs[@]} -gt 0 ]; then
        say "cancelling ${#jobs[@]} job(s) left in the queue"
        scancel "${jobs[@]}" 2>/dev/null || true
        limit=$(( SECONDS + 15 ))
        while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && [ "$SECONDS" -lt "$limit" ]; do sleep 0.2; done
    fi
fi

stop_together slurmd slurmctld
stop_together munged     # last: the Slurm daemons use it while they shut down
rm -f "$PIDS"
say "Slurm stopped in $(( SECONDS - T0 )) s"
