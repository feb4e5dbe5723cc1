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
