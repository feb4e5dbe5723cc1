"""The benchmark CLI: its JSON keys, which README and notes quote, and its table."""

import json

from screening import bench


def test_json_line_has_the_documented_keys(capsys):
    """A real, tiny run (batch 2, one timed batch, head-only training): one JSON line."""
    assert bench.main(["--json", "--batch-size", "2", "--repeats", "1", "--train-blocks", "0"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in ("infer_ips", "infer_ips_stock", "train_ips", "train_ips_stock"):
        assert result[key] > 0
    assert result["batch_size"] == 2 and result["train_blocks"] == 0 and "CPUs" in result["machine"]


def test_table_prints_both_implementations_and_ratios(monkeypatch, capsys):
    rates = {False: {"infer": 10.0, "train": 2.0}, True: {"infer": 50.0, "train": 7.0}}
    monkeypatch.setattr(bench, "measure", lambda fast, *args: rates[fast])
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert "stock Keras" in out and "screening" in out
    assert "5.00x" in out and "3.50x" in out  # inference and training ratios
