"""The composition root: builds a process from its role (boot/roles.py) and the `anxin`
command line (boot/cli.py). The only package that imports every layer."""
