#!/usr/bin/env bash
# PBS/Torque-style qsub, qstat, qdel (Debian's slurm-wlm-torque: Perl wrappers over Slurm) for testing
# PBS job scripts on the one-node Slurm of deploy/slurm/start.sh. This is not a real PBS.
#
#   eval "$(bash deploy/pbs/torque-wrappers.sh)"    # puts the wrappers first on PATH in this shell
#   bash deploy/pbs/torque-wrappers.sh --bin        # prints just the folder holding them
#   bash deploy/pbs/torque-wrappers.sh --remove     # deletes the unpacked wrappers
#
# slurm-wlm-torque cannot be installed next to gridengine-client (both ship /usr/bin/qsub), so the
# package is unpacked (apt-get download + dpkg-deb -x) into its own folder, $FINDSPOTS_TORQUE_DIR
# (default /opt/findspots-torque), at the version of the installed slurm-client; its Perl
# dependencies are installed normally. The wrappers run "${FindBin::Bin}/sbatch", so the Slurm
# commands are linked in beside them. Unpacking needs root; once done, any user can use the folder.
# Everything but the PATH line goes to stderr, so a failure evaluates to nothing (and says why).
set -Eeuo pipefail

DIR=${FINDSPOTS_TORQUE_DIR:-/opt/findspots-torque}
BIN=$DIR/usr/bin
readonly PERL_DEPS=(libslurm-perl libslurmdb-perl libswitch-perl)
readonly SLURM_COMMANDS=(sbatch salloc srun scancel scontrol squeue sinfo)

say() { printf 'pbs/torque-wrappers: %s\n' "$*" >&2; }
fail() { printf 'pbs/torque-wrappers: FAILED: %s\n' "$*" >&2; exit 1; }
trap 'fail "line $LINENO: \"$BASH_COMMAND\" exited with $?"' ERR

installed_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }

unpack() {
    local version missing=() p log tmp
    version=$(installed_version slurm-client)
    [ -n "$version" ] || fail "slurm-client is not installed: run deploy/slurm/start.sh first"
    if [ -x "$BIN/qsub" ] && [ "$(cat "$DIR/.slurm-version" 2>/dev/null)" = "$version" ]; then
        return 0
    fi
    [ "$(id -u)" = 0 ] || fail "the wrappers are not unpacked in $DIR yet, and that needs root"
    tmp=$(mktemp -d -t findspots-torque.XXXXXX)
    # shellcheck disable=SC2064  # expand $tmp now
    trap "rm -rf '$tmp'" EXIT
    log=$tmp/apt.log
    for p in "${PERL_DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    apt_steps() {
        if [ ${#missing[@]} -gt 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=600 \
                install --no-install-recommends "${missing[@]}" >>"$log" 2>&1 || return 1
        fi
        # run from $tmp: apt-get download writes into the current folder
        (cd "$tmp" && apt-get -q download "slurm-wlm-torque=$version") >>"$log" 2>&1
    }
    if ! apt_steps; then   # stale package lists: refresh once and retry
        apt-get -q -o DPkg::Lock::Timeout=600 update >>"$log" 2>&1 || true
        apt_steps || fail "apt-get could not fetch slurm-wlm-torque=$version: $(tail -n 1 "$log")"
    fi
    dpkg-deb -x "$tmp"/slurm-wlm-torque_*.deb "$tmp/root"
    for p in "${SLURM_COMMANDS[@]}"; do
        ln -sf "$(command -v "$p")" "$tmp/root/usr/bin/$p"
    done
    echo "$version" >"$tmp/root/.slurm-version"
    mkdir -p "$(dirname "$DIR")"
    rm -rf "$DIR.new" "$DIR"
    cp -a "$tmp/root" "$DIR.new"
    mv "$DIR.new" "$DIR"
    say "unpacked slurm-wlm-torque $version into $DIR"
}

case ${1:-} in
    "")
        unpack
        # shellcheck disable=SC2016  # $PATH is for the shell that evaluates this line
        printf 'export PATH=%q:"$PATH"\n' "$BIN"
        ;;
    --bin)
        unpack
        printf '%s\n' "$BIN"
        ;;
    --remove)
        rm -rf "$DIR"
        say "removed $DIR"
        ;;
    *)
        fail "unknown option '$1' (use no option, --bin or --remove)"
        ;;
esac
