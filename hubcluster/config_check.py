"""Reading TOML config files with errors that name the file, the key and the problem."""

from __future__ import annotations

import builtins
import ipaddress
import tomllib
from pathlib import Path
from typing import Any, Literal, overload

from hubcluster.durations import YEAR, format_bound, parse_duration


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the key and the problem."""


def load_toml(path: str | Path) -> dict[str, Any]:
    """Parse a TOML file, turning every failure into one ConfigError line."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{p}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror}") from None
    try:
        return loads_toml(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: invalid TOML: {exc}") from None


def loads_toml(text: str) -> dict[str, Any]:
    """tomllib.loads, except that nesting too deep for its recursive parser is a
    TOMLDecodeError like any other malformed TOML, not a RecursionError."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError("arrays or tables nested too deeply") from None


class Section:
    """One table of a config file; every getter names `where.key` when it refuses a value."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: must be a table, got {type(data).__name__}")
        self.data = data
        self.where = where
        self._used: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _get(self, key: str, default: Any, required: bool) -> Any:
        self._used.add(key)
        if key not in self.data:
            if required:
                raise ConfigError(f"{self._name(key)}: missing (required)")
            return default
        return self.data[key]

    # A given default or required=True means a str comes back, never None. Below this method,
    # `str` in the class body names it, hence `builtins.str` in the annotations.
    @overload
    def str(self, key: str, default: str, required: bool = False) -> str: ...
    @overload
    def str(self, key: str, default: None = None, *, required: Literal[True]) -> str: ...
    @overload
    def str(self, key: str, default: None = None, required: bool = False) -> str | None: ...
    def str(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        value = self._get(key, default, required)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(f"{self._name(key)}: must be a non-empty string, got {value!r:.60}")
        if value is not None and not value.isprintable():
            # Names, paths and addresses never hold control characters; a NUL in a path
            # would otherwise surface later as a traceback from the first file call.
            raise ConfigError(f"{self._name(key)}: must not contain control characters")
        return value

    def int(
        self, key: builtins.str, default: int, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self._get(key, default, False)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self._name(key)}: must be an integer, got {value!r}")
        if value < minimum or (maximum is not None and value > maximum):
            bound = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ConfigError(f"{self._name(key)}: must be {bound}, got {value}")
        return value

    def duration(
        self, key: builtins.str, default: float, minimum: float = 0.0, maximum: float = YEAR
    ) -> float:
        """A duration in seconds, from `minimum` to `maximum` (a year unless stated): every
        value taken is one a scheduler, a timeout and a timedelta can all hold."""
        value = self._get(key, default, False)
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(
                f'{self._name(key)}: must be a duration such as "90s" or a number of '
                f"seconds, got {type(value).__name__}"
            )
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{self._name(key)}: {exc}") from None
        if seconds < minimum:
            raise ConfigError(f"{self._name(key)}: must be at least {minimum}s, got {value!r:.60}")
        if seconds > maximum:
            raise ConfigError(
                f"{self._name(key)}: must be at most {format_bound(maximum)}, got {value!r:.60}"
            )
        return seconds

    @overload
    def address(
        self, key: builtins.str, default: builtins.str, required: bool = False
    ) -> builtins.str: ...
    @overload
    def address(
        self, key: builtins.str, default: None = None, *, required: Literal[True]
    ) -> builtins.str: ...
    @overload
    def address(
        self, key: builtins.str, default: None = None, required: bool = False
    ) -> builtins.str | None: ...
    def address(
        self, key: builtins.str, default: builtins.str | None = None, required: bool = False
    ) -> builtins.str | None:
        """A `host:port` string with a valid port."""
        value = self.str(key, default, required)
        if value is None:
            return None
        try:
            split_address(value)
        except ValueError as exc:
            raise ConfigError(f"{self._name(key)}: {exc}") from None
        return value

    def networks(
        self, key: builtins.str, default: list[builtins.str]
    ) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        value = self._get(key, default, False)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self._name(key)}: must be a list of CIDR strings, got {value!r}")
        nets = []
        for item in value:
            try:
                nets.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(f"{self._name(key)}: {item!r} is not a network (CIDR)") from None
        return nets

    def table(self, key: builtins.str, required: bool = False) -> Section:
        return Section(self._get(key, {}, required), self._name(key))

    def tables(self, key: builtins.str) -> list[Section]:
        value = self._get(key, [], False)
        if not isinstance(value, list):
            raise ConfigError(f"{self._name(key)}: must be an array of tables ([[{key}]])")
        return [Section(item, f"{self._name(key)}[{i}]") for i, item in enumerate(value)]

    def reject_unknown(self) -> None:
        """Typos are errors: an unknown key would otherwise be silently ignored."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            names = ", ".join(self._name(k) for k in unknown)
            raise ConfigError(f"{names}: unknown key")


def split_address(text: str, default_port: int | None = None) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`, or `host` with a default port) -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
        if host and ":" not in host:
            raise ValueError(f"{text!r:.80}: only an IPv6 address goes in [brackets]")
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"{text!r} has no host")
    problem = _host_problem(host)
    if problem:
        raise ValueError(f"{text!r:.80} {problem}")
    if not port_text:
        if default_port is None:
            raise ValueError(f"{text!r} has no port (expected host:port)")
        return host, default_port
    if not port_text.isascii() or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{text!r} has an invalid port {port_text!r}")
    return host, int(port_text)


def _host_problem(host: str) -> str | None:
    """Why `host` cannot be connected to or listened on, or None. The resolver raises (not
    fails) on a NUL, and the IDNA codec on an over-long label, so both are caught here."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    if not host.isprintable() or any(c.isspace() for c in host):
        return "has a host with spaces or control characters"
    try:
        encoded = host.encode("idna")
    except UnicodeError:
        return "has a host that is not a valid host name"
    if len(encoded) > 253:
        return "has a host name longer than 253 characters"
    return None
