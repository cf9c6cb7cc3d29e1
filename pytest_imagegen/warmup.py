"""Import the heavy libraries in the background while the first request is in flight.

A recording session pays a few hundred milliseconds per process to import
vcrpy, httpx and Pillow (imagehash/scipy are only needed to compare with an
existing baseline, and accepted images are hashed once at the end). Imported lazily on the main
thread, that time adds to every xdist worker's first test; imported by a
daemon thread started at configure time, it overlaps collection and the
network latency of the first request. The order is the order the main thread
needs them in, so the two threads never wait on each other in a cycle.
"""

from __future__ import annotations

import contextlib
import importlib
import threading

HEAVY_MODULES = ("httpx", "vcr", "PIL.Image", "PIL.PngImagePlugin")


def _import_all() -> None:
    for name in HEAVY_MODULES:
        with contextlib.suppress(Exception):
            importlib.import_module(name)


def start() -> threading.Thread:
    thread = threading.Thread(target=_import_all, name="imagegen-warmup", daemon=True)
    thread.start()
    return thread
