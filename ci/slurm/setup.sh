#!/usr/bin/env bash
# Start a real single-node Slurm cluster on this machine (controller, compute
# node and, by default, slurmdbd accounting backed by MariaDB), for CI tests
# that run the Snakemake workflow through snakemake-executor-plugin-slurm.
#
# Made for a Debian 12 (bookworm) container/VM without systemd: every daemon
# is started directly. Must run as root. Idempotent: a second run leaves a
# healthy running cluster alone (no apt calls, no restarts) and only restarts
# daemons whose generated configuration changed.
#
# Environment knobs (all optional):
#   SLURM_ACCOUNTING=1|0   slurmdbd + MariaDB so that `sacct` works (default 1).
#                          With 0 there is no accounting and snakemake MUST be
#                          run with `--slurm-status-command squeue` (MinJobAge
#                          is 600 s): the plugin's default status command is
#                          `sacct` whenever the binary exists, and then it never
#                          learns that jobs finished (the run hangs).
#   SLURM_CLUSTER_NAME     default: gradatlas
#   SLURM_PARTITION        default partition name, default: debug
#   SLURM_CI_DIR           daemon logs + pid files, default: /tmp/slurm-ci
#   SLURM_WAIT_S           max seconds to wait for each daemon / the node, default: 60
#   SLURM_APT_UPDATE=0     skip `apt-get update` before installing missing packages
#
# Undo with ci/slurm/teardown.sh (stops daemons; --purge also drops state).
set -Eeuo pipefail   # -E: the ERR trap below also fires inside functions
export DEBIAN_FRONTEND=noninteractive

SLURM_ACCOUNTING=${SLURM_ACCOUNTING:-1}
CLUSTER_NAME=${SLURM_CLUSTER_NAME:-gradatlas}
PARTITION=${SLURM_PARTITION:-debug}
CI_DIR=${SLURM_CI_DIR:-/tmp/slurm-ci}
WAIT_S=${SLURM_WAIT_S:-60}
SLURM_APT_UPDATE=${SLURM_APT_UPDATE:-1}

ETC=/etc/slurm
DB_NAME=slurm_acct_db
DB_USER=slurm
DB_PASS=slurm-ci-only   # local CI database reachable only via localhost

t0=$SECONDS
log() { printf '[slurm-setup %3ds] %s\n' "$((SECONDS - t0))" "$*"; }
# Print the last lines of all daemon logs when we fail, so CI output is useful.
dump_logs() {
  local f
  for f in "$CI_DIR"/*.log; do
    [[ -f $f ]] || continue
    echo "----- $f (last 25 lines)" >&2
    tail -n 25 "$f" >&2 || true
  done
}
die() { printf '[slurm-setup] ERROR: %s\n' "$*" >&2; dump_logs; exit 1; }
on_error() {
  local rc=$? line=$1
  # with -E the trap also runs in $(...) subshells: report once, from the main shell
  [[ $BASHPID == "$$" ]] || exit "$rc"
  echo "[slurm-setup] ERROR: command failed (rc=$rc) at line $line" >&2
  dump_logs
  exit "$rc"
}
trap 'on_error $LINENO' ERR

if [[ $EUID -ne 0 ]]; then echo "[slurm-setup] ERROR: must run as root" >&2; exit 1; fi

# ---------------------------------------------------------------- packages
pkgs=(munge slurm-client slurmctld slurmd)
if [[ $SLURM_ACCOUNTING == 1 ]]; then
  pkgs+=(slurmdbd mariadb-server)
fi
missing=()
for p in "${pkgs[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done
if ((${#missing[@]})); then
  log "installing: ${missing[*]}"
  # Do not let the packages' maintainer scripts try to start services
  # (there is no init system here; we start the daemons ourselves below).
  policy_created=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    policy_created=1
  fi
  if [[ $SLURM_APT_UPDATE == 1 ]]; then
    timeout 600 apt-get update -q
  fi
  timeout 900 apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}"
  if ((policy_created)); then rm -f /usr/sbin/policy-rc.d; fi
else
  log "packages already installed"
fi

# ---------------------------------------------------------------- helpers
# pid_alive PIDFILE: true if the pid file names a live process.
pid_alive() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null
}

# wait_for DESCRIPTION CMD...: retry CMD (each try bounded to 10 s) for WAIT_S.
wait_for() {
  local what=$1; shift
  local deadline=$((SECONDS + WAIT_S))
  until timeout 10 "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      die "timed out after ${WAIT_S}s waiting for: $what"
    fi
    sleep 1
  done
}

# stop_pidfile PIDFILE: TERM, wait up to 15 s, then KILL.
stop_pidfile() {
  local pf=$1 pid i
  pid_alive "$pf" || { rm -f "$pf"; return 0; }
  pid=$(<"$pf")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 30; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$pf"
}

# stop_if_changed FLAG NAME: stop daemon NAME (pid file $CI_DIR/NAME.pid) when FLAG is 1,
# so that the start below picks up its new configuration.
stop_if_changed() {
  if (($1)) && pid_alive "$CI_DIR/$2.pid"; then
    log "config changed: restarting $2"
    stop_pidfile "$CI_DIR/$2.pid"
  fi
}

# install_file DEST MODE OWNER < content: write only if content differs.
# Returns 0 if the file changed, 1 if it was already up to date.
install_file() {
  local dest=$1 mode=$2 owner=$3 tmp
  tmp=$(mktemp)
  cat >"$tmp"
  if [[ -f $dest ]] && cmp -s "$tmp" "$dest"; then
    rm -f "$tmp"
    chmod "$mode" "$dest"; chown "$owner" "$dest"
    return 1
  fi
  install -D -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$tmp" "$dest"
  rm -f "$tmp"
  return 0
}

# ---------------------------------------------------------------- host facts
HOST=$(hostname -s)
[[ -n $HOST ]] || die "empty hostname"
# slurmctld/slurmd must resolve the node name; add it if it is missing.
if ! getent hosts "$HOST" >/dev/null; then
  log "adding $HOST to /etc/hosts"
  echo "127.0.0.1 $HOST" >>/etc/hosts
fi
NCPU=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
# Leave ~10% (at least 512 MB) for the OS and the daemons; slurmd drains the
# node if RealMemory exceeds what it detects.
REAL_MEM=$((MEM_MB - (MEM_MB / 10 > 512 ? MEM_MB / 10 : 512)))
((REAL_MEM > 256)) || die "too little memory (${MEM_MB} MB)"

# ---------------------------------------------------------------- users, dirs
id slurm >/dev/null 2>&1 || die "user 'slurm' missing (package install failed?)"
id munge >/dev/null 2>&1 || die "user 'munge' missing (package install failed?)"
install -d -m 0755 -o slurm -g slurm /var/spool/slurmctld /var/log/slurm /run/slurm
install -d -m 0755 -o root -g root /var/spool/slurmd
install -d -m 0755 -o munge -g munge /run/munge /var/log/munge /var/lib/munge
install -d -m 0700 -o munge -g munge /etc/munge
# sticky + world-writable like /tmp: slurmctld/slurmdbd (user slurm) chdir here
# and want write access; munged rejects world-writable dirs without sticky bit.
install -d -m 1777 "$CI_DIR"
# Daemon logs live in $CI_DIR; pre-create the ones written by unprivileged
# daemon users (slurmctld/slurmdbd run as 'slurm', munged as 'munge').
for f in slurmctld slurmdbd; do
  touch "$CI_DIR/$f.log"; chown slurm:slurm "$CI_DIR/$f.log"
done
touch "$CI_DIR/munged.log"; chown munge:munge "$CI_DIR/munged.log"; chmod 0640 "$CI_DIR/munged.log"
if [[ $SLURM_ACCOUNTING == 1 ]]; then
  touch "$CI_DIR/mariadb.log"; chown mysql:mysql "$CI_DIR/mariadb.log"
fi

# ---------------------------------------------------------------- config
restart_ctld=0 restart_slurmd=0 restart_dbd=0

acct_lines="AccountingStorageType=accounting_storage/none"
if [[ $SLURM_ACCOUNTING == 1 ]]; then
  acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoreFlags=job_comment"
fi

if install_file "$ETC/slurm.conf" 0644 root:root <<EOF; then restart_ctld=1 restart_slurmd=1; fi
# Generated by ci/slurm/setup.sh -- single-node CI cluster, do not edit.
ClusterName=$CLUSTER_NAME
SlurmctldHost=$HOST
SlurmUser=slurm
AuthType=auth/munge
CryptoType=crypto/munge
MpiDefault=none
MailProg=/bin/true
# No systemd and no usable cgroup hierarchy here: track processes via /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
$acct_lines
JobCompType=jobcomp/none
SlurmctldPidFile=$CI_DIR/slurmctld.pid
SlurmdPidFile=$CI_DIR/slurmd.pid
SlurmctldLogFile=$CI_DIR/slurmctld.log
SlurmdLogFile=$CI_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
ReturnToService=2
# Trust the node definition below instead of the detected topology.
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
# Keep finished jobs visible to squeue/scontrol for 10 min (squeue fallback).
MinJobAge=600
InactiveLimit=0
KillWait=10
Waittime=0
SlurmctldTimeout=60
SlurmdTimeout=60
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$NCPU RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF

if [[ $SLURM_ACCOUNTING == 1 ]]; then
  if install_file "$ETC/slurmdbd.conf" 0600 slurm:slurm <<EOF; then restart_dbd=1 restart_ctld=1; fi
# Generated by ci/slurm/setup.sh -- single-node CI cluster, do not edit.
AuthType=auth/munge
DbdHost=localhost
SlurmUser=slurm
LogFile=$CI_DIR/slurmdbd.log
PidFile=$CI_DIR/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=localhost
StoragePort=3306
StorageUser=$DB_USER
StoragePass=$DB_PASS
StorageLoc=$DB_NAME
EOF
fi

# ---------------------------------------------------------------- munge
if [[ ! -s /etc/munge/munge.key ]]; then
  log "creating munge key"
  if command -v mungekey >/dev/null; then
    mungekey --create --keyfile=/etc/munge/munge.key --force
  else
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key

if ! timeout 5 bash -c 'munge -n | unmunge' >/dev/null 2>&1; then
  log "starting munged"
  stop_pidfile /run/munge/munged.pid
  rm -f /run/munge/munge.socket.2 /run/munge/munge.socket.2.lock
  # --force: start even if a stale socket or lax directory permissions are found
  runuser -u munge -- /usr/sbin/munged --force \
    --log-file="$CI_DIR/munged.log" --pid-file=/run/munge/munged.pid
  wait_for "munge" bash -c 'munge -n | unmunge'
fi

# ---------------------------------------------------------------- mariadb + slurmdbd
if [[ $SLURM_ACCOUNTING == 1 ]]; then
  install -d -m 0755 -o mysql -g mysql /run/mysqld
  if ! timeout 5 mariadb-admin --protocol=socket ping >/dev/null 2>&1; then
    if [[ ! -d /var/lib/mysql/mysql ]]; then
      log "initialising MariaDB data dir"
      timeout 120 mariadb-install-db --user=mysql --datadir=/var/lib/mysql \
        --auth-root-authentication-method=socket >"$CI_DIR/mariadb-install.log" 2>&1
    fi
    log "starting mariadbd"
    # setsid + nohup: detach from this shell so the server outlives the script.
    setsid nohup /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
      --socket=/run/mysqld/mysqld.sock --pid-file=/run/mysqld/mysqld.pid \
      --bind-address=127.0.0.1 --port=3306 \
      --innodb-buffer-pool-size=1G --innodb-lock-wait-timeout=900 \
      --log-error="$CI_DIR/mariadb.log" </dev/null >/dev/null 2>&1 &
    wait_for "mariadb" mariadb-admin --protocol=socket ping
  fi
  # OS root logs in through the unix socket (unix_socket auth).
  timeout 30 mariadb --protocol=socket <<SQL
CREATE DATABASE IF NOT EXISTS $DB_NAME;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASS';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'localhost';
GRANT ALL ON $DB_NAME.* TO '$DB_USER'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL

  stop_if_changed "$restart_dbd" slurmdbd
  if ! pid_alive "$CI_DIR/slurmdbd.pid"; then
    log "starting slurmdbd"
    /usr/sbin/slurmdbd
    # `sacctmgr list cluster` answers only once slurmdbd talks to the database
    wait_for "slurmdbd" sacctmgr -n list cluster
  fi
  if ! timeout 10 sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER_NAME"; then
    log "registering cluster $CLUSTER_NAME in slurmdbd"
    timeout 30 sacctmgr -i add cluster "$CLUSTER_NAME" >/dev/null
  fi
  # An explicit account the CI can pass as slurm_account (validated by the
  # executor plugin via `sacctmgr list user`); root also keeps account 'root'.
  if ! timeout 10 sacctmgr -n -P list account format=account | grep -qx ci; then
    timeout 30 sacctmgr -i add account ci Cluster="$CLUSTER_NAME" Description=ci Organization=ci >/dev/null
  fi
  for u in root ${SUDO_USER:-}; do
    if ! timeout 10 sacctmgr -n -P list assoc user="$u" account=ci format=user | grep -qx "$u"; then
      timeout 30 sacctmgr -i add user "$u" Account=ci DefaultAccount=ci >/dev/null
    fi
  done
fi

# ---------------------------------------------------------------- slurmctld + slurmd
stop_if_changed "$restart_ctld" slurmctld
stop_if_changed "$restart_slurmd" slurmd
if ! pid_alive "$CI_DIR/slurmctld.pid"; then
  log "starting slurmctld"
  /usr/sbin/slurmctld
  wait_for "slurmctld" scontrol ping
fi
if ! pid_alive "$CI_DIR/slurmd.pid"; then
  log "starting slurmd"
  /usr/sbin/slurmd
fi

# Wait for the node to become usable; resume it if a previous run left it
# down/drained (e.g. after a daemon restart).
deadline=$((SECONDS + WAIT_S))
while :; do
  state=$(timeout 10 sinfo -h -N -n "$HOST" -o '%T' 2>/dev/null | head -n1 || true)
  case $state in
    idle | mixed | allocated) break ;;
    down* | drain* | fail*)
      timeout 10 scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  ((SECONDS < deadline)) || die "node $HOST not ready after ${WAIT_S}s (state: '${state:-?}')"
  sleep 1
done
log "node $HOST is $state"

# ---------------------------------------------------------------- smoke tests
out=$(timeout 60 srun -N1 -n1 --mem=100 -t 1 hostname)
[[ $out == "$HOST" ]] || die "srun returned '$out', expected '$HOST'"
jobid=$(timeout 90 sbatch --parsable --wait -N1 -n1 --mem=100 -t 1 \
  -o /dev/null -J ci-smoke --wrap true)
jobid=${jobid%%;*}
log "srun and sbatch --wait ok (job $jobid)"
if [[ $SLURM_ACCOUNTING == 1 ]]; then
  # slurmctld hands job records to slurmdbd asynchronously
  wait_for "job $jobid in sacct" bash -c \
    "sacct -n -X -P -j $jobid -o State | grep -q COMPLETED"
  log "sacct sees job $jobid"
fi

# ---------------------------------------------------------------- report
log "ready: cluster=$CLUSTER_NAME node=$HOST cpus=$NCPU real_memory=${REAL_MEM}MB partition=$PARTITION accounting=$SLURM_ACCOUNTING"
echo "  $(sinfo --version)"
echo "  munge $(dpkg-query -W -f='${Version}' munge)"
echo "  slurm packages $(dpkg-query -W -f='${Version}' slurmctld)"
if [[ $SLURM_ACCOUNTING == 1 ]]; then
  echo "  $(mariadbd --version 2>/dev/null | head -n1)"
fi
sinfo
