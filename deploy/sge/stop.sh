#!/usr/bin/env bash
# Stop the SGE daemons that deploy/sge/start.sh started, and nothing else.
#
#   bash deploy/sge/stop.sh
#
# Reads $STATE/sge.pids (name, pid, start time); a recorded process counts as ours only while its pid,
# command name and start time all still match. Deletes the jobs left in the queue (their shepherds
# would otherwise outlive execd), sends SIGTERM to sge_execd and then sge_qmaster, and SIGKILL after
# SGE_STOP_GRACE seconds (default 20; the qmaster takes 7-11 s to shut down). A second run is a no-op.
# Settings (environment): SGE_STOP_GRACE, FINDSPOTS_SCHED_STATE (/run/findspots-sched).
set -Eeuo pipefail

export SGE_ROOT=/var/lib/gridengine SGE_CELL=default
STATE=${FINDSPOTS_SCHED_STATE:-/run/findspots-sched}
PIDS=$STATE/sge.pids
GRACE=${SGE_STOP_GRACE:-20}

say() { printf 'sge/stop: %s\n' "$*"; }
fail() { printf 'sge/stop: FAILED: %s\n' "$*" >&2; exit 1; }
trap 'fail "line $LINENO: \"$BASH_COMMAND\" exited with $?"' ERR
T0=$SECONDS

# shellcheck source-path=SCRIPTDIR source=../lib/daemons.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/daemons.sh"  # is_ours, load_pids, stop_together

if [ ! -e "$PIDS" ]; then
    say "nothing to stop: no $PIDS (deploy/sge/start.sh has not started SGE)"
    exit 0
fi
[ "$(id -u)" = 0 ] || fail "must run as root"
[[ $GRACE =~ ^[0-9]+$ ]] || fail "the grace period must be a whole number of seconds, not '$GRACE'"

declare -A PID START
load_pids
qmaster=${PID[sge_qmaster]:-} execd=${PID[sge_execd]:-}

# jobs first, while qmaster and execd still run to clean up after them
if is_ours sge_qmaster "$qmaster" "${START[sge_qmaster]:-}" && [ -n "$(qstat -u '*' 2>/dev/null)" ]; then
    say "deleting the jobs left in the queue"
    qdel -f -u '*' >/dev/null 2>&1 || true
    limit=$(( SECONDS + 15 ))
    while [ -n "$(qstat -u '*' 2>/dev/null)" ] && [ "$SECONDS" -lt "$limit" ]; do sleep 0.2; done
fi
if is_ours sge_execd "$execd" "${START[sge_execd]:-}"; then
    # shepherds of jobs that would not go away: children of our execd
    for child in $(pgrep -P "$execd" -x sge_shepherd || true); do
        say "killing leftover sge_shepherd $child"
        kill -KILL "$child" 2>/dev/null || true
    done
fi

# both at once: the qmaster alone needs 7-11 s to shut down, and the execd does not wait for it
stop_together sge_execd sge_qmaster
rm -f "$PIDS" "$STATE/sge.env"
say "SGE stopped in $(( SECONDS - T0 )) s"
