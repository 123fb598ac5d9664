"""The image's HEALTHCHECK: GET http://127.0.0.1:$HEALTHCHECK_PORT/health, exit 0 on a 2xx.

One image runs every djs process, each serving /health on its own port: `djs api` on 8000
(the default here), `djs worker --health-port N` on N. Compose sets HEALTHCHECK_PORT per
service. Standard library only: it runs in the slim runtime image.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("HEALTHCHECK_PORT", "8000")
    if not port.isdigit() or not 0 < int(port) < 65536:
        print(f"HEALTHCHECK_PORT is not a port: {port!r}", file=sys.stderr)
        return 1
    url = f"http://127.0.0.1:{int(port)}/health"
    try:
        # urlopen raises on a non-2xx answer (503: a dependency is down).
        with urllib.request.urlopen(url, timeout=3) as answer:
            return 0 if 200 <= answer.status < 300 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
