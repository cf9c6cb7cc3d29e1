"""An OpenAI-compatible fake images server for tests, demos and benchmarks.

    python -m pytest_imagegen.fakeserver [--host 127.0.0.1] [--port 0] [--latency S]

It stands apart from the plugin: it imports only ``pytest_imagegen.api`` helpers.
"""

from __future__ import annotations

from .pictures import encode_picture, render_picture
from .server import FakeImagesServer

__all__ = ["FakeImagesServer", "encode_picture", "render_picture"]
