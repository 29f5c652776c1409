"""Network namespaces for the failure bench: each relay behind its own veth pair, and a
partition that drops its traffic.

On Linux, as root, with iproute2: one namespace per relay (``lsbench-<pid>-<run>-<i>``), joined
to the root namespace by a veth pair on a private /30 of 10.192.0.0/10 chosen so that it
overlaps no route of the machine. The clients stay in the root namespace and reach each relay
at its veth address. A partition puts the ``blackhole`` queueing discipline on both ends of a
relay's pair: every packet either way is dropped on the link (the sender is told it went), so
nothing is refused or reset, and the relay itself keeps running; removing it lets TCP's
retransmissions through again. (``netem loss 100%`` does the same where the kernel has netem;
``blackhole`` is part of every kernel with traffic control.)

The namespaces are removed on close, and a run first removes those a previous run left behind
when it crashed (their owner's process id, in the name, no longer running).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from types import TracebackType

PREFIX = "lsbench"
"""Every namespace the bench creates is named ``lsbench-<owner pid>-<run>-<i>``; its veth ends
``lsb<run>h<i>`` (root side) and ``lsb<run>n<i>`` (namespace side)."""

_VETH_PREFIX = "lsb"
_POOL = ipaddress.ip_network("10.192.0.0/10")
_CMD_TIMEOUT_S = 10.0


class NetnsUnavailableError(RuntimeError):
    """The machine does not allow namespaces for the bench; the message says why."""


@dataclass(frozen=True)
class Site:
    """One relay's namespace and the veth pair that reaches it."""

    namespace: str
    host_dev: str
    peer_dev: str
    host_addr: str
    relay_addr: str


def why_unavailable() -> str | None:
    """Why namespaces cannot be set up here (without trying), or None if they may be."""
    if not sys.platform.startswith("linux"):
        return f"network namespaces are Linux-only (this is {sys.platform})"
    if os.geteuid() != 0:
        return f"creating network namespaces needs root (the bench runs as uid {os.geteuid()})"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` (iproute2) is not installed"
    return None


def _run(*argv: str) -> str:
    """Run one iproute2 command; its error output becomes the exception's message."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=_CMD_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsUnavailableError(f"`{' '.join(argv)}` failed: {exc}") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or f"exit status {done.returncode}"
        raise NetnsUnavailableError(f"`{' '.join(argv)}` failed: {detail}")
    return done.stdout


def _json(*argv: str) -> list[dict[str, object]]:
    """An iproute2 listing in JSON (``ip -j``); an ``ip`` too old for it is a reason too."""
    out = _run(*argv)
    try:
        return list(json.loads(out or "[]"))
    except ValueError:
        raise NetnsUnavailableError(f"`{' '.join(argv)}` gave no JSON (iproute2 too old)") from None


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _run("ip", "netns", "list").splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_inside(namespace: str) -> None:
    """SIGKILL what the bench left running in its namespace (the namespace outlives its name
    while a process is inside)."""
    with contextlib.suppress(NetnsUnavailableError):
        for pid in _run("ip", "netns", "pids", namespace).split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def remove_stale() -> list[str]:
    """Remove the namespaces (and stray veth ends) of bench runs whose process is gone."""
    removed, live_runs = [], set()
    for name in _namespaces():
        parts = name.split("-")
        if len(parts) != 4 or parts[0] != PREFIX or not parts[1].isdigit():
            continue
        if _alive(int(parts[1])):
            live_runs.add(parts[2])
            continue
        _kill_inside(name)
        with contextlib.suppress(NetnsUnavailableError):
            _run("ip", "netns", "delete", name)
            removed.append(name)
    # A run that died between creating a veth pair and moving its end leaves the pair in the
    # root namespace (a run creates its namespaces first, so a live run's run id is known).
    for link in _json("ip", "-j", "link", "show"):
        dev = str(link.get("ifname", ""))
        run = dev[len(_VETH_PREFIX) : -2]
        if dev.startswith(_VETH_PREFIX) and len(run) == 6 and run not in live_runs:
            with contextlib.suppress(NetnsUnavailableError):
                _run("ip", "link", "delete", dev)
                removed.append(dev)
    return removed


def pick_subnet(taken: list[ipaddress.IPv4Network], rng: random.Random) -> ipaddress.IPv4Network:
    """A random /24 of 10.192.0.0/10 that overlaps none of ``taken`` (the machine's routes)."""
    for _ in range(64):
        candidate = ipaddress.ip_network(
            (int(_POOL.network_address) + rng.randrange(_POOL.num_addresses // 256) * 256, 24)
        )
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise NetnsUnavailableError("no free /24 in 10.192.0.0/10 for the relays' veth pairs")


def _routes() -> list[ipaddress.IPv4Network]:
    nets = []
    for route in _json("ip", "-j", "-4", "route", "show", "table", "all"):
        dst = str(route.get("dst", "default"))
        if dst != "default":
            with contextlib.suppress(ValueError):
                nets.append(ipaddress.ip_network(dst, strict=False))
    return nets


class Namespaces:
    """``count`` namespaces, one per relay, created on enter and always removed on exit."""

    def __init__(self, count: int) -> None:
        if not 1 <= count <= 3:
            raise ValueError("the bench uses at most 3 namespaces")
        self.count = count
        self.run_id = secrets.token_hex(3)
        self.sites: list[Site] = []

    def __enter__(self) -> Namespaces:
        reason = why_unavailable()
        if reason is not None:
            raise NetnsUnavailableError(reason)
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _create(self) -> None:
        remove_stale()
        subnet = pick_subnet(_routes(), random.Random())
        for i in range(self.count):
            base = int(subnet.network_address) + 4 * i
            site = Site(
                namespace=f"{PREFIX}-{os.getpid()}-{self.run_id}-{i}",
                host_dev=f"{_VETH_PREFIX}{self.run_id}h{i}",
                peer_dev=f"{_VETH_PREFIX}{self.run_id}n{i}",
                host_addr=str(ipaddress.ip_address(base + 1)),
                relay_addr=str(ipaddress.ip_address(base + 2)),
            )
            # Namespace first: a veth of a live run always has its namespace (see remove_stale).
            _run("ip", "netns", "add", site.namespace)
            self.sites.append(site)
            ns = ("ip", "-n", site.namespace)
            _run("ip", "link", "add", site.host_dev, "type", "veth", "peer", "name", site.peer_dev)
            _run("ip", "link", "set", site.peer_dev, "netns", site.namespace)
            _run("ip", "addr", "add", f"{site.host_addr}/30", "dev", site.host_dev)
            _run("ip", "link", "set", site.host_dev, "up")
            _run(*ns, "addr", "add", f"{site.relay_addr}/30", "dev", site.peer_dev)
            _run(*ns, "link", "set", site.peer_dev, "up")
            _run(*ns, "link", "set", "lo", "up")
        # The partition must work too before the bench counts on it.
        self.drop(0)
        self.restore(0)

    def exec_prefix(self, i: int) -> list[str]:
        """The command prefix that runs a program inside relay ``i``'s namespace."""
        return ["ip", "netns", "exec", self.sites[i].namespace]

    def drop(self, i: int) -> None:
        """Partition relay ``i``: drop every packet to and from it, on both ends of its link."""
        site = self.sites[i]
        _run("tc", "qdisc", "add", "dev", site.host_dev, "root", "blackhole")
        _run(*self.exec_prefix(i), "tc", "qdisc", "add", "dev", site.peer_dev, "root", "blackhole")

    def restore(self, i: int) -> None:
        """End relay ``i``'s partition (each end back to its default discipline)."""
        site = self.sites[i]
        with contextlib.suppress(NetnsUnavailableError):
            _run("tc", "qdisc", "del", "dev", site.host_dev, "root")
        with contextlib.suppress(NetnsUnavailableError):
            _run(*self.exec_prefix(i), "tc", "qdisc", "del", "dev", site.peer_dev, "root")

    def close(self) -> None:
        """Remove every namespace of this run (and with it both ends of its veth pair)."""
        for site in self.sites:
            _kill_inside(site.namespace)
            with contextlib.suppress(NetnsUnavailableError):
                _run("ip", "netns", "delete", site.namespace)
            with contextlib.suppress(NetnsUnavailableError):
                _run("ip", "link", "delete", site.host_dev)  # already gone with its peer, usually
        self.sites = []


__all__ = [
    "PREFIX",
    "Namespaces",
    "NetnsUnavailableError",
    "Site",
    "remove_stale",
    "why_unavailable",
]
