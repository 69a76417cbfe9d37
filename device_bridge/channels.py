"""Bus channel names the device side publishes or listens to."""

DEVICE_CHANGED = "device.changed"  # credentials, status or config changed: drop cached rows/keys
ACCESS_EVENT = "access.event"  # a door decision was written
# Staff blocked a resident: {id, resident_id, community_id, actor_type, actor_id}. Sessions
# and caches only (open sockets close); the block's departure ended everything else.
RESIDENT_BLOCKED = "resident.blocked"
