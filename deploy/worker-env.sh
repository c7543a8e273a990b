# shellcheck shell=bash
# What a site sources on a worker node (in a batch job, in dask-jobqueue's job_script_prologue, in a
# container's entry point) before running findspots:
#
#   source /path/to/findspots/deploy/worker-env.sh
#
# - FINDSPOTS_HOME: the findspots checkout; by default the folder above this file.
# - FINDSPOTS_VENV: the virtual environment to activate; by default $FINDSPOTS_HOME/.venv (made by
#   deploy/setup-env.sh). It is activated the way bin/activate does it (VIRTUAL_ENV, PATH first,
#   PYTHONHOME unset), without touching the prompt, so it also works under `set -u`.
# - FINDSPOTS_CPUS: the CPUs the batch system granted the job (NSLOTS on SGE, SLURM_CPUS_PER_TASK on
#   Slurm, NCPUS or PBS_NUM_PPN on PBS, LSB_DJOB_NUMPROC on LSF), when it says; the job scripts in
#   jobs/ pass it on as nproc, one findspots process per CPU.
# - OMP/OpenBLAS/MKL/numba threads: 1 per process unless already set (findspots parallelises with
#   processes; thread pools would size themselves to the whole node, not to the job).
# - NUMBA_CACHE_DIR: set to a scratch folder when $HOME is not writable (see below).
# - FINDSPOTS_WORKER_ENV_QUIET=1 silences the one line it prints (to stderr) when the venv is missing.
#
# It returns non-zero, after one line on stderr, when the venv is missing; it never changes the
# options (set -e/-u) of the shell that sources it.

if [ -z "${BASH_VERSION:-}" ]; then
    echo "worker-env.sh: needs bash (source it from a bash script)" >&2
    # shellcheck disable=SC2317  # exit is reached when this file is run rather than sourced
    return 1 2>/dev/null || exit 1
fi
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "worker-env.sh: source this file (source $0), do not run it" >&2
    exit 1
fi

FINDSPOTS_HOME=${FINDSPOTS_HOME:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
FINDSPOTS_VENV=${FINDSPOTS_VENV:-$FINDSPOTS_HOME/.venv}
export FINDSPOTS_HOME FINDSPOTS_VENV

if [ ! -x "$FINDSPOTS_VENV/bin/findspots" ]; then
    [ "${FINDSPOTS_WORKER_ENV_QUIET:-0}" = 1 ] \
        || echo "worker-env.sh: no findspots in $FINDSPOTS_VENV (run deploy/setup-env.sh there, or set FINDSPOTS_VENV)" >&2
    return 1
fi

if [ "${VIRTUAL_ENV:-}" != "$FINDSPOTS_VENV" ]; then
    export VIRTUAL_ENV=$FINDSPOTS_VENV
    export PATH="$FINDSPOTS_VENV/bin${PATH:+:$PATH}"
    unset PYTHONHOME
fi

# the CPUs this job was given, by the first batch system that says so
_findspots_cpus=${NSLOTS:-${SLURM_CPUS_PER_TASK:-${NCPUS:-${PBS_NUM_PPN:-${LSB_DJOB_NUMPROC:-}}}}}
if [[ $_findspots_cpus =~ ^[1-9][0-9]*$ ]]; then
    export FINDSPOTS_CPUS=$_findspots_cpus
fi
# findspots works in parallel with processes (nproc=N), each single-threaded; library thread pools
# would only compete with them (and by default size themselves to the whole node, not to the job)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
export MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
export NUMBA_NUM_THREADS=${NUMBA_NUM_THREADS:-1}
unset _findspots_cpus

# numba caches findspots' compiled kernels beside the installed package, else under ~/.cache; when
# neither is writable (a shared read-only install run with no usable home) it refuses to run them
# ("cannot cache function ...: no locator available"), so give it a scratch folder then
if [ -z "${NUMBA_CACHE_DIR:-}" ] && ! { [ -n "${HOME:-}" ] && [ -w "$HOME" ]; }; then
    NUMBA_CACHE_DIR="${TMPDIR:-/tmp}/findspots-numba-cache-${UID:-0}"
    export NUMBA_CACHE_DIR
fi
true
