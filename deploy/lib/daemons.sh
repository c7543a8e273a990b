# shellcheck shell=bash
# Shared by deploy/sge and deploy/slurm: recording the daemons a start script started, and stopping
# exactly those. A daemon is identified by name, pid and start time (clock ticks since boot), so a
# recycled pid never counts as ours. Source it after defining say() and fail() and setting PIDS (the
# pid file: one "name pid starttime" line per daemon).

# starttime PID: the process's start time (clock ticks since boot)
starttime() { awk '{sub(/^.*\) /, ""); print $20}' "/proc/$1/stat" 2>/dev/null; }

is_ours() { # is_ours NAME PID START: that very process still runs
    [ -n "$2" ] && [ "$(cat "/proc/$2/comm" 2>/dev/null)" = "$1" ] && [ "$(starttime "$2")" = "$3" ]
}

other_pid() { # other_pid NAME [PID]: the first running process called NAME other than PID
    local d
    for d in /proc/[0-9]*; do
        if [ "${d#/proc/}" != "${2:-}" ] && [ "$(cat "$d/comm" 2>/dev/null)" = "$1" ]; then
            echo "${d#/proc/}"
            return 0
        fi
    done
    return 0
}

recorded_pid() { # recorded_pid NAME: the pid recorded for daemon NAME, printed only if it still runs
    local name pid start
    [ -r "$PIDS" ] || return 0
    while read -r name pid start; do
        if [ "$name" = "$1" ] && is_ours "$name" "$pid" "$start"; then
            echo "$pid"
        fi
    done <"$PIDS"
    return 0
}

record() { # record NAME PID...: rewrite the pid file with these daemons (an empty PID is skipped)
    local lines="" name pid
    while [ $# -ge 2 ]; do
        name=$1 pid=$2
        shift 2
        [ -n "$pid" ] && lines+="$name $pid $(starttime "$pid")"$'\n'
    done
    mkdir -p "$(dirname "$PIDS")"
    printf '%s' "$lines" >"$PIDS.tmp" && mv "$PIDS.tmp" "$PIDS"
}

wait_gone() { # wait_gone NAME PID START SECONDS: wait until that process is gone; 1 if it outlives SECONDS
    local limit=$(( SECONDS + $4 ))
    while is_ours "$1" "$2" "$3"; do
        [ "$SECONDS" -lt "$limit" ] || return 1
        sleep 0.2
    done
}

load_pids() { # fill the associative arrays PID and START (declared by the caller) from the pid file
    local name pid start
    while read -r name pid start; do
        [ -n "$name" ] || continue
        PID["$name"]=$pid START["$name"]=$start
    done <"$PIDS"
}

stop_together() { # stop_together NAME...: SIGTERM those of ours at once, wait, SIGKILL what outlives GRACE
    local name pid start running=()
    for name in "$@"; do
        pid=${PID[$name]:-} start=${START[$name]:-}
        [ -n "$pid" ] || continue    # e.g. a daemon the start script found running and did not start
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
        # daemons run in the foreground (slurmctld -D, slurmd -D) leave their pid files behind
        if [ "$(cat "/run/$name.pid" 2>/dev/null)" = "$pid" ]; then rm -f "/run/$name.pid"; fi
    done
}
