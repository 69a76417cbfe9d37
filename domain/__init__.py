"""The rules of Anxin, one package per area; adapters (api, device_bridge, console, video,
police_link) call in here, and nothing here imports an adapter."""
