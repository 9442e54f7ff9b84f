"""The library logs; the stages and the command show those lines as the prints they replaced."""

import logging

import pytest

from imgpipe.errors import ImgpipeError, run_stage
from imgpipe.logs import LOGGER, configure


@pytest.fixture(autouse=True)
def unconfigured():
    """The imgpipe logger as a process starts, and as it was again afterwards."""
    logger = logging.getLogger(LOGGER)
    saved = logger.handlers[:], logger.level
    logger.handlers, logger.level = [], logging.NOTSET
    yield logger
    logger.handlers, logger.level = saved


def test_information_goes_to_stdout_and_warnings_to_stderr_as_bare_lines_once(capsys):
    configure()
    configure()  # a second entry point in the same process adds no second copy of each line
    logging.getLogger("imgpipe.train.loop").info("train: early stop after epoch 3")
    logging.getLogger("imgpipe.train.checkpoint").warning("train: ignoring unreadable checkpoint")
    logging.getLogger("imgpipe.train.loop").debug("not for the user")
    logging.getLogger("somelib").info("another library's line")  # its own settings (none here), not ours
    out, err = capsys.readouterr()
    assert out == "train: early stop after epoch 3\n" and err == "train: ignoring unreadable checkpoint\n"


def test_a_stage_shows_the_library_lines_and_its_error_in_one_sentence(capsys):
    def main():
        logging.getLogger("imgpipe.ingest.sources").info("note: a link leads to a folder read already")
        raise ImgpipeError("params.yaml: ingest.source raw/x does not exist")

    with pytest.raises(SystemExit) as stopped:
        run_stage(main)
    out, err = capsys.readouterr()
    assert stopped.value.code == 2
    assert out == "note: a link leads to a folder read already\n"
    assert err == "error: params.yaml: ingest.source raw/x does not exist\n"


def test_imported_as_a_library_its_information_is_not_printed(capsys):
    logging.getLogger("imgpipe.augment.device").info("augment: batches on cuda")
    assert capsys.readouterr().out == ""
