"""Demo helpers for hack/demo.sh: make input files, and send prediction traffic to a local server.

    python hack/lib/demo_traffic.py data OUT_DIR         # wine-fresh.csv, wine-shifted.csv
    python hack/lib/demo_traffic.py traffic URL ROWS     # ROWS rows to /models/wine-classifier/predict

Uses the wine dataset that ships with scikit-learn; nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.datasets import load_wine

SHIFTED = ("alcohol", "proline", "color_intensity")


def _frame():  # type: ignore[no-untyped-def]
    frame = load_wine(as_frame=True).frame.drop(columns=["target"])
    frame.columns = [c.replace("/", "_") for c in frame.columns]
    return frame


def make_data(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sample = _frame().sample(n=2000, replace=True, random_state=7).reset_index(drop=True)
    sample.insert(0, "id", [f"row-{i:05d}" for i in range(len(sample))])
    sample.to_csv(out / "wine-fresh.csv", index=False)
    shifted = sample.copy()
    for column in SHIFTED:
        shifted[column] = shifted[column] * 1.5
    shifted.to_csv(out / "wine-shifted.csv", index=False)
    print(f"wrote {out / 'wine-fresh.csv'} and {out / 'wine-shifted.csv'} ({len(sample)} rows each; "
          f"the shifted copy has {', '.join(SHIFTED)} x1.5)")


def _wait_ready(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"server at {url} not ready after {timeout:.0f}s")


def send_traffic(url: str, rows: int) -> None:
    _wait_ready(url)
    features = _frame().to_numpy()
    rng = np.random.default_rng(1)
    classes: Counter[str] = Counter()
    sent = requests = 0
    while sent < rows:
        size = int(min(rng.integers(1, 9), rows - sent))
        batch = features[rng.integers(0, len(features), size)].tolist()
        body = json.dumps({"features": batch}).encode()
        request = urllib.request.Request(
            f"{url}/models/wine-classifier/predict", data=body, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        classes.update(str(p) for p in answer["predictions"])
        sent += size
        requests += 1
    print(f"{requests} requests, {sent} rows to wine-classifier v{answer['version']}; "
          f"predicted classes: {dict(sorted(classes.items()))}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "data":
        make_data(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "traffic":
        send_traffic(sys.argv[2].rstrip("/"), int(sys.argv[3]))
    else:
        raise SystemExit(__doc__)
