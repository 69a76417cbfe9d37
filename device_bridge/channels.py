"""Bus channel names the device side publishes or listens to."""

DEVICE_CHANGED = "device.changed"  # credentials rotated / status changed: drop cached keys
ACCESS_EVENT = "access.event"  # a door decision was written
