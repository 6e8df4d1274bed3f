"""How v6sentry connects to a production Elasticsearch cluster.

Owns the connection settings: the URL (``--es``), credentials only from the
environment (``V6SENTRY_ES_API_KEY``, or ``V6SENTRY_ES_USERNAME`` and
``V6SENTRY_ES_PASSWORD``) or from a private YAML file (``--es-credentials``),
never from command-line values, and the CA bundle (``--es-ca`` or
``V6SENTRY_ES_CA``). TLS verification is always on; there is no switch to turn
it off. It does not send documents.
"""

from __future__ import annotations

import argparse
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import yaml

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

ENV_API_KEY = "V6SENTRY_ES_API_KEY"
ENV_USERNAME = "V6SENTRY_ES_USERNAME"
ENV_PASSWORD = "V6SENTRY_ES_PASSWORD"
ENV_CA = "V6SENTRY_ES_CA"


class ConfigError(Exception):
    """A connection setting v6sentry refuses; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Connection:
    """Everything needed to build a client. ``repr`` never shows a secret."""

    url: str
    api_key: str | None = None
    username: str | None = None
    password: str | None = None
    ca_file: str | None = None
    request_timeout: float = 30.0
    source: str = "none"  # where the credentials came from, for messages

    def __repr__(self) -> str:
        auth = "api_key" if self.api_key else "basic" if self.username else "none"
        return f"Connection(url={self.url!r}, auth={auth} from {self.source}, ca={self.ca_file!r})"

    def client(self) -> Elasticsearch:
        """An Elasticsearch client that never retries by itself: the shipper's loop does,
        with its own backoff, and sends to the spool when the node stays away."""
        kwargs: dict[str, object] = {
            "request_timeout": self.request_timeout,
            "max_retries": 0,
            "retry_on_timeout": False,
        }
        if self.api_key:
            kwargs["api_key"] = self.api_key
        elif self.username is not None and self.password is not None:
            kwargs["basic_auth"] = (self.username, self.password)
        if self.ca_file:
            kwargs["ca_certs"] = self.ca_file
        # Imported here: building the command line for `replay` must not load the client.
        from elasticsearch import Elasticsearch

        return Elasticsearch(self.url, **kwargs)  # type: ignore[arg-type]


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--es {url!r}: expected http(s)://HOST[:PORT]")
    if parts.username is not None or parts.password is not None:
        # A secret on the command line is visible in `ps` and shell history.
        raise ConfigError(
            "--es: credentials in the URL are refused; use "
            f"{ENV_API_KEY}, {ENV_USERNAME}/{ENV_PASSWORD} or --es-credentials FILE"
        )
    return url


Secrets = tuple[str | None, str | None, str | None]  # api_key, username, password


def _from_mapping(values: Mapping[str, object], where: str) -> Secrets:
    api_key = values.get("api_key")
    username = values.get("username")
    password = values.get("password")
    for name, value in (("api_key", api_key), ("username", username), ("password", password)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(f"{where}: {name} must be a non-empty string")
    if api_key is not None and (username is not None or password is not None):
        raise ConfigError(f"{where}: give either api_key or username and password, not both")
    if (username is None) != (password is None):
        raise ConfigError(f"{where}: username and password go together")
    return api_key, username, password  # type: ignore[return-value]


def read_credentials_file(path: str) -> Secrets:
    """(api_key, username, password) from a YAML file only its owner can read."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read credentials: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path}: credentials file is not a regular file")
    if info.st_mode & 0o077:
        raise ConfigError(
            f"{path}: credentials file is readable or writable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )
    if info.st_uid != os.getuid():
        raise ConfigError(f"{path}: credentials file is not owned by this user")
    try:
        values = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read credentials: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: expected a mapping with api_key, or username and password")
    unknown = sorted(set(values) - {"api_key", "username", "password"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(map(str, unknown))}")
    api_key, username, password = _from_mapping(values, path)
    if api_key is None and username is None:
        raise ConfigError(f"{path}: no api_key and no username/password")
    return api_key, username, password


def connection(
    url: str,
    credentials_file: str | None = None,
    ca_file: str | None = None,
    environ: Mapping[str, str] | None = None,
    request_timeout: float = 30.0,
) -> Connection:
    """Connection settings from the URL, the credentials file or the environment."""
    env = os.environ if environ is None else environ
    url = _check_url(url)
    if credentials_file is not None:
        api_key, username, password = read_credentials_file(credentials_file)
        source = credentials_file
    else:
        api_key, username, password = _from_mapping(
            {
                "api_key": env.get(ENV_API_KEY) or None,
                "username": env.get(ENV_USERNAME) or None,
                "password": env.get(ENV_PASSWORD) or None,
            },
            "environment",
        )
        source = "environment" if api_key or username else "none"
    ca = ca_file if ca_file is not None else (env.get(ENV_CA) or None)
    if ca is not None and not os.path.isfile(ca):
        raise ConfigError(f"{ca}: CA file not found")
    return Connection(url, api_key, username, password, ca, request_timeout, source)


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """``--es-credentials`` and ``--es-ca``, for commands that talk to Elasticsearch
    other than ``ship``/``replay`` (which add them with their shipping options)."""
    parser.add_argument(
        "--es-credentials",
        metavar="FILE",
        help="YAML with api_key, or username and password (mode 600); default: environment",
    )
    parser.add_argument("--es-ca", metavar="FILE", help=f"CA bundle (default: ${ENV_CA})")


def client_from_args(args: argparse.Namespace, request_timeout: float = 60.0) -> Elasticsearch:
    """The client for ``args.es`` with the same credential and CA rules as shipping;
    ``ConfigError`` when they are unusable."""
    return connection(args.es, args.es_credentials, args.es_ca, None, request_timeout).client()
