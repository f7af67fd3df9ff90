"""`grpo bench` runs end to end on tiny settings and prints one JSON line with its peer's ratio."""

from __future__ import annotations

import json

import pytest

from grpo.cli import main


def _record(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main(argv) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert len(lines) == 1
    return json.loads(lines[0])


def test_bench_generate_prints_one_json_line_with_the_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    record = _record(capsys, ["bench", "generate", "--prompts", "2", "--group-size", "2", "--max-new-tokens", "4",
                              "--repeats", "1", "--threads", "1"])
    assert record["benchmark"] == "generate"
    assert record["grpo"]["new_tokens_per_s"] > 0 and record["transformers"]["new_tokens_per_s"] > 0
    assert record["ratio_tokens_per_s_vs_transformers"] > 0
    assert len(record["machine"]["loadavg_1_5_15"]) == 3


def test_bench_generate_full_length_decodes_every_row_to_the_end(capsys: pytest.CaptureFixture[str]) -> None:
    record = _record(capsys, ["bench", "generate", "--prompts", "2", "--group-size", "3", "--max-new-tokens", "6",
                              "--repeats", "2", "--threads", "1", "--full-length"])
    assert record["full_length"] is True
    for name in ("grpo", "grpo_plain_path", "transformers"):
        assert record[name]["new_tokens_per_run"] == 2 * 3 * 6, name  # no row stopped at EOS


def test_bench_logprob_paths_agree_and_report_memory(capsys: pytest.CaptureFixture[str]) -> None:
    record = _record(capsys, ["bench", "logprob", "--sequences", "2", "--tokens", "8", "--vocab", "64",
                              "--hidden", "16", "--threads", "1"])
    full, chunked = record["full_logits"], record["chunked"]
    assert full["checksum"] == pytest.approx(chunked["checksum"], rel=1e-5)
    assert full["peak_bytes"] > 0 and "ratio_path_bytes_chunked_over_full" in record


def test_bench_step_without_trl_reports_the_phase_split(capsys: pytest.CaptureFixture[str]) -> None:
    record = _record(capsys, ["bench", "step", "--prompts", "2", "--group-size", "2", "--max-new-tokens", "4",
                              "--steps", "1", "--rounds", "1", "--no-trl", "--threads", "1"])
    split = record["grpo"]
    for phase in ("generation_s", "scoring_s", "logprobs_s", "forward_backward_s", "optimizer_s"):
        assert split[phase] >= 0, phase
    assert split["s_per_step"] >= split["generation_s"]
    assert split["sampling_draws_max"] == 1  # one batch per step, as TRL samples (no dynamic-sampling redraws)


def test_bench_sandbox_reports_overhead_and_throughput(capsys: pytest.CaptureFixture[str]) -> None:
    from grpo.sandbox.pool import probed_host

    if len(probed_host().layers) < 4:
        pytest.skip(f"full isolation unavailable here ({probed_host().describe()})")
    record = _record(capsys, ["bench", "sandbox", "--executions", "5", "--parallel", "4", "--workers", "2"])
    assert record["benchmark"] == "sandbox" and len(record["layers"]) == 4
    assert 0 < record["overhead_ms"]["median"] <= record["overhead_ms"]["p90"]
    assert record["executions_per_s"] > 0


def test_bench_faults_runs_clean_and_faulty_trainings_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    record = _record(capsys, ["bench", "faults", "--steps", "2", "--prompts", "2", "--every", "2", "--rounds", "1",
                              "--faults", "exit", "--threads", "1"])
    runs = record["runs"]
    assert set(runs) == {"clean", "exit"} and runs["clean"]["ratio_vs_clean"] == 1.0
    assert runs["clean"]["fallback_samples_per_run"] == [0] and runs["clean"]["steps_per_run"] == [2]
    # the second of two reward calls exits: one step's 2 prompts x 8 completions fall back, the run goes on
    assert runs["exit"]["fallback_samples_per_run"] == [16] and runs["exit"]["steps_per_run"] == [2]
    assert runs["exit"]["median_step_s"] > 0


@pytest.mark.vllm
def test_bench_generate_and_step_with_the_vllm_backend(capsys: pytest.CaptureFixture[str]) -> None:
    record = _record(capsys, ["bench", "generate", "--backend", "vllm", "--prompts", "2", "--group-size", "2",
                              "--max-new-tokens", "4", "--repeats", "1", "--full-length"])
    assert record["backend"] == "vllm" and record["grpo_vllm"]["new_tokens_per_s"] > 0
    assert record["grpo_vllm"]["new_tokens_per_run"] == record["transformers"]["new_tokens_per_run"] == 2 * 2 * 4
    assert record["ratio_vllm_tokens_per_s_vs_transformers"] > 0
    record = _record(capsys, ["bench", "step", "--backend", "vllm", "--prompts", "2", "--group-size", "2",
                              "--max-new-tokens", "4", "--steps", "2", "--rounds", "1", "--no-trl"])
    assert record["backend"] == "vllm" and record["grpo"]["steps_timed"] == 2
    assert record["grpo"]["s_per_step"] >= record["grpo"]["generation_s"] > 0
