"""The console carries the project's lines only: third-party chatter goes to the run's log file."""

from __future__ import annotations

import logging
import warnings

import transformers.utils.logging as transformers_logging

from grpo.run import quiet
from grpo.run.quiet import THIRD_PARTY_LOG, attach_run_dir, quiet_console


def test_third_party_warnings_and_logs_go_to_the_run_log_and_ours_still_print(tmp_path, capsys, monkeypatch):
    shown = []
    monkeypatch.setattr(warnings, "showwarning", lambda message, *args, **kwargs: shown.append(str(message)))
    with warnings.catch_warnings(), quiet_console():
        warnings.simplefilter("always")
        assert not transformers_logging.is_progress_bar_enabled()
        warnings.warn_explicit("old name", FutureWarning, "/site-packages/somelib/module.py", 12)
        logging.getLogger("transformers.modeling_utils").warning("Some weights were not initialized")
        warnings.warn_explicit("ours", RuntimeWarning, quiet.__file__, 1)
        attach_run_dir(tmp_path)  # the run directory appears after the model has loaded
        logging.getLogger("datasets").warning("after the directory exists")
    err = capsys.readouterr().err
    assert shown == ["ours"]  # grpo's own warning reaches the usual display
    assert "old name" not in err and "Some weights" not in err and "after the directory" not in err
    log = (tmp_path / THIRD_PARTY_LOG).read_text()
    assert "somelib/module.py:12: FutureWarning: old name" in log
    assert "Some weights were not initialized" in log and "after the directory exists" in log
    assert quiet.HANDLER is None  # everything is restored on the way out


def test_nothing_to_say_writes_no_file(tmp_path):
    with quiet_console():
        attach_run_dir(tmp_path)
    assert not (tmp_path / THIRD_PARTY_LOG).exists()
