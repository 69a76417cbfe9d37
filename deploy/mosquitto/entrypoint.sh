#!/bin/sh
# First start: create the dynamic-security state with the server's admin login.
set -e
state=/mosquitto/data/dynamic-security.json
if [ ! -f "$state" ]; then
  mosquitto_ctrl dynsec init "$state" anxin-server "$MQTT_ADMIN_PASSWORD"
fi
exec mosquitto -c /mosquitto/config/mosquitto.conf
