"""A second, independently written generator of NixOS upgrade pairs, for the benchmarks.

    python3 benchmarks/gen_independent.py [--paths 10000] [--packages 300] [--update mixed]
                                          [--seed 1] [--all]

Written from scratch (it shares nothing with solver/synthetic.py but the closure types),
so that the planner is also measured on systems its own generator did not shape:

- layers: 3 to 8 bottom libraries that nearly everything references (glibc, gcc's lib
  output, openssl...); a middle layer of libraries wired by preferential attachment (a
  library that is used gets used more, so a few are everywhere and most by one or two);
  language ecosystems (an interpreter and chains of 10 to 40 packages, each referencing
  the previous one, chains forking off earlier chains: python -> python packages -> ...);
  top-level packages with a heavy-tailed number of private dependencies, some of them
  wrappers around an `-unwrapped` build, some with a `man` output listed on their own;
  a kernel, its modules, initrd and firmware;
- sizes: heavy-tailed. Most paths are log-uniform between 1 KiB and 1 MiB, a quarter have
  a Pareto tail from 1 MiB (up to 600 MiB), and 1 to 4 packages weigh 1 to 3 GiB (CUDA,
  texlive, LLVM: one of them a library the graphics stack shares);
- glue as NixOS builds it: `nixos-system-<host>-<version>` references `system-path` (the
  top-level packages), `etc` (unit files, config files, `firmware`, `kernel-modules`), the
  kernel and the initrd. Store paths are `/nix/store/<32 nix-base32 chars>-<name>`,
  package names `pname-version` with versions starting with a digit;
- updates (`UPDATES`): `leaf` bumps a few top-level packages; `libs` bumps some middle
  libraries (a few at random, and one drawn by popularity whose rebuild reaches 5 % to a
  third of the paths); `mass` bumps glibc (a mass rebuild); `churn` adds packages,
  removes others and bumps a few; `mixed` is a channel update: leaves, libraries, an
  interpreter, the kernel, adds and removes. A bumped derivation gets a new version (all
  its outputs), and Nix's hash propagation is applied in one pass in topological order:
  every path that references a changed path, directly or not, gets a new hash and a
  slightly different size. The glue of the target is rebuilt from its package list.

Everything is drawn from `random.Random` seeded by the arguments: the same call gives the
same pair, and every update of a (paths, packages, seed) system starts from the same
current system.
"""

import argparse
import math
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from solver.closure import Closure, PathInfo  # noqa: E402
from solver.storepath import NIX_BASE32  # noqa: E402

STORE = "/nix/store"
KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
UPDATES = ("leaf", "libs", "mass", "churn", "mixed")
_HASH_CHARS = "".join(sorted(NIX_BASE32))
# Salt of each update's random stream (no str hash: that changes between processes).
_UPDATE_SALT = {kind: 7_919 * (i + 1) for i, kind in enumerate(UPDATES)}

# (pname, output, typical size in MiB) of the libraries nearly everything references.
_BOTTOM = (
    ("glibc", "", 30),
    ("gcc", "lib", 9),
    ("openssl", "", 7),
    ("zlib", "", 0.13),
    ("ncurses", "", 3),
    ("libffi", "", 0.06),
    ("xz", "", 1),
    ("bash", "", 8),
)
# (interpreter pname, version, prefix of its packages) of the language ecosystems.
_ECOSYSTEMS = (
    ("python3", "3.12.4", "python3.12-"),
    ("perl", "5.38.2", "perl5.38.2-"),
    ("ghc", "9.6.5", "haskell-"),
    ("nodejs", "20.12.2", "node-"),
    ("ruby", "3.3.1", "ruby3.3-"),
    ("lua", "5.4.6", "lua5.4-"),
    ("R", "4.3.3", "r-"),
    ("ocaml", "4.14.2", "ocaml4.14.2-"),
)
# Top-level packages of GiBs, and the one library of that size the graphics stack shares.
_GIANTS = ("cudatoolkit", "texlive-combined-full", "libreoffice-fresh", "android-studio")
_GIANT_LIB = "llvm"
_PACKAGE_NAMES = (
    "coreutils findutils gnugrep gnused gawk diffutils gnutar gzip bzip2-tools zstd-tools "
    "util-linux procps psmisc iproute2 iputils nettools openssh sudo shadow systemd dbus "
    "polkit networkmanager wpa-supplicant iw bluez pipewire wireplumber alsa-utils pulsemixer "
    "curl wget rsync git mercurial subversion vim neovim emacs nano helix kakoune tmux screen "
    "htop btop iotop lsof strace ltrace gdb valgrind perf-tools man-db texinfo less most file "
    "tree jq yq ripgrep fd bat eza fzf zoxide direnv starship zsh fish nushell alacritty kitty "
    "foot wezterm firefox chromium thunderbird evolution signal-desktop element-desktop "
    "discord slack zoom-us vlc mpv ffmpeg-full imagemagick gimp inkscape krita blender "
    "darktable digikam obs-studio kdenlive audacity ardour musescore calibre zathura okular "
    "evince pandoc hugo docker podman buildah skopeo kubectl helm terraform ansible "
    "awscli2 google-cloud-sdk postgresql mariadb redis sqlite-tools nginx caddy haproxy "
    "prometheus grafana loki tailscale wireguard-tools openvpn unbound dnsmasq chrony "
    "restic borgbackup rclone syncthing nextcloud-client keepassxc gnupg pass age sops "
    "yubikey-manager steam lutris wine-staging qemu libvirt virt-manager gnome-shell "
    "nautilus gnome-terminal plasma-workspace dolphin konsole sway waybar rofi dunst "
    "xdg-desktop-portal flatpak fwupd cups sane-backends hplip gutenprint"
).split()
_SYLLABLES = (
    "ar bel cor dan fen gil hom jar kel lor mav nor pim quo ril sav tam vor wex yal zan "
    "bri cla dro fra glo kri pla sno tri vla"
).split()
_ETC_FILES = (
    "hosts fstab nsswitch.conf resolv.conf locale.conf os-release issue profile bashrc "
    "inputrc sudoers login.defs pam.d nix-nix.conf ssh-sshd_config"
).split()


@dataclass(slots=True)
class _Node:
    pname: str
    version: str  # "" for versionless paths
    output: str  # "" for the default output
    size: int
    refs: list[int]
    family: int  # the derivation: its outputs share a version and change together
    hash: str

    @property
    def name(self) -> str:
        name = self.pname
        if self.version:
            name += f"-{self.version}"
        if self.output:
            name += f"-{self.output}"
        return name

    @property
    def path(self) -> str:
        return f"{STORE}/{self.hash}-{self.name}"


class _System:
    """The core graph (everything but the glue), in topological order: refs point back."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.nodes: list[_Node] = []
        self.families = 0
        self.used: set[str] = set()
        self.indegree: list[int] = []
        # Preferential attachment: a library appears here once, plus once per use.
        self.pool: list[int] = []
        self.bottom: list[int] = []
        self.libs: list[int] = []
        self.interpreters: list[int] = []
        self.chains: list[list[int]] = []  # per ecosystem, its chain packages
        self.packages: list[int] = []  # top-level packages, in system-path
        self.outputs: dict[int, int] = {}  # package -> its man output, also in system-path
        self.units: list[int] = []  # packages with a systemd unit
        self.kernel: list[int] = []  # linux, its modules, initrd, firmware
        self.host = ""
        self.release = ""

    def family(self) -> int:
        self.families += 1
        return self.families

    def add(
        self,
        pname: str,
        version: str,
        size: int,
        refs: list[int],
        *,
        output: str = "",
        family: int | None = None,
    ) -> int:
        refs = sorted(set(refs))
        for r in refs:
            self.indegree[r] += 1
        node = _Node(
            pname,
            version,
            output,
            max(120, int(size)),
            refs,
            family if family is not None else self.family(),
            _hash(self.rng),
        )
        self.nodes.append(node)
        self.indegree.append(0)
        return len(self.nodes) - 1

    def fresh(self, base: str) -> str:
        """A pname not used yet: `base`, or with a digit appended."""
        name, n = base, 1
        while name in self.used:
            n += 1
            name = f"{base}{n}"
        self.used.add(name)
        return name

    def word(self, parts: int) -> str:
        return "".join(self.rng.choice(_SYLLABLES) for _ in range(parts))

    def popular(self, k: int) -> list[int]:
        """`k` middle libraries drawn by popularity (each use makes a library likelier)."""
        if not self.pool:
            return []
        picked = [self.rng.choice(self.pool) for _ in range(k)]
        self.pool.extend(picked)
        return picked

    def base_refs(self, p_gcc: float, p_other: float) -> list[int]:
        refs = [self.bottom[0]]
        if self.rng.random() < p_gcc:
            refs.append(self.bottom[1])
        refs += [b for b in self.bottom[2:] if self.rng.random() < p_other]
        return refs


def _hash(rng: random.Random) -> str:
    return "".join(rng.choices(_HASH_CHARS, k=32))


def _version(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.55:
        return f"{rng.randint(0, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 20)}"
    if r < 0.8:
        return f"{rng.randint(1, 30)}.{rng.randint(0, 12)}"
    if r < 0.9:
        return f"{rng.randint(2015, 2024)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    if r < 0.95:
        return f"{rng.randint(1, 9)}.{rng.randint(0, 9)}p{rng.randint(1, 3)}"
    return f"0-unstable-{rng.randint(2021, 2024)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"


def _bump(version: str, rng: random.Random) -> str:
    """A different, later version: the last number up by 1 to 3, or the one before it."""
    runs = list(re.finditer(r"\d+", version))
    if not runs:
        return version + ".1"
    which = len(runs) - 1
    if which and rng.random() < 0.3:
        which -= 1
    out, last = [], 0
    for i, m in enumerate(runs):
        out.append(version[last : m.start()])
        if i == which:
            out.append(str(int(m.group()) + rng.randint(1, 3)).zfill(len(m.group())))
        elif i > which:
            out.append("0")
        else:
            out.append(m.group())
        last = m.end()
    out.append(version[last:])
    return "".join(out)


def _log_uniform(rng: random.Random, low: float, high: float) -> int:
    return int(math.exp(rng.uniform(math.log(low), math.log(high))))


def _heavy(rng: random.Random, scale: float = 1.0) -> int:
    """A path size: log-uniform 1 KiB .. 1 MiB, or (a quarter) a Pareto tail from 1 MiB."""
    if rng.random() < 0.75:
        return int(_log_uniform(rng, KIB, MIB) * scale)
    return int(min(600 * MIB, MIB * rng.paretovariate(1.2)) * scale)


def _split(rng: random.Random, total: int, weights: list[float]) -> list[int]:
    """`total` items dealt to len(weights) bins with those weights."""
    counts = [0] * len(weights)
    for i in rng.choices(range(len(weights)), weights=weights, k=total):
        counts[i] += 1
    return counts


def _package(sys_: _System, name: str, privates: int, *, giant: bool = False) -> int:
    """A top-level package: its private dependencies, maybe an unwrapped build, a man output."""
    rng = sys_.rng
    fam = sys_.family()
    version = _version(rng)
    own: list[int] = []
    for _ in range(privates):
        refs = sys_.base_refs(0.3, 0.1)
        if rng.random() < 0.5:
            refs += sys_.popular(1)
        if own and rng.random() < 0.6:
            refs.append(rng.choice(own[-8:]))
        part = sys_.fresh(f"{name}-{sys_.word(1)}")
        own.append(sys_.add(part, _version(rng), _heavy(rng, 0.7), refs))
    heads = [p for p in own if sys_.indegree[p] == 0]
    refs = sys_.base_refs(0.6, 0.3) + heads
    refs += sys_.popular(min(25, int(rng.paretovariate(1.1))))
    size = rng.uniform(1, 3) * GIB if giant else _heavy(rng, 3.0)
    if rng.random() < 0.15 and not giant:
        inner = sys_.add(f"{name}-unwrapped", version, size, refs, family=fam)
        refs, size = [inner], _log_uniform(rng, 4 * KIB, 40 * KIB)
    pkg = sys_.add(name, version, size, refs, family=fam)
    if rng.random() < 0.12:
        sys_.outputs[pkg] = sys_.add(
            name, version, _log_uniform(rng, 20 * KIB, 3 * MIB), [], output="man", family=fam
        )
    return pkg


def _generate(paths: int, packages: int, seed: int) -> _System:
    if packages < 2:
        raise ValueError("at least 2 top-level packages")
    rng = random.Random(seed)
    s = _System(rng)
    s.host = f"{s.word(2)}{seed % 100}"
    s.release = f"24.05.2024{rng.randint(1, 6):02d}{rng.randint(10, 28)}.{_hash(rng)[:7]}"
    n_units = min(60, max(3, packages // 8))
    n_glue = 6 + 4 + min(10, packages // 50) + n_units
    n_bottom = min(len(_BOTTOM), 3 + paths // 5_000)
    n_giants = 1 + paths // 8_000
    # Paths left after glue, kernel, bottom, packages and their man / unwrapped paths.
    rest = paths - n_glue - 4 - n_bottom - int(packages * 1.27)
    if rest < packages // 2:
        raise ValueError(f"{paths} paths are too few for {packages} packages")
    n_eco = min(len(_ECOSYSTEMS), 2 + paths // 6_000)
    chain_budget = int(0.2 * rest)
    n_libs = max(3, int(0.3 * rest) - n_eco)
    n_private = max(0, rest - chain_budget - n_libs - n_eco)

    # Kernel first: no references, one derivation for the kernel, modules and initrd.
    kfam, kver = s.family(), f"6.{rng.randint(1, 9)}.{rng.randint(10, 60)}"
    s.kernel = [
        s.add("linux", kver, rng.uniform(110, 150) * MIB, [], family=kfam),
        s.add("linux", kver, rng.uniform(50, 90) * MIB, [], output="modules", family=kfam),
        s.add("initrd-linux", kver, rng.uniform(15, 40) * MIB, [], family=kfam),
        s.add("linux-firmware", _version(rng), rng.uniform(400, 900) * MIB, []),
    ]
    for i, (pname, output, mib) in enumerate(_BOTTOM[:n_bottom]):
        version = "2.39-52" if pname == "glibc" else _version(rng)
        refs = s.bottom[:1] if i == 1 else s.bottom[:2]
        s.bottom.append(
            s.add(pname, version, mib * MIB * rng.uniform(0.9, 1.1), refs, output=output)
        )
        s.used.add(pname)

    # The middle layer; the interpreters and the giant library join it half-way.
    specials = n_libs // 2
    for i in range(n_libs):
        if i == specials:
            if n_giants >= 2:
                refs = [*s.base_refs(1.0, 0.5), *s.popular(3)]
                lib = s.add(_GIANT_LIB, "17.0.6", rng.uniform(1, 2) * GIB, refs, output="lib")
                s.libs.append(lib)
                s.pool.extend([lib] * 8)
                s.used.add(_GIANT_LIB)
                n_giants -= 1
            for pname, version, _ in _ECOSYSTEMS[:n_eco]:
                refs = [*s.base_refs(1.0, 0.6), *s.popular(rng.randint(2, 5))]
                s.interpreters.append(s.add(pname, version, _heavy(rng, 20.0) + 20 * MIB, refs))
                s.used.add(pname)
        refs = s.base_refs(0.5, 0.25) + s.popular(min(12, int(rng.paretovariate(1.5))))
        lib = s.add(s.fresh("lib" + s.word(2)), _version(rng), _heavy(rng), refs)
        s.libs.append(lib)
        s.pool.append(lib)

    # Chains: each package references the one before it and its interpreter; a chain may
    # fork off any package of an earlier chain of its ecosystem.
    per_eco = _split(rng, chain_budget, [1.0 / (e + 1) for e in range(n_eco)])
    ends: list[int] = []
    for e, budget in enumerate(per_eco):
        interpreter, prefix = s.interpreters[e], _ECOSYSTEMS[e][2]
        members: list[int] = []
        while budget > 0:
            length = min(budget, rng.randint(10, 40))
            if budget - length < 10:
                length = budget
            budget -= length
            prev = rng.choice(members) if members and rng.random() < 0.5 else None
            for _ in range(length):
                refs = [interpreter, s.bottom[0]]
                if prev is not None:
                    refs.append(prev)
                if members and rng.random() < 0.25:
                    refs.append(rng.choice(members))
                if rng.random() < 0.3:
                    refs += s.popular(1)
                name = s.fresh(prefix + s.word(rng.randint(1, 3)))
                prev = s.add(name, _version(rng), _heavy(rng, 0.5), refs)
                members.append(prev)
            ends.append(prev)
        s.chains.append(members)

    # Top-level packages, with a heavy-tailed share of the private dependencies.
    names = list(_PACKAGE_NAMES)
    rng.shuffle(names)
    giants = set(rng.sample(range(packages), k=min(packages, n_giants)))
    weights = [rng.paretovariate(1.3) for _ in range(packages)]
    privates = _split(rng, n_private, weights)
    first_package = len(s.nodes)
    for c in range(packages):
        if c in giants:
            name = s.fresh(_GIANTS[len(s.used & set(_GIANTS)) % len(_GIANTS)])
        else:
            name = s.fresh(names[c] if c < len(names) else s.word(2) + s.word(1))
        s.packages.append(_package(s, name, privates[c], giant=c in giants))
    # Chain ends become applications; libraries nobody uses join a random package. The
    # packages come after everything they reference, so the order stays topological.
    for orphan in [*ends, *s.libs, *s.interpreters, *(m for ms in s.chains for m in ms)]:
        if s.indegree[orphan] == 0 and orphan < first_package:
            pkg = rng.choice(s.packages)
            target = s.nodes[pkg].refs
            inner = [r for r in target if s.nodes[r].pname.endswith("-unwrapped")]
            node = s.nodes[inner[0]] if inner else s.nodes[pkg]
            node.refs = sorted({*node.refs, orphan})
            s.indegree[orphan] += 1
    s.units = sorted(rng.sample(s.packages, k=min(len(s.packages), n_units)))
    return s


def _closure(
    s: _System,
    paths: list[str],
    sizes: list[int],
    packages: list[int],
    units: list[int],
    release: str,
    glue_hashes: dict[str, tuple[tuple[str, ...], int, str]],
    rng: random.Random,
) -> Closure:
    """The system's closure: its glue, built over `packages`, and the core paths it reaches.

    `glue_hashes` maps a glue name to (references, size, hash) of the current system: glue
    whose references did not change keeps its path; the rest gets a new hash.
    """
    infos: list[PathInfo] = []

    def glue(name: str, refs: list[str], size: int) -> str:
        refs_t = tuple(sorted(refs))
        old = glue_hashes.get(name)
        if old is not None and old[0] == refs_t:
            size, hash_ = old[1], old[2]
        else:
            hash_ = _hash(rng)
            glue_hashes.setdefault(name, (refs_t, size, hash_))
        path = f"{STORE}/{hash_}-{name}"
        infos.append(PathInfo(path, size, refs_t))
        return path

    unit_paths = [
        glue(f"unit-{s.nodes[p].pname}.service", [paths[p]], 1_200 + 37 * len(s.nodes[p].pname))
        for p in units
    ]
    system_units = glue("system-units", unit_paths, 4_000 + 90 * len(unit_paths))
    n_etc = 4 + min(10, len(packages) // 50)
    etc_files = [glue(f"etc-{f}", [], 300 + 97 * i) for i, f in enumerate(_ETC_FILES[:n_etc])]
    linux, modules, initrd, firmware_pkg = s.kernel
    kernel_modules = glue("kernel-modules", [paths[modules]], 9_000)
    firmware = glue("firmware", [paths[firmware_pkg]], 6_000)
    etc = glue("etc", [system_units, kernel_modules, firmware, *etc_files], 52_000)
    entries = [paths[p] for p in packages] + [
        paths[s.outputs[p]] for p in packages if p in s.outputs
    ]
    system_path = glue("system-path", entries, 300_000 + 2_100 * len(entries))
    top = glue(
        f"nixos-system-{s.host}-{release}",
        [system_path, etc, paths[linux], paths[initrd]],
        18_000,
    )
    # The core paths the glue reaches.
    seen: set[int] = set()
    stack = [*packages, *(s.outputs[p] for p in packages if p in s.outputs), *units, *s.kernel]
    while stack:
        i = stack.pop()
        if i in seen:
            continue
        seen.add(i)
        stack.extend(r for r in s.nodes[i].refs if r not in seen)
    for i in sorted(seen):
        node = s.nodes[i]
        infos.append(PathInfo(paths[i], sizes[i], tuple(sorted(paths[r] for r in node.refs))))
    return Closure(infos, [top], source=f"nixos-system-{s.host}-{release}", check=False)


def _referring(s: _System, target: int) -> set[int]:
    """`target` and every node that reaches it."""
    reached = {target}
    for i in range(target + 1, len(s.nodes)):
        if any(r in reached for r in s.nodes[i].refs):
            reached.add(i)
    return reached


def _update(s: _System, kind: str, rng: random.Random) -> tuple[set[int], list[int], list[int]]:
    """The derivations bumped, the packages added (appended to the graph), those removed."""
    packages = [p for p in s.packages if p not in s.kernel]
    n = len(packages)
    families: set[int] = set()
    added: list[int] = []
    removed: list[int] = []

    def bump(nodes: list[int]) -> None:
        families.update(s.nodes[i].family for i in nodes)

    def churn(adds: int, removes: int) -> None:
        removed.extend(rng.sample(packages, k=min(n - 2, removes)))
        mean = max(1, (len(s.nodes) - len(s.libs)) // max(1, len(s.packages)) // 2)
        for _ in range(adds):
            name = s.fresh(s.word(2) + s.word(1))
            count = min(400, int(mean * rng.paretovariate(1.5) / 3))
            added.append(_package(s, name, count))

    if kind == "leaf":
        bump(rng.sample(packages, k=max(2, n // 25)))
    elif kind == "libs":
        bump(rng.sample(s.libs, k=min(len(s.libs), 3 + len(s.libs) // 1_000)))
        # And one library drawn by popularity whose rebuild reaches 5 % to a third of
        # the paths (openssl, not glibc).
        for _ in range(50):
            lib = rng.choice(s.pool)
            if len(s.nodes) // 20 <= len(_referring(s, lib)) <= len(s.nodes) // 3:
                bump([lib])
                break
    elif kind == "mass":
        bump(s.bottom[:1])
    elif kind == "churn":
        churn(max(2, n // 12), max(2, n // 16))
        bump(rng.sample(packages, k=max(1, n // 50)))
    elif kind == "mixed":
        bump(rng.sample(packages, k=max(2, n // 12)))
        bump(rng.sample(s.libs, k=min(len(s.libs), 2 + len(s.libs) // 2_000)))
        bump(s.interpreters[:1])
        bump(s.kernel[:1])
        churn(max(1, n // 40), max(1, n // 40))
    else:
        raise ValueError(f"unknown update {kind!r}; one of {', '.join(UPDATES)}")
    return families, added, [p for p in removed if p not in added]


def generate_pair(paths: int, packages: int, update: str, seed: int) -> tuple[Closure, Closure]:
    """A current system of about `paths` store paths with `packages` top-level packages,
    and its update of kind `update` (one of `UPDATES`)."""
    if update not in UPDATES:
        raise ValueError(f"unknown update {update!r}; one of {', '.join(UPDATES)}")
    s = _generate(paths, packages, seed)
    glue_hashes: dict[str, tuple[tuple[str, ...], int, str]] = {}
    old_paths = [node.path for node in s.nodes]
    old_sizes = [node.size for node in s.nodes]
    old = _closure(s, old_paths, old_sizes, s.packages, s.units, s.release, glue_hashes, s.rng)

    rng = random.Random(seed * 1_000_003 + _UPDATE_SALT[update])
    s.rng = rng  # added packages draw from the update's stream
    first_new = len(s.nodes)
    families, added, removed = _update(s, update, rng)
    versions: dict[int, str] = {}
    new_paths, new_sizes = list(old_paths), list(old_sizes)
    changed = [False] * len(s.nodes)
    # Hash propagation in one pass: the graph is in topological order.
    for i, node in enumerate(s.nodes):
        if i >= first_new:
            changed[i] = True
            new_paths.append(node.path)
            new_sizes.append(node.size)
            continue
        bumped = node.family in families
        if not bumped and not any(changed[r] for r in node.refs):
            continue
        changed[i] = True
        name = node.name
        if bumped and node.version:
            version = versions.setdefault(node.family, _bump(node.version, rng))
            name = _Node(node.pname, version, node.output, 0, [], 0, "").name
            factor = rng.uniform(0.9, 1.15)
        else:
            factor = 1 + rng.uniform(-0.004, 0.012)
        new_paths[i] = f"{STORE}/{_hash(rng)}-{name}"
        new_sizes[i] = max(120, int(node.size * factor))
    gone = set(removed)
    packages_new = [p for p in s.packages if p not in gone] + added
    units_new = [p for p in s.units if p not in gone] + added[: len(added) // 3]
    date = s.release.split(".")[2]
    release = f"24.05.{date[:4]}{int(date[4:6]) + rng.randint(1, 3):02d}{date[6:]}.{_hash(rng)[:7]}"
    new = _closure(s, new_paths, new_sizes, packages_new, units_new, release, glue_hashes, rng)
    return old, new


def _check(paths: int, packages: int, update: str, seed: int) -> None:
    """Generate a pair and load it through the planner's own pipeline; print what it made."""
    from solver.components import Change, split_components
    from solver.instance import Problem, build_instance
    from solver.plan import one_step
    from solver.search.bounds import peak_lower_bound
    from solver.search.greedy import min_peak_plan

    started = time.perf_counter()
    old, new = generate_pair(paths, packages, update, seed)
    generated = time.perf_counter() - started
    # A second call gives the same pair.
    again = generate_pair(paths, packages, update, seed) if paths <= 3_000 else (old, new)
    assert list(again[0]) == list(old) and list(again[1]) == list(new)
    Closure(old.infos(), old.roots)  # references all inside
    Closure(new.infos(), new.roots)
    split = split_components(old, new)
    inst = build_instance(Problem(old, new, split))
    kinds = {c: 0 for c in Change}
    for c in split.changed:
        kinds[c.change] += 1
    need = one_step(inst).peak_bytes
    floor = peak_lower_bound(inst)
    lowest = min_peak_plan(inst).peak_bytes
    largest = max(old.infos(), key=lambda i: i.nar_size)
    print(
        f"{paths:>6}/{packages:<4} {update:<6} seed {seed}: {generated:5.2f} s, "
        f"paths {len(old):,} -> {len(new):,} ({len(set(new) - set(old)):,} new), "
        f"components {len(split.components)} changed {len(split.changed)} "
        f"(upgrade {kinds[Change.UPGRADE]}, add {kinds[Change.ADD]}, "
        f"remove {kinds[Change.REMOVE]}), groups {len(inst.groups):,}; GiB: current "
        f"{old.size() / GIB:.2f}, target {new.size() / GIB:.2f}, one step {need / GIB:.2f}, "
        f"floor {floor / GIB:.2f}, one change per step {lowest / GIB:.2f}; "
        f"largest path {largest.path.rpartition('/')[2][33:]} {largest.nar_size / GIB:.2f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=10_000)
    ap.add_argument("--packages", type=int, default=300)
    ap.add_argument("--update", choices=UPDATES, default="mixed")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--all", action="store_true", help="every update of 1,500 to 25,000-path systems"
    )
    args = ap.parse_args()
    if not args.all:
        _check(args.paths, args.packages, args.update, args.seed)
        return
    for paths, packages in ((1_000, 50), (1_500, 80), (2_500, 150), (10_000, 300), (25_000, 500)):
        for update in UPDATES:
            _check(paths, packages, update, paths + packages)


if __name__ == "__main__":
    main()
