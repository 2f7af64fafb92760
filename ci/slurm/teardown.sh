#!/usr/bin/env bash
# Stop the single-node CI Slurm cluster started by ci/slurm/setup.sh.
#   teardown.sh          cancel jobs, stop slurmd, slurmctld, slurmdbd, mariadbd, munged
#   teardown.sh --purge  additionally delete Slurm state (job ids, accounting
#                        database, logs) so the next setup.sh starts fresh;
#                        installed packages, configs and the munge key are kept.
# Only processes recorded in the pid files written by setup.sh are signalled.
set -euo pipefail

CI_DIR=${SLURM_CI_DIR:-/tmp/slurm-ci}
purge=0
case ${1:-} in
  --purge) purge=1 ;;
  "") ;;
  *) echo "usage: $0 [--purge]" >&2; exit 2 ;;
esac
[[ $EUID -eq 0 ]] || { echo "teardown.sh: must run as root" >&2; exit 1; }

# stop NAME PIDFILE: TERM, wait up to 20 s, then KILL.
stop() {
  local name=$1 pf=$2 pid i
  if [[ ! -s $pf ]]; then echo "  $name: not running (no pid file)"; return 0; fi
  pid=$(<"$pf")
  if ! [[ $pid =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
    echo "  $name: not running (stale pid file)"; rm -f "$pf"; return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 40; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    echo "  $name: killed (pid $pid)"
  else
    echo "  $name: stopped (pid $pid)"
  fi
  rm -f "$pf"
}

# Cancel leftover jobs so their processes do not outlive slurmd.
if command -v scancel >/dev/null && timeout 5 scontrol ping >/dev/null 2>&1; then
  timeout 10 scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
  timeout 10 scancel --full --quiet --state=PENDING 2>/dev/null || true
fi

echo "stopping CI Slurm cluster:"
stop slurmd "$CI_DIR/slurmd.pid"
stop slurmctld "$CI_DIR/slurmctld.pid"
stop slurmdbd "$CI_DIR/slurmdbd.pid"
if ((purge)) && timeout 5 mariadb-admin --protocol=socket ping >/dev/null 2>&1; then
  echo "  dropping accounting database slurm_acct_db"
  timeout 30 mariadb --protocol=socket -e 'DROP DATABASE IF EXISTS slurm_acct_db' || true
fi
stop mariadbd /run/mysqld/mysqld.pid
stop munged /run/munge/munged.pid

if ((purge)); then
  echo "purging Slurm state"
  rm -rf /var/spool/slurmctld/* /var/spool/slurmd/* "$CI_DIR"
fi
