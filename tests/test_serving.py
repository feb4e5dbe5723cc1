"""How the app is served (``screening.serving``): port check. The live server with a sign-in,
HTTPS and stop signals is tested in test_app.py."""

import signal
import socket

import pytest

from screening.errors import UserError
from screening.serving import check_port_free

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


def test_the_address_for_other_computers_is_this_computers_own():
    from screening.serving import network_address

    address = network_address()
    assert not address.startswith("127.")
    with socket.create_server((address, 0)):  # only an address of this computer can be listened on
        pass

