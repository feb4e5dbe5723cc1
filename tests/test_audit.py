import errno
import hashlib
import json
import os
import stat
import threading

import pytest

from screening.audit import AuditLog, sha256_of
from screening.errors import UserError


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
