#!/usr/bin/env bash
# Start a single-node Son of Grid Engine (Debian 12 gridengine 8.1.9) on this machine, without systemd.
#
#   bash deploy/sge/start.sh            # as root; prints the environment to use at the end
#   bash deploy/sge/stop.sh             # stops exactly the daemons this script started
#
# What it does, in order:
#   1. installs gridengine-master/-exec/-client/-drmaa1.0 when missing (debconf preseeded, no
#      recommends, daemons kept from starting during the install);
#   2. makes the host name resolvable and declares "localhost" an alias of it (SGE otherwise refuses
#      every client with "commlib error: access denied");
#   3. when no qmaster of ours runs: builds a fresh cell and starts sge_qmaster;
#   4. (re)applies the configuration: root may submit, no login shells, 1 s scheduling, this host as
#      admin/submit/exec host, queue $SGE_QUEUE with $SGE_SLOTS slots, a "smp" parallel environment;
#   5. starts sge_execd, then waits until a probe job has really run;
#   6. writes $STATE/sge.env (SGE_ROOT, SGE_CELL, DRMAA_LIBRARY_PATH, GLIBC_TUNABLES) for DRMAA users.
# Running it again while SGE is up re-applies step 4 and re-runs the probe. The PIDs it started are
# recorded in $STATE/sge.pids (name, pid, start time) as soon as each daemon is up.
#
# Settings (environment): SGE_QUEUE (all.q), SGE_SLOTS (number of CPUs), SGE_READY_TIMEOUT (120 s),
# FINDSPOTS_SCHED_STATE (/run/findspots-sched).
set -Eeuo pipefail

readonly SGE_ROOT=/var/lib/gridengine SGE_CELL=default
export SGE_ROOT SGE_CELL
readonly SPOOL=/var/spool/gridengine
readonly COMMON=$SGE_ROOT/$SGE_CELL/common
readonly DRMAA_LIB=/usr/lib/gridengine-drmaa/lib/libdrmaa.so.1.0
readonly PACKAGES=(gridengine-common gridengine-client gridengine-master gridengine-exec gridengine-drmaa1.0)
QUEUE=${SGE_QUEUE:-all.q}
SLOTS=${SGE_SLOTS:-$(nproc)}
TIMEOUT=${SGE_READY_TIMEOUT:-120}
STATE=${FINDSPOTS_SCHED_STATE:-/run/findspots-sched}
PIDS=$STATE/sge.pids
ENVFILE=$STATE/sge.env
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d -t findspots-sge.XXXXXX)
OWN_POLICY=""

say() { printf 'sge/start: %s\n' "$*"; }
fail() { printf 'sge/start: FAILED: %s\n' "$*" >&2; exit 1; }
cleanup() {
    rm -rf "$WORK"
    if [ -n "$OWN_POLICY" ]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT
trap 'fail "line $LINENO: \"$BASH_COMMAND\" exited with $?"' ERR
T0=$SECONDS

# ---- helpers -------------------------------------------------------------------------------------
# shellcheck source-path=SCRIPTDIR source=../lib/daemons.sh
source "$HERE/../lib/daemons.sh"  # starttime, other_pid, recorded_pid, record
until_ok() { # until_ok SECONDS WHAT CMD...: retry CMD every 0.2 s
    local limit=$(( SECONDS + $1 )) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$limit" ] || fail "gave up after $TIMEOUT s waiting for $what"
        sleep 0.2
    done
}
qconf_quiet() {
    local out
    out=$(qconf "$@" 2>&1) || fail "qconf $* said: $(tr '\n' ' ' <<<"$out")"
}

# ---- 1. packages ---------------------------------------------------------------------------------
install_packages() {
    local missing=() p log
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    for p in "${PACKAGES[@]}"; do
        debconf-set-selections <<EOF
$p shared/gridengineconfig boolean true
$p shared/gridenginecell string $SGE_CELL
$p shared/gridenginemaster string $(hostname)
EOF
    done
    # gridengine-client depends on a mailer (exim4): leave it unconfigured
    echo 'exim4-config exim4/dc_eximconfig_configtype select no configuration at this time' \
        | debconf-set-selections
    if [ ! -e /usr/sbin/policy-rc.d ]; then   # no daemon may start from a maintainer script
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        OWN_POLICY=1
    fi
    log=$STATE/apt-sge.log
    mkdir -p "$STATE"
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

# ---- 2. host name --------------------------------------------------------------------------------
HOST=$(hostname)
host_names() {
    getent hosts "$HOST" >/dev/null || { say "adding '127.0.0.1 $HOST' to /etc/hosts"; echo "127.0.0.1 $HOST" >>/etc/hosts; }
    # SGE compares the name a client gives with the reverse lookup of its address; on this kind of
    # machine 127.0.0.1 reverse-resolves to "localhost", so both must be the same host for SGE.
    local ip rev aliases=""
    ip=$(getent ahostsv4 "$HOST" | awk 'NR == 1 {print $1}')
    rev=$(getent hosts "$ip" | awk '{print $2}')
    [ "$HOST" != localhost ] && aliases=" localhost"
    [ -n "$rev" ] && [ "$rev" != "$HOST" ] && [ "$rev" != localhost ] && aliases+=" $rev"
    mkdir -p "$COMMON"
    if [ -n "$aliases" ]; then echo "$HOST$aliases" >"$COMMON/host_aliases"; else rm -f "$COMMON/host_aliases"; fi
    return 0
}

# ---- 3. qmaster ----------------------------------------------------------------------------------
start_qmaster() {
    QMASTER=$(recorded_pid sge_qmaster)
    if [ -n "$QMASTER" ]; then
        say "sge_qmaster already running (pid $QMASTER)"
        return 0
    fi
    local other
    other=$(other_pid sge_qmaster)
    [ -z "$other" ] || fail "an sge_qmaster not started by this script runs (pid $other); stop it first"
    other=$(other_pid sge_execd)
    [ -z "$other" ] || fail "an sge_execd not started by this script runs (pid $other); stop it first"
    # a fresh cell: no jobs, hosts or queues left from an earlier run
    rm -rf "$SPOOL/qmaster" "$SPOOL/spooldb" "$SPOOL/execd"
    install -d -o sgeadmin -g sgeadmin "$SPOOL/qmaster" "$SPOOL/qmaster/job_scripts" \
        "$SPOOL/spooldb" "$SPOOL/execd" "$SGE_ROOT/$SGE_CELL" "$COMMON"
    [ -e "$COMMON/bootstrap" ] \
        || install -m 644 -o sgeadmin -g sgeadmin /usr/share/gridengine/default-bootstrap "$COMMON/bootstrap"
    echo "$HOST" >"$COMMON/act_qmaster"
    chown sgeadmin:sgeadmin "$COMMON"/act_qmaster "$COMMON"/host_aliases 2>/dev/null || true
    runuser -u sgeadmin -- /usr/share/gridengine/scripts/init_cluster \
        "$SGE_ROOT" "$SGE_CELL" "$SPOOL/spooldb" sgeadmin >"$WORK/init_cluster.log" 2>&1 \
        || fail "init_cluster failed: $(tail -n 1 "$WORK/init_cluster.log")"
    /usr/sbin/sge_qmaster     # forks into the background and becomes sgeadmin
    local t=$SECONDS
    until QMASTER=$(cat "$SPOOL/qmaster/qmaster.pid" 2>/dev/null) \
        && [ "$(cat "/proc/$QMASTER/comm" 2>/dev/null)" = sge_qmaster ]; do
        [ $(( SECONDS - t )) -lt "$TIMEOUT" ] || fail "sge_qmaster did not start (see $SPOOL/qmaster/messages)"
        sleep 0.1
    done
    record sge_qmaster "$QMASTER"
    say "sge_qmaster started (pid $QMASTER)"
}

# ---- 4. configuration ----------------------------------------------------------------------------
configure() {
    # global configuration; qconf takes the configuration's name from the file name: "global"
    qconf -sconf global | sed -e '/^#/d' \
        -e 's/^min_uid .*/min_uid 0/' -e 's/^min_gid .*/min_gid 0/' \
        -e 's/^login_shells .*/login_shells none/' \
        -e 's/^load_report_time .*/load_report_time 00:00:05/' >"$WORK/global"
    qconf_quiet -Mconf "$WORK/global"
    qconf -ssconf | sed \
        -e 's/^schedule_interval .*/schedule_interval 0:0:1/' \
        -e 's/^flush_submit_sec .*/flush_submit_sec 1/' -e 's/^flush_finish_sec .*/flush_finish_sec 1/' \
        -e 's/^job_load_adjustments .*/job_load_adjustments NONE/' \
        -e 's/^load_adjustment_decay_time .*/load_adjustment_decay_time 0:0:0/' >"$WORK/scheduler"
    qconf_quiet -Msconf "$WORK/scheduler"
    qconf -sh 2>/dev/null | grep -qx "$HOST" || qconf_quiet -ah "$HOST"
    qconf -ss 2>/dev/null | grep -qx "$HOST" || qconf_quiet -as "$HOST"

    local kind  # add (-A) the first time, modify (-M) afterwards
    printf '%s %s\n' hostname "$HOST" load_scaling NONE complex_values NONE user_lists NONE \
        xuser_lists NONE projects NONE xprojects NONE usage_scaling NONE report_variables NONE >"$WORK/exechost"
    kind=A; qconf -se "$HOST" >/dev/null 2>&1 && kind=M
    qconf_quiet "-${kind}e" "$WORK/exechost"

    printf 'group_name @allhosts\nhostlist %s\n' "$HOST" >"$WORK/allhosts"
    kind=A; qconf -shgrp @allhosts >/dev/null 2>&1 && kind=M
    qconf_quiet "-${kind}hgrp" "$WORK/allhosts"

    # shellcheck disable=SC2016  # $pe_slots is an SGE keyword, not a shell variable
    printf '%s %s\n' pe_name smp slots 9999 user_lists NONE xuser_lists NONE start_proc_args NONE \
        stop_proc_args NONE allocation_rule '$pe_slots' control_slaves FALSE job_is_first_task TRUE \
        urgency_slots min accounting_summary FALSE qsort_args NONE >"$WORK/smp"
    kind=A; qconf -sp smp >/dev/null 2>&1 && kind=M
    qconf_quiet "-${kind}p" "$WORK/smp"

    # every queue attribute must be given; bash (not csh) shells, no load alarms on a busy CI box
    {
        printf '%s %s\n' qname "$QUEUE" hostlist @allhosts seq_no 0 load_thresholds NONE \
            suspend_thresholds NONE nsuspend 1 suspend_interval 00:05:00 priority 0 \
            min_cpu_interval 00:05:00 processors UNDEFINED qtype 'BATCH INTERACTIVE' ckpt_list NONE \
            pe_list smp rerun FALSE slots "$SLOTS" tmpdir /tmp shell /bin/bash prolog NONE epilog NONE \
            shell_start_mode posix_compliant starter_method NONE suspend_method NONE resume_method NONE \
            terminate_method NONE notify 00:00:60 owner_list NONE user_lists NONE xuser_lists NONE \
            subordinate_list NONE complex_values NONE projects NONE xprojects NONE calendar NONE \
            initial_state default
        local limit
        for limit in rt cpu fsize data stack core rss vmem; do
            printf 's_%s INFINITY\nh_%s INFINITY\n' "$limit" "$limit"
        done
    } >"$WORK/queue"
    kind=A; qconf -sq "$QUEUE" >/dev/null 2>&1 && kind=M
    qconf_quiet "-${kind}q" "$WORK/queue"
    say "configured queue $QUEUE ($SLOTS slots) on $HOST"
}

# ---- 5. execd and the probe job -----------------------------------------------------------------
execd_pidfile_pid() { # the live sge_execd named by a pid file in the execd spool
    local f pid
    for f in "$SPOOL"/execd/*/execd.pid; do
        pid=$(cat "$f" 2>/dev/null) || continue
        if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = sge_execd ]; then echo "$pid"; return 0; fi
    done
    return 0
}
start_execd() {
    EXECD=$(recorded_pid sge_execd)
    if [ -n "$EXECD" ]; then
        say "sge_execd already running (pid $EXECD)"
    else
        local other
        other=$(other_pid sge_execd)
        [ -z "$other" ] || fail "an sge_execd not started by this script runs (pid $other); stop it first"
        rm -f "$SPOOL"/execd/*/execd.pid
        # sge_execd forks into the background: the pid to record is the one its pid file names, and
        # that file sits in a folder named after the unaliased host name (here "localhost")
        /usr/sbin/sge_execd
        local t=$SECONDS
        until EXECD=$(execd_pidfile_pid) && [ -n "$EXECD" ]; do
            [ $(( SECONDS - t )) -lt "$TIMEOUT" ] || fail "sge_execd did not start (see $SPOOL/execd/*/messages)"
            sleep 0.1
        done
        say "sge_execd started (pid $EXECD)"
    fi
    record sge_qmaster "$QMASTER" sge_execd "$EXECD"
}

probe() {
    local t=$SECONDS
    timeout "$TIMEOUT" qsub -sync y -b y -j y -o /dev/null -N findspots-probe -q "$QUEUE" /bin/true \
        >"$WORK/probe.log" 2>&1 \
        || fail "the probe job did not run within $TIMEOUT s: $(tail -n 1 "$WORK/probe.log") (try: qstat -f -explain a)"
    say "probe job ran ($(( SECONDS - t )) s)"
}

write_env() {
    cat >"$ENVFILE" <<EOF
# written by deploy/sge/start.sh: source it to use SGE through DRMAA (the q* commands need nothing)
export SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL
export DRMAA_LIBRARY_PATH=$DRMAA_LIB
# libdrmaa links jemalloc, which needs static TLS that a late dlopen() no longer has
export GLIBC_TUNABLES=\${GLIBC_TUNABLES:+\$GLIBC_TUNABLES:}glibc.rtld.optional_static_tls=4096
EOF
}

[ "$(id -u)" = 0 ] || fail "must run as root"
for knob in SGE_SLOTS SGE_READY_TIMEOUT; do
    [ -z "${!knob:-}" ] || [[ ${!knob} =~ ^[1-9][0-9]*$ ]] || fail "$knob must be a positive whole number, not '${!knob}'"
done
mkdir -p "$STATE"
install_packages
host_names
start_qmaster
until_ok "$TIMEOUT" "sge_qmaster to answer" qconf -sconf
configure
start_execd
probe
# what the pid file says must still be the running daemons (stop.sh relies on it)
[ "$(recorded_pid sge_qmaster) $(recorded_pid sge_execd)" = "$QMASTER $EXECD" ] \
    || fail "the recorded pids ($PIDS) no longer match the running sge_qmaster/sge_execd"
write_env
cat <<EOF
sge/start: SGE ready on $HOST in $(( SECONDS - T0 )) s: queue $QUEUE, $SLOTS slots (sge_qmaster $QMASTER, sge_execd $EXECD; $PIDS)
  qsub/qstat/qdel work as they are; for DRMAA:  source $ENVFILE
  i.e. export SGE_ROOT=$SGE_ROOT SGE_CELL=$SGE_CELL DRMAA_LIBRARY_PATH=$DRMAA_LIB GLIBC_TUNABLES=glibc.rtld.optional_static_tls=4096
  stop with: bash $HERE/stop.sh
EOF
