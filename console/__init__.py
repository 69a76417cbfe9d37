"""The staff and operator console: server-rendered pages at /console/.

An adapter like api/: pages parse the form, call the same domain functions and the same
permission check as the JSON API, and render Jinja2 templates. htmx (vendored) swaps
fragments; ECharts (vendored) draws the home page's charts. Nothing loads from outside
the server, and the Content-Security-Policy allows scripts only from /console/static.

Adding a page: see console/pages/__init__.py.
"""

from console.app import install

__all__ = ["install"]
