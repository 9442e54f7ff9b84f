"""Images read in place from tar archives: WebDataset shards, or a tar of an ImageFolder tree.

A million small files make ``dvc add``, ``dvc status`` and ``dvc push`` crawl; the same
images in a handful of tar files do not. Two layouts are read:

- a folder of ``.tar`` shards in the WebDataset layout: members ``<key>.<ext>``, where the
  key is the member's path up to the first dot of its file name. The class is the key's
  first folder (``cat/0001.jpg``), as in an ImageFolder tree, or the text of a ``<key>.cls``
  member beside the image (``0001.jpg`` with ``0001.cls``). ``imgpipe pack`` writes these.
- one plain ``.tar`` of an ImageFolder tree, as ``tar -cf pets.tar pets`` makes it; a single
  top folder that is not a split name (``pets/``) is not part of the image ids.

Each image's id is its member name, so a folder and its shards give the same ids, and
ingest the same output byte for byte. Members are found once from the tar headers and
then read by offset, so decoding runs in parallel across processes with no unpacking.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from imgpipe.errors import ImgpipeError
from imgpipe.ingest.decoding import is_image_name

SHARD_SUFFIX = ".tar"
CLASS_SUFFIX = ".cls"


@dataclass(frozen=True)
class Member:
    """One file inside a tar archive, read without unpacking it."""

    tar: Path
    offset: int  # of the file's data in the archive
    size: int

    def read_bytes(self, limit: int | None = None) -> bytes:
        wanted = self.size if limit is None else min(limit, self.size)
        with open(self.tar, "rb") as f:
            f.seek(self.offset)
            data = f.read(wanted)
        if len(data) < wanted:
            # The archive was cut off inside this member: a partial image must not pass for a whole one.
            raise OSError(f"cut short: the shard ends {len(data)} bytes into this member's {self.size}")
        return data

    def __str__(self) -> str:
        return f"{self.tar}@{self.offset}"


def is_shard_folder(folder: Path) -> bool:
    """A folder of ``.tar`` files and no visible subfolders: shards, not class folders."""
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return any(p.suffix == SHARD_SUFFIX and p.is_file() for p in entries) and not any(p.is_dir() for p in entries)


def shard_files(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.iterdir() if p.suffix == SHARD_SUFFIX and p.is_file() and not p.name.startswith(".")
    )


def tar_members(
    tars: list[Path], keep_tops: frozenset[str] | None = None, damage: list[str] | None = None
) -> tuple[dict[str, Member], dict[str, str]]:
    """Image members by name, and ``.cls`` texts by key, across ``tars``.

    ``damage``: given, a sentence per archive that ends early or holds an unreadable
    stretch is added to it; the members that can be read are still returned.

    ``keep_tops``: given, one top folder common to every member is dropped (a tar made of
    a folder) unless its lowercased name is in it (a split folder is part of the layout).
    """
    files: dict[str, tuple[Path, tarfile.TarInfo]] = {}
    for tar in tars:
        infos, problems = _read_headers(tar)
        if damage is not None:
            damage.extend(problems)
        for info in infos:
            name = _clean(info.name)
            if name is None or not info.isfile():
                continue
            if name in files:
                raise ImgpipeError(f"{tar}: {name} is also in {files[name][0]}; each image must be in one shard only.")
            files[name] = (tar, info)
    if keep_tops is not None:
        files = _strip_top_folder(files, keep_tops)
    images, labels = {}, {}
    for name, (tar, info) in files.items():
        member = Member(tar, info.offset_data, info.size)
        if name.endswith(CLASS_SUFFIX):
            try:
                labels[sample_key(name)] = member.read_bytes(1024).decode("utf-8", errors="replace").strip()
            except OSError:
                pass  # a label cut off with its shard: its image, if any, is reported with the shard
        elif is_image_name(PurePosixPath(name)):
            images[name] = member
    return images, labels


def sample_key(name: str) -> str:
    """WebDataset's key: the path up to the first dot of the file name."""
    folder, _, base = name.rpartition("/")
    stem = base.split(".", 1)[0]
    return f"{folder}/{stem}" if folder else stem


# gzip, bzip2, xz and zstd: a compressed tar has no offsets to read members at.
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")


def _read_headers(tar: Path) -> tuple[list[tarfile.TarInfo], list[str]]:
    """The members of ``tar`` that can be read, and a sentence for each stretch that cannot."""
    try:
        with tarfile.open(tar, "r:"):  # plain tar only: members are read by offset
            pass  # a first header that is no tar header at all: not an archive
        # ignore_zeros: tarfile otherwise stops, without a word, at the first damaged header.
        with tarfile.open(tar, "r:", ignore_zeros=True) as archive:
            infos = []
            while True:
                try:
                    info = archive.next()
                except tarfile.ReadError:  # the last member's data runs past the end of the file
                    break
                if info is None:
                    break
                infos.append(info)
        return infos, _damage(tar, infos)
    except tarfile.ReadError as exc:
        with open(tar, "rb") as f:
            compressed = f.read(4).startswith(_COMPRESSED)
        hint = (
            " It is compressed, and only a plain tar can be read in place: repack it with `tar -cf`."
            if compressed
            else ""
        )
        raise ImgpipeError(f"{tar}: not a readable tar archive ({exc}).{hint}") from None
    except OSError as exc:
        raise ImgpipeError(f"{tar}: cannot read it: {exc.strerror or exc}") from None


def _damage(tar: Path, infos: list[tarfile.TarInfo]) -> list[str]:
    """Where ``tar`` is not the unbroken run of members and end marker a tar writer leaves:
    a gap between members (a damaged header), a member cut short, or a missing end."""
    size, end, found = tar.stat().st_size, 0, []
    for info in infos:
        if info.offset > end:
            found.append(
                f"{tar}: bytes {end} to {info.offset} cannot be read as tar members (a damaged header); "
                "the images stored there are lost, the members after them were read"
            )
        stored = info.isreg() or info.type not in tarfile.SUPPORTED_TYPES
        end = info.offset_data + (-(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE if stored else 0)
    if end > size:
        found.append(
            f"{tar}: the shard ends early, inside member {infos[-1].name} (the file stops at byte {size}); "
            "the images stored after that point are lost: copy or pack the shard again"
        )
    elif end == size:
        found.append(
            f"{tar}: the shard ends early, with no end-of-archive marker after its last member "
            f"{infos[-1].name if infos else ''}; the images stored after it are lost: copy or pack the shard again"
        )
    elif not _all_zeros(tar, end):
        found.append(
            f"{tar}: bytes {end} to {size}, after its last readable member, are not tar data (the shard is "
            "cut short or damaged); the images stored there are lost: copy or pack the shard again"
        )
    return found


def _all_zeros(tar: Path, start: int) -> bool:
    """Whether everything from ``start`` to the end of ``tar`` is zero bytes, as an end marker is."""
    with open(tar, "rb") as f:
        f.seek(start)
        while chunk := f.read(2**20):
            if chunk.count(0) != len(chunk):
                return False
    return True


def _clean(name: str) -> str | None:
    """A member's path without ``./``; None for hidden files and anything in hidden folders."""
    parts = [p for p in PurePosixPath(name).parts if p not in (".", "/")]
    if not parts or any(p.startswith(".") for p in parts):
        return None
    return "/".join(parts)


def _strip_top_folder(files: dict, keep_tops: frozenset[str]) -> dict:
    tops = {name.split("/", 1)[0] for name in files}
    if len(tops) != 1 or any("/" not in name for name in files) or next(iter(tops)).lower() in keep_tops:
        return files
    return {name.split("/", 1)[1]: entry for name, entry in files.items() if "/" in name}
