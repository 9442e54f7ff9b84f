"""How much memory the served model may spend decoding images: per image, per request and
in flight across the process, each read from an environment variable when it loads.

A file's size says nothing about what decoding it takes (a 194 KB 16-bit PNG of 9400 x
9400 pixels takes 2.2 GB), so a request's images are costed from their headers
(``decode.decoding_cost``) before any is decoded, and the costs are held against these
bounds. The scoring server answers requests in threads: the process budget makes a
second large image wait for the first rather than decode beside it.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from imgpipe.errors import ImgpipeError

MB = 2**20
# Sized for a server of 2 GB or more: the model and MLflow take about 1 GB, decoding at
# most the process bound on top. A 48-megapixel JPEG costs little (it is decoded
# downscaled); a 16-megapixel 16-bit scan costs about 450 MB.
LIMITS_MB = {
    "IMGPIPE_SERVE_MAX_IMAGE_MB": 512,
    "IMGPIPE_SERVE_MAX_REQUEST_MB": 2048,
    "IMGPIPE_SERVE_MAX_DECODING_MB": 1024,
}


@dataclass(frozen=True)
class Limits:
    image: int  # bytes one image may take to decode
    request: int  # bytes all the images of one request may take, one after the other
    process: int  # bytes the images being decoded at any moment may take together

    @classmethod
    def from_env(cls) -> Limits:
        """The bounds in the environment (megabytes), else the defaults above."""
        values = []
        for name, default in LIMITS_MB.items():
            raw = os.environ.get(name, "").strip() or str(default)
            if not raw.isdigit() or int(raw) == 0:
                raise ImgpipeError(
                    f"{name}={raw!r} is not a whole number of megabytes above 0; "
                    f"set it like {name}={default}, or unset it for {default}."
                )
            values.append(int(raw) * MB)
        image, request, process = values
        return cls(min(image, process), request, process)  # an image over the process bound could never start


class ByteBudget:
    """Bytes in flight across threads: ``hold(n)`` waits until ``n`` more fit under the limit."""

    def __init__(self, limit: int):
        self.limit = limit
        self.in_flight = 0
        self.peak = 0  # the most ever held at once, for tests and benchmarks
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def hold(self, nbytes: int) -> Iterator[None]:
        nbytes = min(nbytes, self.limit)  # callers refuse larger ones; never wait forever
        with self._changed:
            self._changed.wait_for(lambda: self.in_flight + nbytes <= self.limit)
            self.in_flight += nbytes
            self.peak = max(self.peak, self.in_flight)
        try:
            yield
        finally:
            with self._changed:
                self.in_flight -= nbytes
                self._changed.notify_all()
