"""How the app is served: who can reach it (address, public link, sign-in, HTTPS), on which
port, and how it stops.

All checked before the model loads, so a mistake costs a second, not a model load.
"""

from __future__ import annotations

import argparse
import errno
import http.client
import socket
import ssl
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

from screening.errors import UserError
from screening.files import NO_ROOM
from screening.info import NOTICE
from screening.scratch import low_space
from screening.signin import RememberClient, SignIn, read_auth_file

LOOPBACK = ("127.0.0.1", "localhost")
ANY_ADDRESS = ("0.0.0.0", "")


# Without --port: the first of these not taken by another program (another Gradio app, say: they
# default to 7860 too), so that a double-clicked SkinScreen still starts
DEFAULT_PORT, PORTS_TRIED = 7860, 20


def add_serving_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where and to whom the page is served")
    g.add_argument("--port", type=int,
                   help=f"port to listen on (default: {DEFAULT_PORT}, or the next free one up to "
                        f"{DEFAULT_PORT + PORTS_TRIED - 1} where another program has it)")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this computer only)")
    g.add_argument("--share", action="store_true", help="also create a public gradio.live link (off by default)")
    g.add_argument("--auth-file", type=Path, metavar="FILE",
                   help="ask for a sign-in: FILE holds one user:password per line, readable by you alone")
    g.add_argument("--add-user", metavar="NAME",
                   help="set NAME's password in --auth-file (asked twice, stored as a hash), then exit")
    g.add_argument("--root-path", metavar="PATH", default="",
                   help="the path a reverse proxy serves the page at, such as /skinscreen (README.md: a tested "
                        "nginx block)")
    g.add_argument("--audit-log", type=Path, metavar="FILE",
                   help="append who assessed which image (by its SHA-256, not its name), when, and the answer, "
                        "one JSON line each")
    g.add_argument("--ssl-certfile", type=Path, metavar="FILE", help="serve HTTPS with this certificate (PEM)...")
    g.add_argument("--ssl-keyfile", type=Path, metavar="FILE", help="...and this private key (PEM)")


def serving(args: argparse.Namespace,
            on_sign_in: Callable[[str, bool, str | None], None] | None = None) -> tuple[str, dict]:
    """The address to open and Gradio's ``launch`` settings, after checking every option; warns
    when others can reach the page without a sign-in. ``on_sign_in(user, accepted, client)``
    hears of each sign-in (the audit log)."""
    chosen = args.port is not None
    if not chosen:
        args.port = DEFAULT_PORT
    if not 0 < args.port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {args.port}")
    if ":" in args.host:  # Gradio writes such an address into its own URLs without brackets, and fails
        raise UserError(f"--host {args.host}: IPv6 addresses do not work with the web server; use 127.0.0.1 "
                        "(this computer), 0.0.0.0 (every IPv4 address) or the computer's IPv4 address")
    root = check_root_path(args.root_path)
    signin = SignIn(read_auth_file(args.auth_file), on_result=on_sign_in) if args.auth_file else None
    if not alone(args) and signin is None:
        where = ("anyone with the public link" if args.share else "other computers on the network"
                 if args.host not in LOOPBACK else f"whoever the proxy at {root} lets through")
        print(f"warning: {where} can reach this page and its patient images; --auth-file asks for a sign-in",
              file=sys.stderr)
    tls = (args.ssl_certfile, args.ssl_keyfile)
    if any(tls) and not all(tls):
        raise UserError("HTTPS needs both --ssl-certfile and --ssl-keyfile")
    for path in filter(None, tls):
        if not path.is_file():
            raise UserError(f"{path} not found")
    https = all(tls)
    if https:
        check_certificate(*tls)
    url = settle_port(args, chosen)
    if args.host in ANY_ADDRESS:  # and the other computers need this one's network address
        url += f" (from other computers: {page_address(args, network_address())})"
    if root:
        url += f" (through the proxy: its address followed by {root}/)" if root.startswith("/") else f" ({root}/)"
    return url, {"server_name": args.host, "server_port": args.port, "share": args.share, "root_path": root,
                 "auth": signin.check if signin else None,
                 "app_kwargs": {"middleware": [Middleware(RoomForUploads),
                                               *([Middleware(RememberClient)] if signin else [])]},
                 "auth_message": f"SkinScreen: sign in. {NOTICE}",
                 "ssl_certfile": str(args.ssl_certfile) if https else None,
                 "ssl_keyfile": str(args.ssl_keyfile) if https else None,
                 "ssl_verify": not https}  # Gradio's check of itself: a self-signed certificate is fine


class RoomForUploads:
    """ASGI middleware: an upload the disk of Gradio's upload folder has no room for is refused
    in one line, which the page shows ("HTTP 507: SkinScreen cannot take this file: ...") and the
    terminal too. Gradio wrote such a file until the disk was full, answered "HTTP 500" with a
    traceback, and left the part it wrote filling the disk for every upload after it. The size
    comes from the request's Content-Length; a disk that fills while the file is written (two
    uploads at once) gets the same answer, but that part stays until the scratch folder's sweep."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].endswith("/upload"):
            return await self.app(scope, receive, send)
        from gradio.utils import get_upload_folder  # imported by then: the app is Gradio's

        folder = get_upload_folder()
        size = dict(scope["headers"]).get(b"content-length", b"")
        why = low_space(folder, int(size) if size.isdigit() else 0)
        started, read = False, False  # the answer begun; the request's body read to its end

        async def receiving() -> dict:
            nonlocal read
            message = await receive()
            read = read or not message.get("more_body")
            return message

        async def sending(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        if why is None:
            try:
                return await self.app(scope, receiving, sending)
            except OSError as err:
                if err.errno not in NO_ROOM or started:
                    raise
                why = low_space(folder) or f"the disk holding {folder} is full ({err.strerror}): free some space on it"
        print(f"warning: an upload was refused: {why}", file=sys.stderr)
        while not read:  # the rest read, unwritten: a browser still sending takes an answer for a dropped line
            await receiving()
        await PlainTextResponse(f"SkinScreen cannot take this file: {why}. Ask whoever runs SkinScreen.",
                                status_code=507)(scope, receive, send)


def page_address(args: argparse.Namespace, host: str | None = None) -> str:
    """The address this computer's browser (or one at ``host``) opens the page at, without a
    proxy in front."""
    # "every address" is no address a browser can open: this computer's own is
    shown = host or ("127.0.0.1" if args.host in (*LOOPBACK, *ANY_ADDRESS) else args.host)
    return f"http{'s' if args.ssl_certfile and args.ssl_keyfile else ''}://{shown}:{args.port}"


def alone(args: argparse.Namespace) -> bool:
    """Only this computer's own browsers reach the page: no network address, public link or
    proxy in front (a proxy on this computer forwards others' requests from 127.0.0.1)."""
    return args.host in LOOPBACK and not args.share and not args.root_path


def check_root_path(path: str) -> str:
    """``/skinscreen`` (trailing slashes dropped) or a full ``https://host/skinscreen``, as
    Gradio takes it; anything else would leave every script and upload on the page unfound."""
    path = path.rstrip("/")
    if path and not path.startswith(("/", "http://", "https://")) or any(c in path for c in " ?#\\"):
        raise UserError(f"--root-path must be a path such as /skinscreen (or a full https:// address), got {path!r}")
    return path


class _Passphrase(Exception):
    pass


def check_certificate(cert: Path, key: Path) -> None:
    """A certificate and key that TLS cannot use fail here, in one line, before the model
    loads (the server would fail later in its own thread, with a traceback and a misleading
    "Cannot find empty port")."""

    def no_passphrase():
        raise _Passphrase  # else OpenSSL would wait for one at the terminal

    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key, password=no_passphrase)
    except _Passphrase:
        raise UserError(f"{key} is protected by a passphrase, which SkinScreen cannot ask for: save the key "
                        f"without one (openssl pkey -in {key} -out NEW.pem), readable by you alone") from None
    except ssl.SSLError as err:
        if err.reason == "KEY_VALUES_MISMATCH":
            raise UserError(f"{key} is not the private key of the certificate {cert}") from None
        why = f" (OpenSSL: {err.reason})" if err.reason else ""
        raise UserError(f"--ssl-certfile {cert} and --ssl-keyfile {key} must be a certificate and its private key, "
                        f"in PEM{why}") from None


def network_address() -> str:
    """This computer's address on its network, as other computers reach it; its name where it
    has no route (nothing is sent: a UDP socket's ``connect`` only picks the interface)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1 (RFC 5737): any routable address would do
            return s.getsockname()[0]
    except OSError:
        return socket.gethostname()


class AlreadyRunning(UserError):
    """SkinScreen answers on the port asked for: most often the same program, started twice."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(f"SkinScreen is already running at {url}: open that in a browser, or start this one "
                         "with another --port")


def running_at(url: str, wait_s: float = 0.0) -> str | None:
    """Where a SkinScreen page answers: at ``url``, or at it with the other scheme (the one
    running was started with HTTPS options and this start without, or the other way round);
    within ``wait_s``, for one still starting."""
    insecure = ssl.create_default_context()  # only asking who is there: a self-signed certificate is fine
    insecure.check_hostname, insecure.verify_mode = False, ssl.CERT_NONE
    scheme, rest = url.split("://", 1)
    candidates = (url, f"{'http' if scheme == 'https' else 'https'}://{rest}")
    give_up = time.monotonic() + wait_s
    while True:
        for candidate in candidates:
            try:
                with urllib.request.urlopen(candidate, timeout=2, context=insecure) as page:
                    if b"SkinScreen" in page.read(1 << 20):
                        return candidate
            except (OSError, ValueError, http.client.HTTPException):  # HTTP to an HTTPS server: a bad status line
                pass
        if time.monotonic() >= give_up:
            return None
        time.sleep(0.2)


def free_port(host: str = "127.0.0.1") -> int:
    """A port no program listens on now (the system picks it), for a page started next: the
    tests, benchmarks and desktop smoke test each start their own."""
    with socket.create_server((host, 0)) as s:
        return s.getsockname()[1]


class PortTaken(UserError):
    """Another program, not SkinScreen, listens on the port."""


def check_port_free(host: str, port: int, url: str | None = None) -> None:
    """A port in use is most often SkinScreen already running: ``AlreadyRunning`` when its page
    answers there (``running_at(url)``), else ``PortTaken``."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as err:
        if err.errno != errno.EADDRINUSE:
            raise UserError(f"cannot listen on {host}:{port} ({err.strerror or err})") from None
        if url and (found := running_at(url)):
            raise AlreadyRunning(found) from None
        raise PortTaken(f"port {port} is in use, and not by a SkinScreen page: start with another --port") from None


def settle_port(args: argparse.Namespace, chosen: bool) -> str:
    """The page's address, on the port asked for, or (none ``chosen``) on the first of
    ``PORTS_TRIED`` from ``DEFAULT_PORT`` that no other program has; a SkinScreen page already
    on one of them is ``AlreadyRunning``. ``args.port`` becomes the port settled on."""
    first = args.port
    last = first if chosen else first + PORTS_TRIED - 1
    while True:
        try:
            check_port_free(args.host, args.port, page_address(args))
            break
        except PortTaken:
            if args.port == last:
                raise
            args.port += 1
    if args.port != first:
        print(f"SkinScreen: port {first} is taken by another program; using {args.port}", file=sys.stderr)
    return page_address(args)


def stop_soon(close: Callable[[], None], delay_s: float = 0.5) -> None:
    """Call ``close`` once the page has had its answer. Not a simulated Ctrl+C: a program
    started in the background ignores SIGINT, and would not stop."""
    threading.Timer(delay_s, close).start()
