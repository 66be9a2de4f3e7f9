#!/bin/sh
# Slurm HealthCheckProgram for envdoctor, in the manner of NHC: drain this node, with the finding as the
# reason, when `envdoctor check --quick --health` finds it broken.
#
#   slurm.conf:  HealthCheckProgram=/usr/local/sbin/envdoctor-health
#                HealthCheckInterval=300
#                HealthCheckNodeState=ANY,CYCLE
#
# Settings, from the environment or /etc/default/envdoctor-health (sourced if present):
#   ENVDOCTOR                the envdoctor command (default: envdoctor on PATH)
#   ENVDOCTOR_ARGS           more check arguments, e.g. "--python /opt/venv/bin/python"
#   ENVDOCTOR_TIMEOUT        seconds before the check counts as unknown (default 60)
#   ENVDOCTOR_DRAIN_UNKNOWN  1: also drain a node whose check cannot decide (default: log it only)
#   SLURM_CONF               health checks do not inherit a non-default SLURM_CONF: set it here
# Exit status: 0 healthy or unknown (logged), 1 drained.

[ -r "${ENVDOCTOR_HEALTH_DEFAULTS:-/etc/default/envdoctor-health}" ] &&
  . "${ENVDOCTOR_HEALTH_DEFAULTS:-/etc/default/envdoctor-health}"
[ -n "$SLURM_CONF" ] && export SLURM_CONF
# slurmd runs health checks with SLURMD_NODENAME alone in the environment: no PATH.
PATH=${PATH:-/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin}
export PATH
node=${SLURMD_NODENAME:-$(hostname -s)}
timeout_s=${ENVDOCTOR_TIMEOUT:-60}

# shellcheck disable=SC2086  # ENVDOCTOR and ENVDOCTOR_ARGS are word lists
out=$(timeout -k 5 "$timeout_s" ${ENVDOCTOR:-envdoctor} check --quick --health $ENVDOCTOR_ARGS 2>/dev/null)
rc=$?
line=$(printf '%s\n' "$out" | tail -n 1)
unknown=
case $rc in
  0) exit 0 ;;
  1) reason=$line ;;
  124 | 137) reason="envdoctor: unknown: check took over ${timeout_s} s" unknown=1 ;;
  *) reason=${line:-"envdoctor: unknown: check exited $rc"} unknown=1 ;;
esac
[ -n "$reason" ] || reason="envdoctor: check exited $rc"

if [ -n "$unknown" ] && [ "${ENVDOCTOR_DRAIN_UNKNOWN:-0}" != 1 ]; then
  logger -t envdoctor-health "$node: $reason" 2>/dev/null || echo "envdoctor-health: $node: $reason" >&2
  exit 0
fi
scontrol update nodename="$node" state=drain reason="$reason"
exit 1
