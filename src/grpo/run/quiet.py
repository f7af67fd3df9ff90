"""A console that carries only the project's lines: the progress bar, its warnings and its summary.

Third-party progress bars (weight loading, "Writing model shards", datasets) are switched off. The
log records of transformers, datasets, huggingface_hub and peft, and Python warnings raised outside
`grpo` (deprecation notices from the libraries themselves), go to `third_party.log` in the run
directory instead of the terminal: held in memory until `create_run_dir` names the directory,
then written there. A warning raised by `grpo` itself still prints.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import grpo

THIRD_PARTY_LOG = "third_party.log"
LIBRARIES = ("transformers", "datasets", "huggingface_hub", "peft", "accelerate", "torch")
QUIET_ENV = {
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TOKENIZERS_PARALLELISM": "false",  # else tokenizers warns about forking after it used threads
}
MAX_HELD = 1000  # records kept while no run directory exists (a run that fails early has none)
PACKAGE_DIR = str(Path(grpo.__file__).resolve().parent)
logger = logging.getLogger("grpo.third_party")


class DeferredFileHandler(logging.Handler):
    """Holds records until `attach(path)`, then writes them, and every later one, to that file."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.held: list[logging.LogRecord] = []
        self.file: logging.FileHandler | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.file is not None:
            self.file.emit(record)
        elif len(self.held) < MAX_HELD:
            self.held.append(record)

    def attach(self, path: Path) -> None:
        self.file = logging.FileHandler(path, encoding="utf-8", delay=True)
        self.file.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
        for record in self.held:
            self.file.emit(record)
        self.held.clear()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


HANDLER: DeferredFileHandler | None = None


def attach_run_dir(run_dir: Path) -> None:
    """Send third-party records to `run_dir/third_party.log` (a no-op outside `quiet_console`)."""
    if HANDLER is not None:
        HANDLER.attach(run_dir / THIRD_PARTY_LOG)


def _from_grpo(filename: str) -> bool:
    return str(Path(filename).resolve()).startswith(PACKAGE_DIR)


@contextlib.contextmanager
def quiet_console() -> Iterator[None]:
    """Within this block, third-party bars are off and third-party chatter goes to the run's log file."""
    global HANDLER
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    import transformers.utils.logging as transformers_logging  # every command that loads a model imports it

    show, handler = warnings.showwarning, DeferredFileHandler()
    bars = transformers_logging.is_progress_bar_enabled()
    previous = {name: (logging.getLogger(name).propagate, logging.getLogger(name).level) for name in LIBRARIES}

    def showwarning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    file: object = None, line: str | None = None) -> None:
        if _from_grpo(filename):
            show(message, category, filename, lineno, file, line)
        else:
            logger.warning("%s:%d: %s: %s", filename, lineno, category.__name__, message)

    transformers_logging.disable_default_handler()
    transformers_logging.disable_progress_bar()  # its own bars and huggingface_hub's
    for name in (*LIBRARIES, logger.name):
        library_logger = logging.getLogger(name)
        library_logger.addHandler(handler)
        library_logger.propagate = False
        library_logger.setLevel(logging.WARNING)
    warnings.showwarning, HANDLER = showwarning, handler
    try:
        yield
    finally:
        warnings.showwarning, HANDLER = show, None
        for name in (*LIBRARIES, logger.name):
            logging.getLogger(name).removeHandler(handler)
        for name, (propagate, level) in previous.items():
            logging.getLogger(name).propagate = propagate
            logging.getLogger(name).setLevel(level)
        transformers_logging.enable_default_handler()
        if bars:
            transformers_logging.enable_progress_bar()
        handler.close()
