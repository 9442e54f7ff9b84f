"""Exact duplicates and label conflicts, found by content hash before any split.

A duplicate left in place can land in train and test at once, which inflates test
scores; a file saved under two labels teaches the model both. Duplicates with one label
keep their first copy (in id order); conflicting copies are all dropped, since imgpipe
cannot know which label is right.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Deduplicated:
    keep: np.ndarray  # sorted indices of the images to keep
    duplicates: list[dict] = field(default_factory=list)  # {"sha256", "kept", "removed": [ids]}
    conflicts: list[dict] = field(default_factory=list)  # {"sha256", "files": [{"file", "class"}]}

    @property
    def copies_removed(self) -> int:
        return sum(len(d["removed"]) for d in self.duplicates)

    @property
    def conflicts_removed(self) -> int:
        return sum(len(c["files"]) for c in self.conflicts)


def deduplicate(sha256: list[str], labels: np.ndarray, ids: list[str], classes: list[str]) -> Deduplicated:
    groups: dict[str, list[int]] = {}
    for i, digest in enumerate(sha256):
        groups.setdefault(digest, []).append(i)
    keep, duplicates, conflicts = [], [], []
    for digest, members in groups.items():
        if len(members) == 1:
            keep.append(members[0])
            continue
        members = sorted(members, key=lambda i: ids[i])
        if len({int(labels[i]) for i in members}) > 1:
            files = [{"file": ids[i], "class": classes[int(labels[i])]} for i in members]
            conflicts.append({"sha256": digest, "files": files})
            continue
        keep.append(members[0])
        duplicates.append({"sha256": digest, "kept": ids[members[0]], "removed": [ids[i] for i in members[1:]]})
    return Deduplicated(np.array(sorted(keep), dtype=np.int64), duplicates, conflicts)
