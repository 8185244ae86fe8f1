"""TLS for the services' HTTP (docs/deployment.md, "TLS").

The broker's and the database's TLS is set in their URLs, which aio-pika (FastStream) and
asyncpg read themselves: ``amqps://...?cafile=&certfile=&keyfile=`` and
``postgresql://...?sslmode=verify-full&sslrootcert=&sslcert=&sslkey=``. HTTP's is here, once
for every service: the server side (uvicorn) and the client side (the calls between services).
"""

from __future__ import annotations

import ssl
from typing import Any

from shared.platform.config import Settings


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's arguments for HTTPS with the service's certificate (none: plain HTTP)."""
    if not settings.tls_cert_file:
        return {}
    return {"ssl_certfile": settings.tls_cert_file, "ssl_keyfile": settings.tls_key_file}


def client_verify(settings: Settings) -> ssl.SSLContext | bool:
    """What an HTTP client (httpx ``verify=``) checks a service's certificate against: the CA
    file if one is set, else the system's CAs. Host names are always checked."""
    if settings.tls_ca_file:
        return ssl.create_default_context(cafile=settings.tls_ca_file)
    return True
