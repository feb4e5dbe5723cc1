"""How the app is served (``screening.serving``): sign-in file, port check. The live server
with a sign-in, HTTPS and stop signals is tested in test_app.py."""

import signal
import socket

import pytest

from screening.errors import UserError
from screening.serving import check_port_free, read_auth_file
from tests.conftest import auth_file

POSIX = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX permissions")


def test_auth_file_lines_comments_and_one_line_errors(tmp_path):
    assert read_auth_file(auth_file(tmp_path, "# clinic\n\nnurse:s3cret:with-colon\ndoctor:pw\n")) == [
        ("nurse", "s3cret:with-colon"), ("doctor", "pw")]
    for text, message in (("nurse\n", "line 1: expected user:password"), ("# none\n", "holds no user:password")):
        with pytest.raises(UserError, match=message):
            read_auth_file(auth_file(tmp_path, text))
    with pytest.raises(UserError, match="cannot read"):
        read_auth_file(tmp_path / "missing.txt")


@POSIX
def test_an_auth_file_others_can_read_is_refused_without_showing_it(tmp_path):
    with pytest.raises(UserError, match="chmod 600") as err:
        read_auth_file(auth_file(tmp_path, "nurse:s3cret\n", mode=0o644))
    assert "s3cret" not in str(err.value)


def test_a_taken_port_is_named_and_a_free_one_passes():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"port {port} is in use"):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", port)  # released
