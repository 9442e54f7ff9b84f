"""Tar archives as a source: WebDataset shards from `imgpipe pack`, `.cls` labels, a tar of a folder."""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import tarfile

import pytest

from helpers import write_digit_folder
from imgpipe.errors import ImgpipeError
from imgpipe.ingest.sources import scan_folder, scan_shards, scan_tar
from imgpipe.ops.pack import pack


def described(candidates) -> list[tuple[str, str, str]]:
    return [(c.id, c.class_name, c.split) for c in candidates]


def file_hashes(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture
def pets(tmp_path):
    root = tmp_path / "pets"
    write_digit_folder(root, per_class=9)
    (root / "zero" / ".hidden.png").write_bytes(b"not seen")
    (root / "readme.txt").write_text("beside the classes")
    return root


def test_pack_keeps_every_image_with_its_class_in_seeded_fixed_size_reproducible_shards(pets, tmp_path):
    shards = pack(pets, tmp_path / "a", shard_size=10, seed=3)
    assert [s.name for s in shards] == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]
    counts = [len(tarfile.open(s).getnames()) for s in shards]
    assert counts == [10, 10, 7]  # 27 images, one member each
    assert described(scan_shards(tmp_path / "a")) == described(scan_folder(pets))
    # The same folder packed again: the same bytes, so DVC sees no change.
    pack(pets, tmp_path / "b", shard_size=10, seed=3)
    assert file_hashes(tmp_path / "a") == file_hashes(tmp_path / "b")
    # Another seed, another order of samples in the shards.
    pack(pets, tmp_path / "c", shard_size=10, seed=4)
    assert tarfile.open(tmp_path / "c" / "shard-000000.tar").getnames() != tarfile.open(shards[0]).getnames()
    with pytest.raises(ImgpipeError, match="already exists"):
        pack(pets, tmp_path / "a")


def test_presplit_folders_keep_their_splits_in_shards(tmp_path):
    write_digit_folder(tmp_path / "col" / "train", per_class=4)
    write_digit_folder(tmp_path / "col" / "test", per_class=2)
    pack(tmp_path / "col", tmp_path / "shards", shard_size=5)
    found = described(scan_shards(tmp_path / "shards"))
    assert found == described(scan_folder(tmp_path / "col"))
    assert {split for _, _, split in found} == {"train", "test"}


def add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    archive.addfile(info, io.BytesIO(data))


def test_cls_members_label_webdataset_samples(pets, tmp_path):
    folder = tmp_path / "wds"
    folder.mkdir()
    with tarfile.open(folder / "part-0.tar", "w") as archive:
        for i, path in enumerate(sorted(pets.rglob("*.jpg"))[:6]):
            add(archive, f"{i:06d}.jpg", path.read_bytes())
            add(archive, f"{i:06d}.cls", f"{path.relative_to(pets).parts[0]}\n".encode())
    found = described(scan_shards(folder))
    assert [c for _, c, _ in found] == [p.relative_to(pets).parts[0] for p in sorted(pets.rglob("*.jpg"))[:6]]
    assert found[0][0] == "000000.jpg"


def test_a_tar_of_a_folder_reads_like_the_folder(pets, tmp_path):
    with tarfile.open(tmp_path / "pets.tar", "w") as archive:
        archive.add(pets, arcname="pets")  # as `tar -cf pets.tar pets` makes it
    assert described(scan_tar(tmp_path / "pets.tar")) == described(scan_folder(pets))
    # Nor does `tar -cf pets.tar -C pets .` change the ids.
    with tarfile.open(tmp_path / "dot.tar", "w") as archive:
        archive.add(pets, arcname=".")
    assert described(scan_tar(tmp_path / "dot.tar")) == described(scan_folder(pets))


def test_bad_archives_are_one_sentence_naming_the_file(pets, tmp_path):
    with tarfile.open(tmp_path / "pets.tar", "w") as archive:
        archive.add(pets, arcname="pets")
    (tmp_path / "pets.tar.gz").write_bytes(gzip.compress((tmp_path / "pets.tar").read_bytes()))
    shutil.copy(tmp_path / "pets.tar.gz", tmp_path / "zipped.tar")
    with pytest.raises(ImgpipeError, match=r"zipped\.tar: not a readable tar archive .* repack it with `tar -cf`"):
        scan_tar(tmp_path / "zipped.tar")
    shards = tmp_path / "twice"
    shards.mkdir()
    for name in ("a.tar", "b.tar"):
        shutil.copy(tmp_path / "pets.tar", shards / name)
    with pytest.raises(ImgpipeError, match=r"b\.tar: pets/one/.* is also in .*a\.tar"):
        scan_shards(shards)


@pytest.mark.slow
def test_ingest_output_is_byte_identical_from_the_folder_its_shards_and_its_tar(project):
    root = project.root
    write_digit_folder(root / "raw" / "digits3", per_class=24)  # enough to decode in worker processes
    project.set_params({"ingest": {"source": "raw/digits3", "channels": 3, "image_size": 16, "workers": 2}})
    project.run("python", "-m", "stages.ingest")
    from_folder = file_hashes(root / "data" / "ingest")
    project.run("imgpipe", "pack", "raw/digits3", "raw/digits3-shards", "--shard-size", "7")
    project.set_params({"ingest": {"source": "raw/digits3-shards"}})
    project.run("python", "-m", "stages.ingest")
    assert file_hashes(root / "data" / "ingest") == from_folder
    with tarfile.open(root / "raw" / "digits3.tar", "w") as archive:
        archive.add(root / "raw" / "digits3", arcname="digits3")
    project.set_params({"ingest": {"source": "raw/digits3.tar"}})
    project.run("python", "-m", "stages.ingest")
    assert file_hashes(root / "data" / "ingest") == from_folder
