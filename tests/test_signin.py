"""Sign-in (``screening.signin``): the auth file, hashed passwords, delay and lock-out. The
live server with a sign-in is tested in test_app.py."""

import asyncio
import os
import signal
import stat

import pytest

from screening.errors import UserError
from screening.signin import CLIENT, LOCKOUT_S, MAX_FAILURES, SignIn, add_user, hash_password, read_auth_file, verify
from tests.conftest import auth_file

POSIX = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX permissions")


def test_auth_file_lines_comments_and_one_line_errors(tmp_path):
    assert read_auth_file(auth_file(tmp_path, "# clinic\n\nnurse:s3cret:with-colon\ndoctor:pw\n")) == [
        ("nurse", "s3cret:with-colon"), ("doctor", "pw")]
    for text, message in (("nurse\n", "line 1: expected user:password"), ("# none\n", "holds no user:password"),
                          ("nurse:scrypt$a$b$c$d$e\n", "line 1: a damaged scrypt hash")):
        with pytest.raises(UserError, match=message):
            read_auth_file(auth_file(tmp_path, text))
    with pytest.raises(UserError, match=r"cannot read --auth-file .*missing.txt \(No such file or directory\)"):
        read_auth_file(tmp_path / "missing.txt")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("nurse:caf\u00e9s3cret\n".encode("latin-1"))
    latin1.chmod(0o600)
    with pytest.raises(UserError, match=r"\(not UTF-8 text\)$") as err:
        read_auth_file(latin1)
    assert "s3cret" not in str(err.value) and "0xe9" not in str(err.value)


@POSIX
def test_an_auth_file_others_can_read_is_refused_without_showing_it(tmp_path):
    with pytest.raises(UserError, match="chmod 600") as err:
        read_auth_file(auth_file(tmp_path, "nurse:s3cret\n", mode=0o644))
    assert "s3cret" not in str(err.value)


def test_a_hashed_password_verifies_and_does_not_show_it():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify("correct horse", stored) and not verify("correct hors", stored)
    assert stored != hash_password("correct horse")  # salted
    assert verify("plain", "plain") and not verify("plain", "plane")  # plain lines still work


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_guessed_user_name_is_locked_out_then_let_in_again(capsys):
    clock = Clock()
    signin = SignIn([("nurse", hash_password("s3cret-pass")), ("doctor", "plain-pass")], clock=clock, delay_s=0)

    def check(user, password):
        return asyncio.run(signin.check(user, password))

    assert check("nurse", "s3cret-pass")
    for _ in range(MAX_FAILURES):
        assert not check("nurse", "guess")
    assert "5 failed sign-ins for user name 'nurse'" in capsys.readouterr().err
    assert not check("nurse", "s3cret-pass")  # locked, even with the password
    assert check("doctor", "plain-pass")  # others are not
    for _ in range(3 * MAX_FAILURES):
        assert not check("intruder", "x")  # unknown names share one count...
    assert check("doctor", "plain-pass") and len(signin.failures) == 2  # ...and lock out nobody
    clock.now += LOCKOUT_S - 1
    assert not check("nurse", "s3cret-pass")  # a try while locked keeps it locked
    clock.now += LOCKOUT_S
    assert check("nurse", "s3cret-pass")


def test_a_lock_out_holds_where_the_guesses_came_from_until_they_come_from_many(capsys):
    """A mistyped password at one desk locked a clinic's shared user name out of every desk."""
    clock, heard = Clock(), []
    signin = SignIn([("nurse", "plain-pass")], clock=clock, delay_s=0, on_result=lambda *a: heard.append(a))

    def from_address(address, password):
        async def attempt():
            CLIENT.set(address)  # as RememberClient does for each request
            return await signin.check("nurse", password)
        return asyncio.run(attempt())

    assert from_address("10.0.0.7", "plain-pass")
    for _ in range(MAX_FAILURES):
        assert not from_address("10.0.0.9", "typo")
    assert heard[:2] == [("nurse", True, "10.0.0.7"), ("nurse", False, "10.0.0.9")]  # the audit log's entries
    assert "5 failed sign-ins for user name 'nurse' from 10.0.0.9: refused there" in capsys.readouterr().err
    assert not from_address("10.0.0.9", "plain-pass")  # locked there, even with the password...
    assert from_address("10.0.0.7", "plain-pass")  # ...not at the other desk
    for desk in range(2, 5):  # guesses spread over addresses: 20 in all lock the name everywhere
        for _ in range(MAX_FAILURES):
            assert not from_address(f"10.0.1.{desk}", "guess")
    assert not from_address("10.0.1.5", "guess")
    assert "refused from every address" in capsys.readouterr().err
    assert not from_address("10.0.0.7", "plain-pass")
    clock.now += LOCKOUT_S
    assert from_address("10.0.0.7", "plain-pass") and from_address("10.0.0.9", "plain-pass")


def test_guesses_from_many_addresses_do_not_grow_memory_for_ever(monkeypatch):
    from screening import signin as module

    monkeypatch.setattr(module, "MAX_TRACKED", 10)
    clock = Clock()
    signin = SignIn([("nurse", "plain-pass")], clock=clock, delay_s=0)

    async def attempt(address):
        CLIENT.set(address)
        return await signin.check("intruder", "x")

    for i in range(10):
        asyncio.run(attempt(f"10.0.2.{i}"))
    clock.now += LOCKOUT_S
    for i in range(10, 12):
        asyncio.run(attempt(f"10.0.2.{i}"))
    assert len(signin.failures) == 2  # the ten expired addresses were dropped once there were too many


def test_add_user_writes_a_private_file_of_hashes_and_changes_a_password(tmp_path):
    path = tmp_path / "logins.txt"
    answers = iter(["first-password", "first-password"])
    assert add_user(path, "nurse", ask=lambda _: next(answers)) == f"added nurse in {path}"
    if os.name == "posix":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ((user, stored),) = read_auth_file(path)
    assert user == "nurse" and verify("first-password", stored) and "first-password" not in path.read_text()
    path.write_text("# clinic\n" + path.read_text() + "doctor:plain-pass\n")
    answers = iter(["second-password", "second-password"])
    assert add_user(path, "nurse", ask=lambda _: next(answers)).startswith("changed the password of nurse")
    logins = dict(read_auth_file(path))
    assert verify("second-password", logins["nurse"]) and logins["doctor"] == "plain-pass"
    assert path.read_text().startswith("# clinic\n")


@pytest.mark.parametrize(("user", "answers", "message"), [
    ("nurse", ["short", "short"], "at least 8 characters"),
    ("nurse", ["long-enough-1", "long-enough-2"], "differ; nothing was changed"),
    ("nu:rse", [], "no colon"),
    ("nurse", [], "no password given"),
])
def test_add_user_refuses_and_changes_nothing(tmp_path, user, answers, message):
    path = auth_file(tmp_path, "doctor:plain-pass\n")
    before = path.read_text()
    left = iter(answers)

    def ask(_):
        try:
            return next(left)
        except StopIteration:
            raise EOFError from None

    with pytest.raises(UserError, match=message):
        add_user(path, user, ask=ask)
    assert path.read_text() == before
