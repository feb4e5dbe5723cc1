"""Who may sign in to a served app (``--auth-file``), and what a password guesser meets.

The file holds ``user:password`` lines; ``python app.py --auth-file FILE --add-user NAME``
writes the password as a salted scrypt hash instead, so the file no longer gives the
passwords away. Wrong sign-ins are answered after a delay. A user name with ``MAX_FAILURES``
of them from one address within ``LOCKOUT_S`` is refused there, even with its password, until
``LOCKOUT_S`` has passed without another try; with ``MAX_FAILURES_PER_NAME`` from any
addresses, it is refused from all of them (a restart clears both). So a mistyped password at
one desk does not lock a clinic's shared user name out of every other desk, and a guesser
spread over many addresses still gets few tries. Gradio itself allows unlimited guesses at
full speed.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import getpass
import hashlib
import hmac
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from screening.errors import UserError

MAX_FAILURES, MAX_FAILURES_PER_NAME, LOCKOUT_S, FAILURE_DELAY_S = 5, 20, 900, 1.0
MAX_TRACKED = 10_000  # (name, address) pairs with failures kept before the expired ones are dropped
SCRYPT = {"n": 2**15, "r": 8, "p": 1}  # about 0.1 s and 32 MiB per check
PREFIX = "scrypt$"

# Gradio hands its ``auth`` check a user name and password only; the address a sign-in came
# from, for the audit log and the lock-out warning, is set here by ``RememberClient``.
CLIENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("sign_in_client", default=None)


class RememberClient:
    """ASGI middleware: each request's client address in ``CLIENT`` while it is handled (the
    proxy's forwarded address behind a proxy on this computer, as for the assessments)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope.get("client"):
            CLIENT.set(scope["client"][0])
        await self.app(scope, receive, send)


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$n$r$p$salt$hash`` (base64), the form ``--add-user`` writes."""
    salt = os.urandom(16) if salt is None else salt
    digest = _scrypt(password, salt, **SCRYPT)
    b64 = base64.b64encode
    return f"{PREFIX}{SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def verify(password: str, stored: str) -> bool:
    """``password`` against a stored hash, or against a plain password, in constant time."""
    if not stored.startswith(PREFIX):
        return hmac.compare_digest(password.encode(), stored.encode())
    n, r, p, salt, expected = _fields(stored)
    return hmac.compare_digest(_scrypt(password, salt, n, r, p, len(expected)), expected)


def _fields(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """n, r, p, salt and digest of a ``scrypt$...`` string; ValueError if it is not one."""
    n, r, p, salt, digest = stored.removeprefix(PREFIX).split("$")
    return int(n), int(r), int(p), base64.b64decode(salt, validate=True), base64.b64decode(digest, validate=True)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int = 32) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * r * n + 2**20, dklen=dklen)


def read_auth_file(path: Path, empty_ok: bool = False) -> list[tuple[str, str]]:
    """``user:password`` (or ``user:scrypt$...``) lines, blank lines and ``#`` comments
    skipped. A file others can read is refused, as ssh refuses such keys; no message ever
    repeats a password."""
    try:
        text = path.read_text(encoding="utf-8")
        mode = path.stat().st_mode
    except OSError as err:
        raise UserError(f"cannot read --auth-file {path} ({err.strerror or type(err).__name__})") from None
    except UnicodeDecodeError:  # its message would quote the bytes around the fault: part of a password
        raise UserError(f"cannot read --auth-file {path} (not UTF-8 text)") from None
    if os.name == "posix" and mode & 0o077:
        raise UserError(f"--auth-file {path} can be read by other accounts; make it yours alone (chmod 600 {path})")
    logins = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, password = line.strip().partition(":")
        if not (sep and user and password):
            raise UserError(f"--auth-file {path}, line {number}: expected user:password")
        if password.startswith(PREFIX):
            try:
                _fields(password)
            except ValueError:  # binascii.Error is one
                raise UserError(f"--auth-file {path}, line {number}: a damaged scrypt hash; set the password "
                                "again with --add-user") from None
        logins.append((user, password))
    if not logins and not empty_ok:
        raise UserError(f"--auth-file {path} holds no user:password line")
    return logins


class SignIn:
    """Gradio's ``auth`` check: the logins of an auth file, with delay and lock-out.

    Unknown user names share one name's counts (and are checked against a dummy hash, so they
    take as long as known ones): guessing names locks no one out. Without an address (no
    request), all tries count as one address's.
    """

    def __init__(self, logins: list[tuple[str, str]], clock: Callable[[], float] = time.monotonic,
                 delay_s: float = FAILURE_DELAY_S,
                 on_result: Callable[[str, bool, str | None], None] | None = None) -> None:
        self.logins = dict(logins)
        self.on_result = on_result or (lambda user, accepted, client: None)
        self.clock, self.delay_s = clock, delay_s
        self.failures: dict[tuple[str | None, str | None], list[float]] = {}  # (name, address) -> times
        self.name_failures: dict[str | None, list[float]] = {}  # name -> times, from any address
        self._dummy = hash_password(os.urandom(8).hex())

    async def check(self, username: str, password: str) -> bool:
        key, client, now = username if username in self.logins else None, CLIENT.get(), self.clock()
        pair = (key, client)
        here = [t for t in self.failures.get(pair, []) if now - t < LOCKOUT_S]
        anywhere = [t for t in self.name_failures.get(key, []) if now - t < LOCKOUT_S]
        right = await asyncio.to_thread(verify, password, self.logins.get(username, self._dummy))
        if right and len(here) < MAX_FAILURES and len(anywhere) < MAX_FAILURES_PER_NAME:
            self.failures.pop(pair, None)  # the name's count from other addresses stays
            self.on_result(username, True, client)
            return True
        self.on_result(username, False, client)
        here.append(now)
        anywhere.append(now)
        who = f"user name {username!r}" if key is not None else "unknown user names"
        minutes = f"for the next {LOCKOUT_S // 60} minutes (restart the app to clear)"
        if len(here) == MAX_FAILURES:
            print(f"warning: {MAX_FAILURES} failed sign-ins for {who} from {client or 'one address'}: refused "
                  f"there {minutes}", file=sys.stderr)
        if len(anywhere) == MAX_FAILURES_PER_NAME:
            print(f"warning: {MAX_FAILURES_PER_NAME} failed sign-ins for {who}, the last from {client or 'one address'}: "
                  f"refused from every address {minutes}", file=sys.stderr)
        self.failures[pair] = here[-MAX_FAILURES:]
        self.name_failures[key] = anywhere[-MAX_FAILURES_PER_NAME:]
        if len(self.failures) > MAX_TRACKED:  # many addresses: forget those whose tries have expired
            self.failures = {k: v for k, v in self.failures.items() if now - v[-1] < LOCKOUT_S}
        await asyncio.sleep(self.delay_s)
        return False


def add_user(path: Path, user: str, ask: Callable[[str], str] | None = None) -> str:
    """Set ``user``'s password in the auth file (asked twice, stored hashed), creating the file
    readable by its owner alone; returns what was done, for the terminal."""
    from screening.files import write_atomically

    ask = ask or getpass.getpass
    if not user or ":" in user or user != user.strip() or user.startswith("#"):
        raise UserError(f"--add-user {user!r}: a user name has no colon and no spaces around it")
    existing = []
    if path.exists():
        read_auth_file(path, empty_ok=True)  # refuses a file others can read, or a damaged one
        existing = path.read_text(encoding="utf-8").splitlines()
    lines = [line for line in existing if line.strip().partition(":")[0] != user]
    changed = len(lines) < len(existing)
    try:
        password = ask(f"Password for {user}: ")
        if len(password) < 8:
            raise UserError("a password needs at least 8 characters; nothing was changed")
        if ask("Again: ") != password:
            raise UserError("the two passwords differ; nothing was changed")
    except EOFError:
        raise UserError("no password given; nothing was changed") from None
    lines.append(f"{user}:{hash_password(password)}")
    if not path.exists():
        path.touch(mode=0o600)  # write_atomically keeps the mode of the file it replaces
    write_atomically(path, lambda tmp: tmp.write_text("\n".join(lines) + "\n", encoding="utf-8"))
    return f"{'changed the password of' if changed else 'added'} {user} in {path}"
