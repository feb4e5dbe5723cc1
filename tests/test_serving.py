"""How the app is served (``screening.serving``): port check. The live server with a sign-in,
HTTPS and stop signals is tested in test_app.py."""

import shutil
import signal
import socket
import subprocess

import pytest

from screening.errors import UserError
from screening.serving import alone, check_port_free, check_root_path

POSIX = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX permissions")


def test_a_taken_port_is_named_and_a_free_one_passes():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} is in use"):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", port)  # released


@pytest.mark.parametrize(("options", "warned"), [
    ([], False),
    (["--host", "0.0.0.0"], True),
    (["--share"], True),
    (["--host", "0.0.0.0", "--auth-file", "LOGINS"], False),
    (["--root-path", "/skinscreen"], True),  # a proxy on this computer forwards others' requests
    (["--root-path", "/skinscreen", "--auth-file", "LOGINS"], False),
])
def test_others_reaching_the_page_without_a_sign_in_is_a_warning(tmp_path, capsys, options, warned):
    from screening.app import parser
    from screening.serving import serving

    logins = tmp_path / "logins.txt"
    logins.write_text("nurse:long-passphrase\n")
    logins.chmod(0o600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = parser().parse_args(["--port", str(port), *[str(logins) if o == "LOGINS" else o for o in options]])
    url, _ = serving(args)
    assert ("can reach this page and its patient images" in capsys.readouterr().err) == warned
    assert url.split()[0] == f"http://127.0.0.1:{port}"  # what a browser here can open, also for 0.0.0.0
    assert ("from other computers" in url) == ("0.0.0.0" in options)
    assert alone(args) == (options == [])  # the Quit button: only where nobody else reaches the page


@pytest.mark.parametrize(("path", "root"), [("", ""), ("/", ""), ("/skinscreen/", "/skinscreen"),
                                            ("https://intranet.example/skinscreen", "https://intranet.example/skinscreen"),
                                            ("skinscreen", None), ("/skin screen", None), ("/a?b=1", None)])
def test_a_root_path_is_a_path_or_a_full_address(path, root):
    if root is None:
        with pytest.raises(UserError, match="--root-path must be a path such as /skinscreen"):
            check_root_path(path)
    else:
        assert check_root_path(path) == root


@pytest.mark.parametrize("host", ["::1", "::", "fe80::1"])
def test_an_ipv6_address_is_one_line_before_the_model_loads(host, capsys):
    """Gradio failed on them with a traceback, after the model had loaded."""
    from screening.app import main

    assert main(["--host", host, "--no-browser", "--model", "/nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--host {host}: IPv6 addresses do not work with the web server" in err


def test_the_address_for_other_computers_is_this_computers_own():
    from screening.serving import network_address

    address = network_address()
    assert not address.startswith("127.")
    with socket.create_server((address, 0)):  # only an address of this computer can be listened on
        pass



@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """Two self-signed certificates with their keys, and the first key under a passphrase."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    for n in (1, 2):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(d / f"key{n}.pem"), "-out", str(d / f"cert{n}.pem"), "-days", "1",
                        "-subj", "/CN=localhost"], check=True, capture_output=True)
    subprocess.run(["openssl", "pkey", "-in", str(d / "key1.pem"), "-aes256", "-passout", "pass:secret",
                    "-out", str(d / "locked.pem")], check=True, capture_output=True)
    (d / "junk.pem").write_text("not a certificate\n")
    return d


@pytest.mark.parametrize(("cert", "key", "message"), [
    ("cert1", "key1", None),
    ("cert1", "key2", "is not the private key of the certificate"),
    ("cert1", "locked", "is protected by a passphrase"),  # OpenSSL would have asked at the terminal
    ("junk", "key1", "must be a certificate and its private key, in PEM"),
    ("key1", "cert1", "must be a certificate and its private key, in PEM"),  # swapped
])
def test_a_certificate_and_key_tls_cannot_use_are_refused_before_the_model_loads(certificates, cert, key, message):
    from screening.serving import check_certificate

    paths = certificates / f"{cert}.pem", certificates / f"{key}.pem"
    if message is None:
        check_certificate(*paths)
    else:
        with pytest.raises(UserError, match=message):
            check_certificate(*paths)


@pytest.fixture
def uploads(tmp_path, monkeypatch):
    """A client of a stand-in for Gradio's upload route behind ``RoomForUploads``, on a disk with
    1 MB free beyond ``MIN_FREE``, and the bodies the route was given; the route fails
    with the ``OSError`` set in ``fails``, after reading the body."""
    from collections import namedtuple

    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    import screening.scratch
    from screening.serving import RoomForUploads

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))  # not made yet, as before a first upload
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(screening.scratch.shutil, "disk_usage",
                        lambda folder: usage(2**40, 0, screening.scratch.MIN_FREE + 2**20))
    given, fails = [], []

    async def upload(request):
        given.append(await request.body())
        if fails:
            raise fails[0]
        return JSONResponse(["saved"])

    app = Starlette(routes=[Route("/gradio_api/upload", upload, methods=["POST"]),
                            Route("/gradio_api/other", upload, methods=["POST"])],
                    middleware=[Middleware(RoomForUploads)])
    return TestClient(app, raise_server_exceptions=False), given, fails


def test_an_upload_the_disk_has_no_room_for_is_refused_before_it_is_written(uploads, capsys):
    client, given, _ = uploads
    answer = client.post("/gradio_api/upload", files={"files": ("a.jpg", b"x" * 2**21)})
    assert answer.status_code == 507
    assert answer.text.startswith("SkinScreen cannot take this file: the disk holding ")
    assert "almost full (51 MB free, 2 MB asked for): free some space on it. Ask whoever runs SkinScreen." in answer.text
    assert given == []
    assert "warning: an upload was refused: the disk holding" in capsys.readouterr().err
    assert client.post("/gradio_api/upload", files={"files": ("a.jpg", b"x" * 1000)}).json() == ["saved"]
    assert client.post("/gradio_api/other", content=b"x" * 2**21).json() == ["saved"]  # not an upload
    assert len(given) == 2


def test_a_disk_filled_while_an_upload_is_written_is_said_and_other_failures_are_not_hidden(uploads):
    import errno

    client, given, fails = uploads
    fails.append(OSError(errno.ENOSPC, "No space left on device"))
    answer = client.post("/gradio_api/upload", files={"files": ("a.jpg", b"x" * 200)})
    assert (answer.status_code, answer.text[:33]) == (507, "SkinScreen cannot take this file:")
    assert "(No space left on device): free some space on it" in answer.text  # the disk looked roomy before
    fails[0] = PermissionError(errno.EACCES, "Permission denied")
    assert client.post("/gradio_api/upload", files={"files": ("a.jpg", b"x" * 200)}).status_code == 500
    assert len(given) == 2
