"""A key's flood, in a process of its own: `python -m tests.flood PORT KEY SECONDS CONNECTIONS`
sends GET /jobs with KEY on CONNECTIONS keep-alive connections, each as fast as the server
answers, for SECONDS; prints {status: count} as JSON."""

from __future__ import annotations

import http.client
import json
import sys
import threading
import time
from collections import Counter


def flood(port: int, key: str, seconds: float, counts: Counter[int]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"authorization": f"Bearer {key}"}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn.request("GET", "/jobs?limit=1", headers=headers)
        response = conn.getresponse()
        response.read()
        counts[response.status] += 1
    conn.close()


def main() -> None:
    port, key, seconds, connections = sys.argv[1:5]
    counts: list[Counter[int]] = [Counter() for _ in range(int(connections))]
    threads = [
        threading.Thread(target=flood, args=(int(port), key, float(seconds), mine))
        for mine in counts
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps(sum(counts, Counter())))


if __name__ == "__main__":
    main()
