"""Reading a fleet's study file, checked key by key: every error names the file, the line
and the key (`fleet.yaml:12: hosts[3].disk: invalid size '10Q'`)."""

import random
from pathlib import Path

from adapters.nixstore.ssh import check_host as ssh_address
from adapters.studies import schema as y
from adapters.studies.changes import apply_checked, parse_change, read_current
from adapters.studies.fleet.model import Apply, Fleet, Host, fingerprint
from solver.closure import Closure
from solver.errors import InputError
from solver.units import format_size
from solver.whatif.scenario import Edit

# The disk-size table covers 1..max_steps steps; past a few dozen it says nothing new.
MAX_STEPS = 50

_KEYS = ["update", "name", "description", "overhead", "reserve", "max_steps", "profiles"]
_KEYS += ["seed", "apply"]
_HOST_KEYS = ["profile", "current", "ssh", "target"]


class _Closures:
    """The distinct closures the hosts run, keyed by `fingerprint`, with what to call each:
    the profile's name, or the file a host's `current:` names."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.by_key: dict[str, Closure] = {}
        self.labels: dict[str, str] = {}
        self.profiles: dict[str, str] = {}  # profile name -> key
        self._by_source: dict[str, str] = {}  # a `current:` file -> key

    def add(self, closure: Closure, label: str) -> str:
        key = fingerprint(closure)
        self.by_key.setdefault(key, closure)
        self.labels.setdefault(key, label)
        return key

    def read_profiles(self, m: y.YamlMapping, where: y.Where) -> None:
        """`profiles:`, closures by name that many hosts share."""
        if "profiles" not in m:
            return
        at = where.key(m, "profiles")
        raw = m["profiles"]
        pm = y.mapping(raw, at, optional=list(raw) if isinstance(raw, dict) else [])
        for name, value in pm.items():
            y.text(name, at.key(pm, name))  # a label in reports, like a host's name
            closure = read_current(value, at.key(pm, name), self.base)
            self.profiles[name] = self.add(closure, name)

    def of_host(self, h: y.YamlMapping, hw: y.Where, name: str) -> str:
        """The key of a host's closure: its `profile:`, or its own `current:`."""
        if y.one_of(h, hw, ["profile", "current"]) == "profile":
            profile = y.string(h["profile"], hw.key(h, "profile"))
            if profile not in self.profiles:
                known = ", ".join(sorted(self.profiles)) or "none"
                raise hw.key(h, "profile").error(f"no profile {profile!r} (profiles: {known})")
            return self.profiles[profile]
        source = h["current"]
        if isinstance(source, str) and source in self._by_source:
            return self._by_source[source]
        label = source if isinstance(source, str) else f"{name} (generated)"
        key = self.add(read_current(source, hw.key(h, "current"), self.base), label)
        if isinstance(source, str):
            self._by_source[source] = key
        return key


def load(path: Path) -> Fleet:
    """A fleet file, checked key by key."""
    data, where = y.load(path)
    m = y.mapping(data, where, required=["hosts"], optional=_KEYS)
    closures = _Closures(path.parent)
    closures.read_profiles(m, where)
    hosts = _hosts(m, where, closures)
    used = {h.closure for h in hosts}
    fleet = Fleet(
        name=y.text(m.get("name", path.stem), where.key(m, "name")),
        hosts=hosts,
        closures={k: c for k, c in closures.by_key.items() if k in used},
        labels=closures.labels,
        changes=[],
        overhead=y.size(m.get("overhead", 0), where.key(m, "overhead")),
        reserve=y.size(m.get("reserve", 0), where.key(m, "reserve")),
        max_steps=y.integer(
            m.get("max_steps", 3), where.key(m, "max_steps"), minimum=1, maximum=MAX_STEPS
        ),
        seed=y.integer(m.get("seed", 0), where.key(m, "seed")),
        apply=_apply(m, where),
    )
    _check_budgets(m, where, fleet)
    fleet.changes = _update(m, where, fleet, path.parent)
    return fleet


def _hosts(m: y.YamlMapping, where: y.Where, closures: _Closures) -> list[Host]:
    """`hosts:`, each listed once by name and by address."""
    at = where.key(m, "hosts")
    if not isinstance(m["hosts"], list) or not m["hosts"]:
        raise at.error("expected a non-empty list of hosts")
    hosts: list[Host] = []
    seen: set[str] = set()
    # Hosts by the address they are upgraded through, and where that address is named.
    addresses: dict[str, tuple[str, y.Where]] = {}
    for i, value in enumerate(m["hosts"]):
        hw = at.item(m["hosts"], i)
        h = y.mapping(value, hw, required=["name", "disk"], optional=_HOST_KEYS)
        raw_name = h["name"]
        if isinstance(raw_name, int | float) and not isinstance(raw_name, bool):
            raw_name = str(raw_name)  # `name: 42` is a host called 42
        name = y.text(raw_name, hw.key(h, "name"))
        if name in seen:
            raise hw.key(h, "name").error(f"host {name!r} is listed twice")
        seen.add(name)
        ssh = _address(h, hw, name, addresses)
        disk = y.budget(h["disk"], hw.key(h, "disk"))
        key = closures.of_host(h, hw, name)
        own = y.text(h["target"], hw.key(h, "target")) if "target" in h else None
        if own is not None and ssh is None:
            raise hw.key(h, "target").error("a target is for a host with an ssh: address")
        hosts.append(Host(name, disk, key, ssh, own))
    return hosts


def _address(
    h: y.YamlMapping, hw: y.Where, name: str, addresses: dict[str, tuple[str, y.Where]]
) -> str | None:
    """A host's `ssh:` address, checked as every host value is, and not another host's."""
    if "ssh" not in h:
        return None
    sw = hw.key(h, "ssh")
    ssh = y.string(h["ssh"], sw)
    try:
        address = ssh_address(ssh, None)
    except InputError as e:
        raise sw.error(str(e)) from None
    same = _same_host(address)
    if same in addresses:
        first, fw = addresses[same]
        raise sw.error(
            f"host {name!r}: {address!r} is the address of host {first!r} too "
            f"({fw.path}, line {fw.line}); list each machine once"
        )
    addresses[same] = (name, sw)
    return ssh


def _check_budgets(m: y.YamlMapping, where: y.Where, fleet: Fleet) -> None:
    """Every host's disk leaves room for its store after `overhead:`, and that store
    budget room beyond `reserve:`."""
    at = where.key(m, "hosts")
    for i, host in enumerate(fleet.hosts):
        if host.disk <= fleet.overhead:
            disk = at.item(m["hosts"], i).key(m["hosts"][i], "disk")
            raise disk.error(
                f"host {host.name!r}: a disk of {format_size(host.disk)} leaves nothing for "
                f"the store after the overhead of {format_size(fleet.overhead)} (the disk "
                "used outside the store)"
            )
        if fleet.reserve >= fleet.budget(host):
            raise where.key(m, "reserve").error(
                f"{format_size(fleet.reserve)} leaves nothing of the store budget of host "
                f"{host.name!r}, {format_size(fleet.budget(host))} (its disk less the "
                "overhead): the reserve is kept free out of it"
            )


def _update(m: y.YamlMapping, where: y.Where, fleet: Fleet, base: Path) -> list[Edit]:
    """`update:`, applied change by change to every closure a host runs (so an error names
    the change's line, and a size grown out of range is caught); the first closure's
    reading of each change is the update."""
    if "update" not in m and "apply" not in m:
        raise where.error(
            "missing key 'update' (only a fleet to roll out, with apply:, goes without)"
        )
    uw = where.key(m, "update")
    if "update" in m and (not isinstance(m["update"], list) or not m["update"]):
        raise uw.error("expected a non-empty list of changes")
    changes: list[Edit] = []
    # The targets as solving.solve builds them: every change in order, one generator each.
    targets = dict(fleet.closures)
    rngs = {key: random.Random(fleet.seed) for key in targets}
    for i, value in enumerate(m.get("update", [])):
        item = uw.item(m["update"], i)
        for n, key in enumerate(sorted(targets)):
            # Names are looked up in the current closure, as the scenario does.
            parsed = parse_change(value, item, base, fleet.closures[key], fleet.notes)
            for change in parsed:
                label = fleet.labels[key]
                targets[key] = apply_checked(targets[key], change, rngs[key], item, label)
            if n == 0:
                changes.extend(parsed)
    return changes


def _apply(m: y.YamlMapping, where: y.Where) -> Apply | None:
    """`apply:`, what `fleet --apply` upgrades on each host."""
    if "apply" not in m:
        return None
    aw = where.key(m, "apply")
    a = y.mapping(m["apply"], aw, required=["profile"], optional=["target"])
    target = y.text(a["target"], aw.key(a, "target")) if "target" in a else None
    return Apply(y.text(a["profile"], aw.key(a, "profile")), target)


def _same_host(address: str) -> str:
    """What two addresses of one host have in common: the user as it is, the host name in
    lower case (host names are case-insensitive)."""
    user, at, name = address.rpartition("@")
    return f"{user}{at}{name.lower()}"
