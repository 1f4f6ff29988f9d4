"""``rediss://``: a real redis-server with TLS, a test CA made with openssl.

seawall verifies the server's certificate against the system's trust store (rustls with the
platform's roots; ``SSL_CERT_FILE`` names extra ones), so each case runs in a child process whose
environment says which CA it trusts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_servers import RedisServer, free_port, redis_server_binary

CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys
    import seawall
    lim = seawall.Limiter("3/minute", store=sys.argv[1], on_error="deny", key_prefix=sys.argv[2],
                          connect_timeout=2.0, command_timeout=2.0)
    sync = [lim.hit("a").allowed for _ in range(4)]
    async def main():
        return [(await lim.ahit("b")).allowed for _ in range(4)]
    async_ = asyncio.run(main())
    print(json.dumps({"sync": sync, "async": async_, "errors": lim.stats()["errors"]}))
    """
)


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (scripts/test.sh installs it)")
    d = tmp_path_factory.mktemp("tls")
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=seawall test CA",
        cwd=d,
    )
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
        cwd=d,
    )
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        cwd=d,
    )
    port = free_port()
    server = RedisServer(
        extra_args=[
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(d / "server.crt"),
            "--tls-key-file",
            str(d / "server.key"),
            "--tls-ca-cert-file",
            str(d / "ca.crt"),
            "--tls-auth-clients",
            "no",
        ]
    ).start()
    try:
        yield port, d / "ca.crt"
    finally:
        server.close()


def run_client(url: str, prefix: str, ca: Path | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k not in ("SSL_CERT_FILE", "SSL_CERT_DIR")}
    if ca is not None:
        env["SSL_CERT_FILE"] = str(ca)
    out = subprocess.run(
        [sys.executable, "-c", CLIENT, url, prefix],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    result: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return result


def test_rediss_with_a_trusted_certificate_decides_exactly(tls_server: tuple[int, Path]) -> None:
    port, ca = tls_server
    r = run_client(f"rediss://localhost:{port}/0", "tls-ok:", ca)
    assert r == {"sync": [True, True, True, False], "async": [True, True, True, False], "errors": 0}


def test_rediss_refuses_a_certificate_it_cannot_verify(tls_server: tuple[int, Path]) -> None:
    port, _ = tls_server
    # The test CA is not trusted here: no decision comes from that server, so on_error="deny"
    # refuses them all.
    r = run_client(f"rediss://localhost:{port}/0", "tls-bad:", None)
    assert r["sync"] == [False] * 4
    assert r["async"] == [False] * 4
    assert isinstance(r["errors"], int) and r["errors"] >= 1
