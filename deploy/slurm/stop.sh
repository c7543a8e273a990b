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

starttime() { awk '{sub(/^.*\) /, ""); print $20}' "/proc/$1/stat" 2>/dev/null; }
is_ours() { # is_ours NAME PID START: that very process still runs
    [ -n "$2" ] && [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ] && [ "$(starttime "$2")" = "$3" ]
}
wait_gone() { # wait_gone NAME PID START SECONDS
    local limit=$(( SECONDS + $4 ))
    while is_ours "$1" "$2" "$3"; do
        [ "$SECONDS" -lt "$limit" ] || return 1
        sleep 0.2
    done
}

if [ ! -e "$PIDS" ]; then
    say "nothing to stop: no $PIDS (deploy/slurm/start.sh has not started Slurm)"
    exit 0
fi
[ "$(id -u)" = 0 ] || fail "must run as root"
[[ $GRACE =~ ^[0-9]+$ ]] || fail "the grace period must be a whole number of seconds, not '$GRACE'"

declare -A PID START
while read -r name pid start; do
    [ -n "$name" ] || continue
    PID[$name]=$pid START[$name]=$start
done <"$PIDS"

if is_ours slurmctld "${PID[slurmctld]:-}" "${START[slurmctld]:-}"; then
    mapfile -t jobs < <(squeue -h -o %i 2>/dev/null || true)
    if [ ${#jobs[@]} -gt 0 ]; then
        say "cancelling ${#jobs[@]} job(s) left in the queue"
        scancel "${jobs[@]}" 2>/dev/null || true
        limit=$(( SECONDS + 15 ))
        while [ -n "$(squeue -h -o %i 2>/dev/null)" ] && [ "$SECONDS" -lt "$limit" ]; do sleep 0.2; done
    fi
fi

stop_together() { # stop_together NAME...: SIGTERM all at once, then wait; SIGKILL what outlives GRACE
    local name pid start running=()
    for name in "$@"; do
        pid=${PID[$name]:-} start=${START[$name]:-}
        [ -n "$pid" ] || continue    # e.g. a munged that start.sh found running and did not start
        if is_ours "$name" "$pid" "$start"; then
            kill -TERM "$pid" 2>/dev/null || true
            running+=("$name")
        else
            say "$name (pid $pid) is not running"
        fi
    done
    for name in "${running[@]}"; do
        pid=${PID[$name]} start=${START[$name]}
        if ! wait_gone "$name" "$pid" "$start" "$GRACE"; then
            say "$name (pid $pid) still runs after $GRACE s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$name" "$pid" "$start" 10 || fail "$name (pid $pid) survived SIGKILL"
        fi
        say "$name (pid $pid) stopped after $(( SECONDS - T0 )) s"
        # slurmctld -D and slurmd -D leave their pid files behind
        if [ "$(cat "/run/$name.pid" 2>/dev/null)" = "$pid" ]; then rm -f "/run/$name.pid"; fi
    done
}
stop_together slurmd slurmctld
stop_together munged     # last: the Slurm daemons use it while they shut down
rm -f "$PIDS"
say "Slurm stopped in $(( SECONDS - T0 )) s"
