"""The rules of Anxin, one folder per area; adapters call them, they call no adapter."""
