import errno
import hashlib
import json
import multiprocessing
import os
import stat
import threading

import pytest

from screening.audit import ENTRY_START, AuditLog, check, main
from screening.errors import UserError
from screening.files import sha256_of


def test_an_image_is_named_by_the_sha256_its_file_has(tmp_path):
    path = tmp_path / "Jane Doe 1961.jpg"
    path.write_bytes(b"\xff\xd8 some image bytes")
    assert sha256_of(path) == sha256_of(path.read_bytes()) == hashlib.sha256(path.read_bytes()).hexdigest()


def test_entries_are_appended_one_json_object_per_line_owner_only(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"action": "from an earlier run"}\n')
    log = AuditLog(path)
    log.write("assess", user="nurse", client="10.0.0.7", image_sha256="ab" * 32, flag="REFER")
    log.stop()
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert [e["action"] for e in entries] == ["from an earlier run", "assess", "stop"]  # nothing rewritten
    assert entries[1]["user"] == "nurse" and entries[1]["flag"] == "REFER" and entries[1]["time"][19] in "+-Z"
    new = tmp_path / "new.jsonl"
    AuditLog(new).stop()
    assert stat.S_IMODE(new.stat().st_mode) == 0o600


def test_several_users_at_once_never_interleave(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    big = ["cd" * 32] * 400  # a batch of 400 images: one ~30 KB line

    def many(user):
        for _ in range(25):
            log.write("batch", user=user, images=big)

    threads = [threading.Thread(target=many, args=(f"user{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 100 and all(json.loads(line)["images"] == big for line in lines)


def test_a_log_that_cannot_be_written_is_one_line_at_start_and_on_each_entry(tmp_path, monkeypatch):
    with pytest.raises(UserError, match=r"--audit-log .*nowhere.*: cannot be written \(No such file or directory\)"):
        AuditLog(tmp_path / "nowhere" / "audit.jsonl")
    log = AuditLog(tmp_path / "audit.jsonl")

    def full(fd, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(UserError, match=r"the audit log .* cannot be written \(No space left on device\)"):
        log.write("assess")


def _lines(path):
    return path.read_bytes().splitlines(keepends=True)


def _written(path, n=5):
    log = AuditLog(path)
    for i in range(n):
        log.write("assess", user="nurse", image_sha256=f"{i:064x}", flag="REFER" if i % 2 else "routine")
    log.stop()
    return path


def test_each_entry_names_the_hash_of_the_line_before_it(tmp_path):
    path = _written(tmp_path / "audit.jsonl")
    lines = _lines(path)
    entries = [json.loads(line) for line in lines]
    assert entries[0]["prev"] is None
    assert all(e["prev"] == hashlib.sha256(before).hexdigest() for e, before in zip(entries[1:], lines))
    found = check(path)
    assert (found.entries, found.breaks, found.last_hash) == (6, [], hashlib.sha256(lines[-1]).hexdigest())
    _written(path, 2)  # the app started again: the chain goes on from the last line
    assert check(path).breaks == [] and check(path).entries == 9


@pytest.mark.parametrize("tamper, broken_at", [
    (lambda lines: lines[:1] + [lines[1].replace(b"REFER", b"routine")] + lines[2:], 3),  # an answer changed
    (lambda lines: lines[:2] + lines[3:], 3),  # an entry removed
    (lambda lines: lines[:3] + [lines[1]] + lines[3:], 4),  # an entry copied in
    (lambda lines: lines[2:], 1),  # the oldest entries removed
])
def test_an_entry_changed_removed_or_inserted_breaks_the_chain_there(tmp_path, tamper, broken_at, capsys):
    path = _written(tmp_path / "audit.jsonl")
    path.write_bytes(b"".join(tamper(_lines(path))))
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert f": line {broken_at}: " in out and "chain BROKEN" in out


def test_an_anchor_kept_elsewhere_shows_the_log_was_not_rewritten_up_to_it(tmp_path, capsys):
    path = _written(tmp_path / "audit.jsonl")
    assert main([str(path)]) == 0
    anchor = capsys.readouterr().out.split()[-1]
    _written(path, 3)
    assert main([str(path), "--anchor", anchor]) == 0
    assert "the anchored entry is line 6" in capsys.readouterr().out
    # Rewritten from line 3 on with freshly computed hashes: the chain holds, the anchor does not.
    lines = _lines(path)
    path.write_bytes(b"".join(lines[:2]))
    log = AuditLog(path)
    for line in lines[2:]:
        entry = json.loads(line)
        entry.pop("prev")
        entry["flag"] = "routine"
        log.write(**entry)
    assert check(path).breaks == []
    assert main([str(path), "--anchor", anchor]) == 1
    assert "no entry has the hash" in capsys.readouterr().out


def test_a_log_from_before_the_chain_and_a_write_cut_short_are_told_apart(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"action": "start"}\n{"action": "assess"}\n{"action": "ass')  # the disk filled mid-line
    _written(path, 2)
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert out.count(": line ") == 1 and "line 3: not an entry (a write cut short" in out
    assert "5 entries (2 at the start written before entries were chained)" in out


def _append(path, user):
    log = AuditLog(path)
    for _ in range(40):
        log.write("assess", user=user, images=["ef" * 32] * 50)


def test_several_app_processes_on_one_log_keep_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    processes = [multiprocessing.get_context("fork").Process(target=_append, args=(path, f"p{i}")) for i in range(3)]
    for p in processes:
        p.start()
    for p in processes:
        p.join()
    found = check(path)
    assert (found.entries, found.breaks) == (120, [])


def test_checking_a_log_that_is_not_there_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nowhere.jsonl: cannot be read (No such file or directory)" in err


def test_an_entry_longer_than_the_tail_read_is_chained_whole(tmp_path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.write("batch", images=["ab" * 32] * 2000)  # a 2,000-image batch: one ~140 KB line
    log.write("assess")
    lines = _lines(path)
    assert len(lines[0]) > 2 * 65536 and json.loads(lines[1])["prev"] == hashlib.sha256(lines[0]).hexdigest()


def test_a_share_that_refuses_file_locks_still_gets_every_entry(tmp_path, monkeypatch):
    from screening import audit

    def refused(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(audit.fcntl, "flock", refused)
    path = _written(tmp_path / "audit.jsonl")
    assert check(path).entries == 6 and check(path).breaks == []


def test_a_file_that_is_not_a_log_is_one_line_not_a_break_at_every_line(tmp_path, capsys):
    other = tmp_path / "notes.jsonl"
    other.write_text("a clinic's notes\n" + json.dumps({"patient": "x"}) + "\n")  # JSON, but no entry
    assert main([str(other)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not an audit log (none of its 2 lines is an entry)" in err


def test_a_log_broken_at_many_lines_names_the_first_and_counts_the_rest(tmp_path, capsys):
    path = _written(tmp_path / "audit.jsonl")
    with open(path, "ab") as f:
        f.write(b"pasted over\n" * 25)
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert out.count("not an entry") == 20 and "5 more breaks after these" in out and "chain BROKEN" in out


@pytest.mark.parametrize("held", [b"Dr Smith's notes\n", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8000,
                                  b'{"patient": "x"}\n'])
def test_a_file_that_is_not_a_log_is_refused_as_the_log_and_left_as_it_was(tmp_path, held):
    other = tmp_path / "notes.txt"
    other.write_bytes(held)
    with pytest.raises(UserError, match=r"notes.txt: not an audit log \(its first line is no entry\)"):
        AuditLog(other)
    assert other.read_bytes() == held


def test_a_log_whose_newest_write_was_cut_short_is_still_taken(tmp_path):
    path = _written(tmp_path / "audit.jsonl", 2)
    with open(path, "ab") as f:
        f.write(b'{"action": "ass')  # the disk filled mid-line
    AuditLog(path).write("start")
    found = check(path)
    assert found.entries == 4 and found.breaks == ["line 4: not an entry (a write cut short, or an edit)"]


def test_a_log_whose_very_first_write_was_cut_short_is_still_taken(tmp_path):
    """A first line cut short (the disk full as the app started) made the log "not an audit
    log", so the app would not start on its own log; it is one bad line, as any cut write."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b'{"time": "2026-11-27T09:00:00+00:00", "action": "st')
    for _ in range(2):  # and taken again at the next start, now that entries follow it
        log = AuditLog(path)
        log.write("start")
        log.stop()
    found = check(path)
    assert found.entries == 4 and found.breaks == ["line 1: not an entry (a write cut short, or an edit)"]
    written = path.read_bytes().splitlines()[1:]
    assert [json.loads(line)["action"] for line in written] == ["start", "stop"] * 2
    assert all(line.startswith(ENTRY_START) for line in written)  # how a cut first line is known
