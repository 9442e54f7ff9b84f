"""``ingest.engine: ray``: the same decoding as ``decoding.decode_files``, as Ray tasks.

Files are decoded in batches across every CPU of the cluster; results come back in
input order, so ingest writes the same bytes as with the local engine. Each worker reads
the files itself: on a cluster of several machines, the source must be on storage every
node mounts at the same path (docs/how-to/distributed.md, "Ray").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence

from imgpipe.cluster import connect
from imgpipe.ingest.decoding import Decoded, DecodeSettings, decode_file

BATCH = 64  # files per task: enough to amortise the task's overhead
IN_FLIGHT_PER_CPU = 4  # tasks queued per cluster CPU; bounds the decoded pixels held at once


def _decode_batch(paths: Sequence, settings: DecodeSettings) -> list[Decoded]:
    return [decode_file(path, settings) for path in paths]


def decode_files_on_ray(paths: Sequence, settings: DecodeSettings, desc: str = "decode") -> Iterator[Decoded]:
    """Decode ``paths`` in order on the Ray cluster, with a progress bar."""
    from tqdm import tqdm

    ray = connect("ingest.engine")
    task = ray.remote(_decode_batch)
    limit = max(1, int(ray.cluster_resources().get("CPU", 1)) * IN_FLIGHT_PER_CPU)
    pending: deque = deque()
    with tqdm(total=len(paths), desc=f"{desc} (ray)", unit="img", mininterval=1.0, dynamic_ncols=True) as bar:
        for start in range(0, len(paths), BATCH):
            pending.append(task.remote(list(paths[start : start + BATCH]), settings))
            while len(pending) >= limit:
                yield from _collect(ray, pending.popleft(), bar)
        while pending:
            yield from _collect(ray, pending.popleft(), bar)


def _collect(ray, ref, bar) -> list[Decoded]:
    results = ray.get(ref)
    bar.update(len(results))
    return results
