"""The rules of the community: who may enter, what a pass allows, how faces are kept.

Adapters (api/, device_bridge/, and later console/, video/, police_link/) call in here;
nothing in here imports an adapter. See docs/architecture.md.
"""
