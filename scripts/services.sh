#!/usr/bin/env bash
# Make sure the servers the full test matrix uses are up: PostgreSQL, Redis, Mosquitto.
# Starts any that are installed but stopped (the commands this machine kind uses);
# prints what it found. Tests of the embedded default need none of them.
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! up 5432 && command -v pg_ctlcluster >/dev/null 2>&1; then
  for v in /etc/postgresql/*; do
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$v")" main start || true
  done
fi
if ! up 6379 && command -v redis-server >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
fi
if ! up 1883 && command -v mosquitto >/dev/null 2>&1; then
  mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
fi
for i in $(seq 1 30); do
  up 5432 && up 6379 && up 1883 && break
  sleep 0.5
done
for p in 5432:postgresql 6379:redis 1883:mosquitto; do
  if up "${p%%:*}"; then echo "service ${p#*:}: up"; else echo "service ${p#*:}: not available"; fi
done
