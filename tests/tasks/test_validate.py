"""The table of malformed datasets: each refused through `grpo train` with its exact one-line message.

Every case runs the command's entry point in-process (`grpo.cli.main`) on the tiny model (context
64, so prompts may be 64 - 24 = 40 tokens): exit code 2, one stderr line naming file and line, and
no run directory. The duplicate warning and `task.overlong_prompts=drop` are checked separately,
and one case runs as a real subprocess.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from grpo.cli import main
from grpo.config.load import load_config
from grpo.models.load import load_tokenizer
from grpo.tasks.validate import MAX_LISTED
from grpo.trainers.checks import checked_task_setup

E = "grpo train: error: "
GOOD = {"prompt": "1+1=", "answer": "2"}
GSM = {"question": "2+3=", "answer": "2+3=5\n#### 5"}
PAIR = {"prompt": "1+1=", "chosen": "2", "rejected": "3"}
LONG = "1+" * 30 + "1="  # 62 characters: 63 tokens with BOS, over the 40 the tiny model leaves
LIMIT = "over the limit of 40 (model context 64 - rollout.max_new_tokens 24)"
DROP_HINT = " (set task.overlong_prompts=drop to skip such rows)"
FILES = ["task.name=files", "task.train_path={d}/train.jsonl", "task.test_path={d}/test.jsonl"]
GSM8K = ["task.name=gsm8k", "task.template=plain", "task.train_path={d}/train.jsonl", "task.test_path={d}/test.jsonl"]
DPO = ["algorithm=dpo", "dpo.source=offline", "dpo.data={d}/pairs.jsonl"]


def lines(*rows: object) -> str:
    """JSONL text: dicts and lists as JSON, strings written as they are."""
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


# (id, files {name: str or bytes}, arguments after `grpo train`, the exact message after "error: ");
# {d} is the test's directory. Unless given, train.jsonl and test.jsonl hold good rows for the task.
CASES = [
    ("empty file", {"train.jsonl": ""}, FILES, "{d}/train.jsonl: the file is empty"),
    ("blank lines only", {"train.jsonl": "\n  \n"}, FILES, "{d}/train.jsonl: the file is empty"),
    ("missing file", {}, ["task.name=files", "task.train_path={d}/nope.jsonl"],
     "task.train_path: {d}/nope.jsonl does not exist"),
    ("unknown suffix", {"train.txt": "x"}, ["task.name=files", "task.train_path={d}/train.txt"],
     "task.train_path: train.txt is not .jsonl, .json, .parquet or .csv (or a dataset directory)"),
    ("bytes not utf-8", {"train.jsonl": lines(GOOD).encode() + b'{"prompt": "caf\xe9", "answer": "1"}\n'}, FILES,
     "{d}/train.jsonl:2: bytes that are not UTF-8 (0xe9 at byte 16)"),
    ("utf-16 file", {"train.jsonl": lines(GOOD).encode("utf-16")}, FILES,
     "{d}/train.jsonl: the file is UTF-16 text, not UTF-8; save it as UTF-8"),
    ("binary file", {"train.jsonl": b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"}, FILES,
     "{d}/train.jsonl: the file holds binary data (NUL bytes), not UTF-8 text"),
    ("line not json", {"train.jsonl": lines(GOOD, "{prompt: 1+1=}")}, FILES,
     "{d}/train.jsonl:2: not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
    ("line is an array", {"train.jsonl": lines(["1+1=", "2"])}, FILES,
     "{d}/train.jsonl:1: an array, not an object with named fields"),
    ("line is a string", {"train.jsonl": lines(GOOD, '"1+1=2"')}, FILES,
     "{d}/train.jsonl:2: a string, not an object with named fields"),
    ("nested too deeply", {"train.jsonl": lines(GOOD, "[" * 100_000 + "]" * 100_000)}, FILES,
     "{d}/train.jsonl:2: not valid JSON (nested too deeply)"),
    ("line is null", {"train.jsonl": lines(GOOD, "null")}, FILES,
     "{d}/train.jsonl:2: a null, not an object with named fields"),
    ("key given twice", {"train.jsonl": lines('{"prompt": "1+1=", "prompt": "2+2=", "answer": "4"}')}, FILES,
     "{d}/train.jsonl:1: key 'prompt' appears twice in one object"),
    ("lone surrogate", {"train.jsonl": lines('{"prompt": "1+1=\\ud800", "answer": "2"}')}, FILES,
     "{d}/train.jsonl:1: column 'prompt' (prompt) holds a lone surrogate ('\\ud800'), which is not Unicode text"),
    ("json empty array", {"train.json": "[]"}, ["task.name=files", "task.train_path={d}/train.json"],
     "{d}/train.json: no rows (an empty array)"),
    ("answer missing in one row", {"train.jsonl": lines(GOOD, {"prompt": "2+2="})}, FILES,
     "{d}/train.jsonl:2: column 'answer' (answer) is missing"),
    ("question instead of prompt", {"train.jsonl": lines({"question": "1+1=", "answer": "2"})}, FILES,
     "{d}/train.jsonl: no row has column 'prompt' (prompt); its columns: answer, question"),
    ("prompt object and answer list", {"train.jsonl": lines({"prompt": {"text": "1+1="}, "answer": [2]})}, FILES,
     "2 problems in the data: {d}/train.jsonl:1: column 'prompt' (prompt) is an object, not text; "
     "{d}/train.jsonl:1: column 'answer' (answer) is an array, not text or a number"),
    ("prompt null", {"train.jsonl": lines(GOOD, {"prompt": None, "answer": "2"})}, FILES,
     "{d}/train.jsonl:2: column 'prompt' (prompt) is null"),
    ("prompt empty", {"train.jsonl": lines({"prompt": "  ", "answer": "2"})}, FILES,
     "{d}/train.jsonl:1: column 'prompt' (prompt) is empty"),
    ("prompt a number", {"train.jsonl": lines({"prompt": 12, "answer": "2"})}, FILES,
     "{d}/train.jsonl:1: column 'prompt' (prompt) is a number, not text"),
    ("answer null", {"train.jsonl": lines({"prompt": "1+1=", "answer": None})}, FILES,
     "{d}/train.jsonl:1: column 'answer' (answer) is null"),
    ("answer empty", {"train.jsonl": lines({"prompt": "1+1=", "answer": ""})}, FILES,
     "{d}/train.jsonl:1: column 'answer' (answer) is empty"),
    ("answer boolean", {"train.jsonl": lines({"prompt": "1+1=", "answer": True})}, FILES,
     "{d}/train.jsonl:1: column 'answer' (answer) is a boolean, not text or a number"),
    ("answer NaN", {"train.jsonl": lines('{"prompt": "1+1=", "answer": NaN}')}, FILES,
     "{d}/train.jsonl:1: column 'answer' (answer) is nan, not a finite number"),
    ("answer infinite", {"train.jsonl": lines('{"prompt": "1+1=", "answer": 1e999}')}, FILES,
     "{d}/train.jsonl:1: column 'answer' (answer) is inf, not a finite number"),
    ("prompt too long", {"train.jsonl": lines(GOOD, {"prompt": LONG, "answer": "31"})}, FILES,
     "{d}/train.jsonl:2: prompt is 63 tokens once templated, " + LIMIT + DROP_HINT),
    ("prompt over max_prompt_tokens", {"train.jsonl": lines({"prompt": "1+2+3=", "answer": "6"})},
     [*FILES, "task.max_prompt_tokens=5"],
     "{d}/train.jsonl:1: prompt is 7 tokens once templated, over the limit of 5 (task.max_prompt_tokens)" + DROP_HINT),
    ("400,000-character prompt", {"train.jsonl": lines({"prompt": "9" * 400_000 + "=", "answer": "1"})}, FILES,
     "{d}/train.jsonl:1: prompt is 400002 tokens once templated, " + LIMIT + DROP_HINT),
    ("twelve bad rows", {"train.jsonl": lines(GOOD, *[{"prompt": "1+1="}] * 12)}, FILES,
     "12 problems in the data: " + "; ".join(f"{{d}}/train.jsonl:{i}: column 'answer' (answer) is missing"
                                             for i in range(2, MAX_LISTED + 2)) + "; and 2 more"),
    ("test file problems", {"test.jsonl": lines(GOOD, {"prompt": "2+2=", "answer": None})}, FILES,
     "{d}/test.jsonl:2: column 'answer' (answer) is null"),
    ("train and test problems together", {"train.jsonl": lines("oops"), "test.jsonl": lines({"prompt": ""})}, FILES,
     "3 problems in the data: {d}/train.jsonl:1: not valid JSON (Expecting value at column 1); {d}/test.jsonl: "
     "no row has column 'answer' (answer); its columns: prompt; {d}/test.jsonl:1: column 'prompt' (prompt) is empty"),
    ("csv ragged row and empty cell", {"train.csv": "prompt,answer\n1+1=,2\n2+2=\n3+3=,\n"},
     ["task.name=files", "task.train_path={d}/train.csv"],
     "2 problems in the data: {d}/train.csv:3: 1 field, but the header has 2; {d}/train.csv:4: column 'answer' "
     "(answer) is empty"),
    ("csv header only", {"train.csv": "prompt,answer\n"}, ["task.name=files", "task.train_path={d}/train.csv"],
     "{d}/train.csv: no rows (only blank lines and a header)"),
    ("json array with a bad element", {"train.json": '[{"prompt": "1+1=", "answer": 2},\n 5,\n {"prompt": null}]'},
     ["task.name=files", "task.train_path={d}/train.json"],
     "3 problems in the data: {d}/train.json:2: a number, not an object with named fields; {d}/train.json:3: "
     "column 'prompt' (prompt) is null; {d}/train.json:3: column 'answer' (answer) is missing"),
    ("json single object", {"train.json": '{\n "prompt": "1+1=",\n "answer": 2\n}'},
     ["task.name=files", "task.train_path={d}/train.json"],
     "{d}/train.json: holds one JSON object; expected an array of row objects or one object per line"),
    ("gsm8k answer without ####", {"train.jsonl": lines(GSM, {"question": "1+1=", "answer": "It is 2."})}, GSM8K,
     "{d}/train.jsonl:2: column 'answer' (answer): no '####' answer line in GSM8K solution 'It is 2.'"),
    ("gsm8k empty reference", {"train.jsonl": lines({"question": "1+1=", "answer": "1+1=2\n#### "})}, GSM8K,
     "{d}/train.jsonl:1: column 'answer' (answer) gives an empty reference answer"),
    ("gsm8k prompt column instead of question", {"train.jsonl": lines(GOOD)}, GSM8K,
     "{d}/train.jsonl: no row has column 'question' (prompt); its columns: answer, prompt"),
    ("gsm8k question null", {"train.jsonl": lines(GSM, {"question": None, "answer": "#### 1"})}, GSM8K,
     "{d}/train.jsonl:2: column 'question' (prompt) is null"),
    ("gsm8k answer a list", {"train.jsonl": lines({"question": "1+1=", "answer": ["#### 2"]})}, GSM8K,
     "{d}/train.jsonl:1: column 'answer' (answer) is an array, not text or a number"),
    ("math without boxed", {"train.jsonl": lines({"problem": "1+1=", "solution": "two"})},
     ["task.name=math", "task.template=plain", "task.train_path={d}/train.jsonl", "task.test_path={d}/train.jsonl"],
     "{d}/train.jsonl:1: column 'solution' (answer): no \\boxed{{}} answer in MATH solution 'two'"),
    ("countdown bad nums and target", {"train.jsonl": lines({"nums": "4 6", "target": 2.5})},
     ["task.name=countdown", "task.template=plain", "task.train_path={d}/train.jsonl"],
     "2 problems in the data: {d}/train.jsonl:1: column 'nums' (nums) is a string, not a list of integers; "
     "{d}/train.jsonl:1: column 'target' (target) is 2.5, not an integer"),
    ("pairs missing rejected", {"pairs.jsonl": lines(PAIR, {"prompt": "1+1=", "chosen": "2"})}, DPO,
     "{d}/pairs.jsonl:2: column 'rejected' (rejected) is missing"),
    ("pairs identical responses", {"pairs.jsonl": lines({"prompt": "1+1=", "chosen": "2", "rejected": "2"})}, DPO,
     "{d}/pairs.jsonl:1: chosen and rejected are the same text, so the pair teaches nothing"),
    ("pairs chosen not text", {"pairs.jsonl": lines({"prompt": "1+1=", "chosen": 2, "rejected": "3"})}, DPO,
     "{d}/pairs.jsonl:1: column 'chosen' (chosen) is a number, not text"),
    ("pairs prompt empty", {"pairs.jsonl": lines(PAIR, {"prompt": "", "chosen": "2", "rejected": "3"})}, DPO,
     "{d}/pairs.jsonl:2: column 'prompt' (prompt) is empty"),
    ("pairs empty file", {"pairs.jsonl": ""}, DPO, "{d}/pairs.jsonl: the file is empty"),
    ("pairs line not json", {"pairs.jsonl": lines(PAIR, "{oops")}, DPO,
     "{d}/pairs.jsonl:2: not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
    ("pairs wrong columns", {"pairs.jsonl": lines({"question": "1+1=", "good": "2", "bad": "3"})}, DPO,
     "3 problems in the data: {d}/pairs.jsonl: no row has column 'prompt' (prompt); its columns: bad, good, "
     "question; {d}/pairs.jsonl: no row has column 'chosen' (chosen); its columns: bad, good, question; "
     "{d}/pairs.jsonl: no row has column 'rejected' (rejected); its columns: bad, good, question"),
    ("pairs too long", {"pairs.jsonl": lines({"prompt": "1+1=", "chosen": "2" * 70, "rejected": "3"})}, DPO,
     "{d}/pairs.jsonl:1: prompt and longer response are 76 tokens, over the limit of 64 (model context 64)"),
    ("pairs missing file", {}, ["algorithm=dpo", "dpo.source=offline", "dpo.data={d}/none.jsonl"],
     "dpo.data: {d}/none.jsonl does not exist"),
]


def write_files(directory: Path, files: dict[str, str | bytes], defaults: dict[str, str]) -> None:
    for name, content in {**defaults, **files}.items():
        path = directory / name
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)


def defaults_for(argv: list[str]) -> dict[str, str]:
    good = lines(GSM, GSM) if "task.name=gsm8k" in argv else lines(GOOD, {"prompt": "2+2=", "answer": 4})
    return {"train.jsonl": good, "test.jsonl": good}


@pytest.mark.parametrize(("files", "argv", "message"), [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_malformed_dataset_is_refused_with_one_exact_line(files, argv, message, tmp_path, tiny_model_dir, capsys):
    write_files(tmp_path, files, defaults_for(argv))
    fill = lambda text: text.format(d=tmp_path)
    code = main(["train", *map(fill, argv), f"model.path={tiny_model_dir}", f"log.output_dir={tmp_path}/runs"])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == E + fill(message) + "\n"
    assert captured.out == ""
    assert not (tmp_path / "runs").exists()


def test_the_table_covers_at_least_25_datasets_across_files_gsm8k_and_pairs():
    assert len(CASES) >= 25
    kinds = {"files": FILES, "gsm8k": GSM8K, "pairs": DPO}
    assert all(sum(case[2] == argv for case in CASES) >= 5 for argv in kinds.values())


def test_parquet_rows_are_checked_with_their_row_numbers(tmp_path, tiny_model_dir, capsys):
    import pyarrow
    import pyarrow.parquet

    rows = [GOOD, {"prompt": "2+2=", "answer": None}, {"prompt": None, "answer": "6"}]
    pyarrow.parquet.write_table(pyarrow.Table.from_pylist(rows), tmp_path / "train.parquet")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    code = main(["train", "task.name=files", f"task.train_path={tmp_path}/train.parquet",
                 f"task.test_path={tmp_path}/broken.parquet", f"model.path={tiny_model_dir}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(E + f"3 problems in the data: {tmp_path}/train.parquet:2: column 'answer' (answer) is null; "
                          f"{tmp_path}/train.parquet:3: column 'prompt' (prompt) is null; "
                          f"{tmp_path}/broken.parquet: cannot read as Parquet (")
    assert err.count("\n") == 1


def checked(tmp_path: Path, model_dir: Path, *overrides: str):
    config = load_config(None, ["task.name=files", f"model.path={model_dir}", *overrides])
    return checked_task_setup(config, load_tokenizer(model_dir))


def test_numbers_are_valid_answers_read_as_their_text(tmp_path, tiny_model_dir):
    (tmp_path / "data.csv").write_text("prompt,answer\n1+1=,2\n2+2=,4\n3+3=,6\n4+4=,8\n")
    (tmp_path / "data.jsonl").write_text(lines({"prompt": "5+5=", "answer": 10}, {"prompt": "1/2=", "answer": 0.5}))
    setup = checked(tmp_path, tiny_model_dir, f"task.train_path={tmp_path}/data.csv",
                    f"task.test_path={tmp_path}/data.jsonl")
    assert [e.answer for e in setup.task.test_examples()] == ["10", "0.5"]
    assert sorted(e.answer for e in setup.task.train) == ["2", "4", "6", "8"]


def test_held_out_prompts_seen_in_training_are_warned_about_with_a_count(tmp_path, tiny_model_dir, caplog):
    (tmp_path / "train.jsonl").write_text(lines(GOOD, {"prompt": "2+2=", "answer": "4"}, {"prompt": "3+3=",
                                                                                         "answer": "6"}))
    (tmp_path / "test.jsonl").write_text(lines(GOOD, {"prompt": "3+3=", "answer": "6"}, {"prompt": "4+4=",
                                                                                         "answer": "8"}))
    with caplog.at_level(logging.WARNING, logger="grpo.data"):
        checked(tmp_path, tiny_model_dir, f"task.train_path={tmp_path}/train.jsonl",
                f"task.test_path={tmp_path}/test.jsonl")
    assert caplog.messages == [f"warning: 2 of 3 held-out prompts {tmp_path}/test.jsonl also appear in "
                               f"{tmp_path}/train.jsonl, so held-out accuracy overstates what was learned; "
                               "remove the duplicates"]


def test_no_warning_without_duplicates(tmp_path, tiny_model_dir, caplog):
    (tmp_path / "train.jsonl").write_text(lines(GOOD))
    (tmp_path / "test.jsonl").write_text(lines({"prompt": "2+2=", "answer": "4"}))
    with caplog.at_level(logging.WARNING, logger="grpo.data"):
        checked(tmp_path, tiny_model_dir, f"task.train_path={tmp_path}/train.jsonl",
                f"task.test_path={tmp_path}/test.jsonl")
    assert caplog.messages == []


def test_overlong_prompts_are_dropped_and_counted_when_asked(tmp_path, tiny_model_dir, caplog):
    rows = [GOOD, {"prompt": LONG, "answer": "31"}, {"prompt": "2+2=", "answer": "4"}, {"prompt": LONG + "1"}]
    (tmp_path / "train.jsonl").write_text(lines(*rows[:3], {"prompt": LONG + "1", "answer": "1"}))
    (tmp_path / "test.jsonl").write_text(lines({"prompt": "3+3=", "answer": "6"}))
    with caplog.at_level(logging.WARNING, logger="grpo.data"):
        setup = checked(tmp_path, tiny_model_dir, f"task.train_path={tmp_path}/train.jsonl",
                        f"task.test_path={tmp_path}/test.jsonl", "task.overlong_prompts=drop")
    assert [e.prompt for e in setup.task.train] == ["1+1=", "2+2="]
    assert caplog.messages == [f"warning: dropped 2 of 4 rows of {tmp_path}/train.jsonl: their prompts are over 40 "
                               "tokens once templated (model context 64 - rollout.max_new_tokens 24; "
                               "task.overlong_prompts=drop)"]


def test_dropping_every_row_is_still_an_error(tmp_path, tiny_model_dir, capsys):
    (tmp_path / "train.jsonl").write_text(lines({"prompt": "1+2+3=", "answer": "6"}))
    code = main(["train", "task.name=files", f"task.train_path={tmp_path}/train.jsonl", "task.max_prompt_tokens=3",
                 "task.overlong_prompts=drop", f"model.path={tiny_model_dir}", f"log.output_dir={tmp_path}/runs"])
    assert code == 2
    assert capsys.readouterr().err == (E + f"{tmp_path}/train.jsonl: every prompt is over 3 tokens once templated "
                                       "(task.max_prompt_tokens), so task.overlong_prompts=drop leaves no rows\n")
    assert not (tmp_path / "runs").exists()


def test_the_real_command_prints_one_line_and_exits_2(tmp_path, tiny_model_dir):
    (tmp_path / "train.jsonl").write_bytes(b'{"prompt": "1+1=", "answer": "2"}\n\xff\xfe\n{"question": "x"}\n')
    result = subprocess.run([sys.executable, "-m", "grpo", "train", "task.name=files",
                             f"task.train_path={tmp_path}/train.jsonl", f"task.test_path={tmp_path}/train.jsonl",
                             f"model.path={tiny_model_dir}", f"log.output_dir={tmp_path}/runs"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (E + f"3 problems in the data: {tmp_path}/train.jsonl:2: bytes that are not UTF-8 (0xff "
                             f"at byte 1); {tmp_path}/train.jsonl:3: column 'prompt' (prompt) is missing; "
                             f"{tmp_path}/train.jsonl:3: column 'answer' (answer) is missing\n")
    assert not (tmp_path / "runs").exists()
