"""What the command line hands in: the argparse ``type=`` functions (numbers within ``validate``'s
limits, names, text, output folders and files, ports), paths kept inside a root, and the check that
a port is free before a server starts (naming what holds it).

Standard library only: the CLI imports this module while parsing arguments.
"""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path

from transgan_lab.platform.validate import InputError, check_name, check_number, check_text, limits_for

# ------------------------------------------------------------------------------- paths


def contained(root: str | Path, child: str | Path, *, what: str) -> Path:
    """``root / child`` resolved; refused when it would land outside ``root``."""
    base = Path(root).resolve()
    path = (base / child).resolve()
    if path != base and base not in path.parents:
        raise InputError(f"{what} {child} would be written to {path}, outside {base}; use a plain name")
    return path


# --------------------------------------------------------------------------- argparse types


def _parse_number(text: str, flag: str, whole: bool) -> float:
    try:
        return int(text) if whole else float(text)
    except ValueError:
        kind = "whole number" if whole else "number"
        raise argparse.ArgumentTypeError(f"invalid {kind} {text!r}; give {flag} a {kind}") from None


def arg_number(field: str, flag: str, *, whole: bool = True):
    """argparse type: a number within the limits of config field or argument ``field``."""
    low, high = limits_for(field)

    def parse(text: str):
        value = _parse_number(text.strip(), flag, whole)
        try:
            check_number(value, what=flag, low=low, high=high, whole=whole)
        except InputError as e:
            raise argparse.ArgumentTypeError(str(e).replace(f"{flag}=", f"{flag} ", 1)) from None
        return value

    parse.__name__ = "whole number" if whole else "number"
    return parse


def arg_name(flag: str):
    """argparse type: a safe name (becomes a folder name)."""

    def parse(text: str) -> str:
        try:
            check_name(text, what=flag)
        except InputError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    parse.__name__ = "name"
    return parse


def arg_text(flag: str):
    """argparse type: text without control characters, at most MAX_TEXT characters."""

    def parse(text: str) -> str:
        try:
            check_text(text, what=flag)
        except InputError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    parse.__name__ = "text"
    return parse


def arg_out_dir(flag: str):
    """argparse type: an output folder (it may not exist yet; it must not be a file)."""
    text_type = arg_text(flag)

    def parse(text: str) -> str:
        text_type(text)
        p = Path(text)
        if p.exists() and not p.is_dir():
            raise argparse.ArgumentTypeError(f"{flag} {text} is a file, not a folder; give a folder (it is created)")
        return text

    parse.__name__ = "folder"
    return parse


def arg_out_file(flag: str):
    """argparse type: an output file (replaced if it exists; it must not be a folder)."""
    text_type = arg_text(flag)

    def parse(text: str) -> str:
        text_type(text)
        p = Path(text)
        if text.endswith(("/", os.sep)) or p.is_dir():
            raise argparse.ArgumentTypeError(f"{flag} {text} is a folder; give a file name, e.g. {p / 'report.html'}")
        parent = p.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise argparse.ArgumentTypeError(f"{flag} {text}: {parent} is a file, not a folder; give another path")
        return text

    parse.__name__ = "file"
    return parse


def arg_port(flag: str):
    """argparse type: a TCP port number 1 ... 65535 (whether it is free is checked on bind)."""

    def parse(text: str) -> int:
        value = _parse_number(text.strip(), flag, True)
        if not 1 <= value <= 65535:
            raise argparse.ArgumentTypeError(f"{flag} {value} is not a TCP port; give a number from 1 to 65535")
        return int(value)

    parse.__name__ = "port"
    return parse


# ------------------------------------------------------------------------------- ports


def port_holder(port: int) -> str:
    """Who listens on TCP ``port`` on this machine, as 'pid N (command)', from /proc (Linux)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and int(parts[1].rsplit(":", 1)[1], 16) == port and parts[3] == "0A":  # LISTEN
                inodes.add(parts[9])
    if not inodes:
        return "another program"
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    return f"pid {proc.name} ({cmd[:120]})"
        except OSError:
            continue
    return "a process of another user"


def check_port_free(host: str, port: int, *, flag: str = "--port") -> None:
    """Refuse a port that cannot be bound on ``host`` now, naming what holds it."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise InputError(f"--host {host!r} is not an address of this machine ({e}); use 127.0.0.1") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(addr)
        except OSError as e:
            if e.errno in (98, 48):  # EADDRINUSE (Linux, macOS)
                raise InputError(
                    f"{flag} {port} on {host} is in use by {port_holder(port)}; choose another {flag} "
                    "or stop that server"
                ) from None
            raise InputError(
                f"cannot listen on {host}:{port} ({e.strerror or e}); "
                f"use --host 127.0.0.1 and a {flag} from 1024 to 65535"
            ) from None
