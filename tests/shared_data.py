"""Where the real occupancy data lives: ``PARKING_SHARED_DATA``, else ``../shared/data`` beside the
checkout, else the workplace's ``/work/shared/data`` (a CI clone may sit anywhere)."""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    os.environ.get("PARKING_SHARED_DATA", ""),
    str(Path(__file__).resolve().parents[2] / "shared" / "data"),
    "/work/shared/data",
]
SHARED_DATA = next((Path(path) for path in _CANDIDATES if path and Path(path).is_dir()), Path("/work/shared/data"))
BIRMINGHAM = SHARED_DATA / "birmingham-parking.csv"
