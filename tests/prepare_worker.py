"""One of several processes preparing the same face cache at once (tests/test_prepare.py).

Says it is ready (``ready-<pid>`` beside the start file), then waits for the start file so
that all begin together, then prepares ``RAW`` into ``OUT`` with a
detector slow enough (0.2 s a batch) that the others arrive while it builds; prints one JSON
line: the cache folder, how many images this process ran the detector on, the kept count."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mtl.data import prepare as P
from mtl.data.faces import FaceSettings, WholeImage
from mtl.data.readers import Genki4kReader


class SlowDetector(WholeImage):
    seen = 0

    def detect(self, images, given=None):
        time.sleep(0.2)
        SlowDetector.seen += len(images)
        return super().detect(images, given)


raw, out, start = map(Path, sys.argv[1:4])
P.make_detector = lambda name, device: SlowDetector()
(start.parent / f"ready-{os.getpid()}").touch()
while not start.exists():
    time.sleep(0.01)
settings = FaceSettings(detector="none")
reader = Genki4kReader(raw)
cache = P.prepare(reader, out, settings, workers=0, batch_size=2, chunk_batches=1, progress=False)
print(json.dumps({"path": str(cache.path), "seen": SlowDetector.seen, "kept": len(cache)}))
