"""``python -m screening`` and the executable's entry: app or batch, and the options a
double-clicked executable reads from beside itself."""

import sys

import pytest

from screening.__main__ import OPTIONS_FILE, main, saved_options
from screening.errors import UserError
from tests.conftest import Terminal


def test_saved_options_are_read_with_comments_quotes_and_windows_paths(tmp_path):
    assert saved_options(tmp_path) == []  # no file: no options
    (tmp_path / OPTIONS_FILE).write_text(
        "\ufeff# set by the clinic's IT, 2026-11-26\n--prevalence 0.05   # our share of malignant lesions\n"
        '--audit-log "C:\\SkinScreen logs\\audit.jsonl" --auth-file D:\\logins.txt\n',
        encoding="utf-8")  # Notepad's byte-order mark; Windows paths, quoted where they hold a space
    assert saved_options(tmp_path) == ["--prevalence", "0.05", "--audit-log", "C:\\SkinScreen logs\\audit.jsonl",
                                       "--auth-file", "D:\\logins.txt"]
    (tmp_path / OPTIONS_FILE).write_text('--audit-log "unclosed\n')
    with pytest.raises(UserError, match=f"{OPTIONS_FILE}: cannot be read as options"):
        saved_options(tmp_path)


def test_the_executable_started_without_arguments_uses_them_and_says_so(tmp_path, monkeypatch, capsys):
    (tmp_path / OPTIONS_FILE).write_text("--version\n")
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "SkinScreen"))
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "SkinScreen")])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 0
    out, err = capsys.readouterr()
    assert out.startswith("SkinScreen ") and f"options from {OPTIONS_FILE}: --version" in err
    (tmp_path / OPTIONS_FILE).write_text('--port "7860\n')
    assert main() == 2 and "cannot be read as options" in capsys.readouterr().err


def test_a_command_line_or_python_m_ignores_the_file(tmp_path, monkeypatch, capsys):
    (tmp_path / OPTIONS_FILE).write_text("--port not-a-number\n")
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    monkeypatch.setattr(sys, "argv", ["screening", "--version"])
    with pytest.raises(SystemExit):
        main()  # not frozen, and arguments given: the file is not read
    assert "options from" not in capsys.readouterr().err


def test_the_executable_checks_an_audit_log(tmp_path, capsys):
    from screening.audit import AuditLog

    log = tmp_path / "audit.jsonl"
    AuditLog(log).stop()
    assert main(["audit", str(log)]) == 0 and "1 entry; chain intact" in capsys.readouterr().out
    log.write_text("edited\n" + log.read_text())
    assert main(["audit", str(log)]) == 1 and "line 1: not an entry" in capsys.readouterr().out


def test_the_executable_evaluates_a_clinics_own_labels(tiny_bundle, tmp_path, capsys):
    from PIL import Image

    from tests.conftest import lesion_like

    for i in range(2):
        Image.fromarray(lesion_like(seed=i)).save(tmp_path / f"{i}.jpg")
    (tmp_path / "labels.csv").write_text("image_id,dx,sex\n0.jpg,malignant,female\n1.jpg,benign,male\n")
    assert main(["evaluate", "--model", str(tiny_bundle), "--images", str(tmp_path), "--labels",
                 str(tmp_path / "labels.csv"), "--out", str(tmp_path / "check")]) == 0
    assert "2 images: malignant AUROC" in capsys.readouterr().out
    assert main(["subgroups", str(tmp_path / "check")]) == 0  # by the labels' own columns
    assert "| female | 1 | 1 / 0 |" in capsys.readouterr().out


def test_help_names_the_other_commands_before_the_apps_options(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and out.index("SkinScreen evaluate --images") < out.index("usage: screening-app")
    assert "SkinScreen batch FOLDER" in out and "SkinScreen audit LOG" in out and "SkinScreen subgroups FOLDER" in out


@pytest.mark.parametrize(("saved", "kept_open"), [("--port 0", True), ("--version", False)])
def test_a_double_clicked_executable_keeps_its_window_open_on_an_error(tmp_path, monkeypatch, capsys, saved,
                                                                       kept_open):
    """Its console window would close at once, the error unread."""
    (tmp_path / OPTIONS_FILE).write_text(saved)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(tmp_path / "SkinScreen.exe"))
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "SkinScreen.exe")])
    monkeypatch.setattr(sys, "stdin", Terminal("\n"))
    try:
        main()
    except SystemExit:
        pass
    out, err = capsys.readouterr()
    assert ("Press Enter to close this window." in out) == kept_open
    if kept_open:
        assert "--port must be between 1 and 65535" in err
    monkeypatch.setattr(sys, "argv", ["SkinScreen.exe", "--port", "0"])  # started from a command line
    assert main() == 2 and "Press Enter" not in capsys.readouterr().out
