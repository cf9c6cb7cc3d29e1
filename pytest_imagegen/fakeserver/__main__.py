"""``python -m pytest_imagegen.fakeserver``: the fake images server in the foreground."""

from __future__ import annotations

import argparse
import sys

from .server import FakeImagesServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_imagegen.fakeserver",
        description="OpenAI-compatible fake images server for tests (loopback only by default).",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)"
    )
    parser.add_argument("--port", type=int, default=0, help="port (default 0: pick a free one)")
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds to wait before each answer"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="changes every picture (simulates a model update)"
    )
    parser.add_argument(
        "--api-key", default=None, help="accept only this Bearer key (default: any non-empty key)"
    )
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=None,
        metavar="K",
        help="answer 429 (Retry-After) to image requests beyond K in flight",
    )
    parser.add_argument(
        "--rate-limit",
        default=None,
        metavar="N/min",
        help="answer 429 (Retry-After) beyond N images per minute",
    )
    args = parser.parse_args(argv)
    from ..api.limiter import parse_rate

    server = FakeImagesServer(
        args.host,
        args.port,
        latency=args.latency,
        seed=args.seed,
        api_key=args.api_key,
        max_inflight=args.max_inflight,
        rate_limit=parse_rate(args.rate_limit),
    )
    print(
        f"fake images server listening on {server.url} "
        f"(control endpoints /_fake/*: header X-Fake-Token: {server.admin_token})",
        flush=True,
    )
    try:
        server.httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
