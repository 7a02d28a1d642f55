import pytest

from solver.closure import Closure, PathInfo
from solver.components import Change, split_components
from solver.errors import InputError
from tests.helpers import SystemBuilder, fake_path, user_story


def test_user_story_components():
    old, new = user_story()
    split = split_components(old, new)
    by = split.by_name()
    assert set(by) == {"bigPackageA", "bigPackageB"}
    assert all(c.change is Change.UPGRADE for c in split.components)
    # glibc is reached through the packages, not through glue: it belongs to their closures.
    assert not any("glibc" in p for p in split.old_glue | split.new_glue)
    assert any(p.endswith("system-path") for p in split.old_glue)


def test_additions_removals_and_same():
    old, new = SystemBuilder("o"), SystemBuilder("n")
    lib = old.add("zlib-1.3", 100)
    new.add("zlib-1.3", 100)
    a = old.add("vim-9.0", 10, (lib,))
    b = new.add("vim-9.0", 10, (lib,))
    assert a == b
    gone = old.add("nano-7.2", 20)
    added = new.add("helix-23.10", 30)
    split = split_components(old.system([a, gone]), new.system([b, added]))
    changes = {c.name: c.change for c in split.components}
    assert changes == {"vim": Change.SAME, "nano": Change.REMOVE, "helix": Change.ADD}


def test_outputs_are_separate_components():
    old, new = SystemBuilder("o"), SystemBuilder("n")
    pkgs_old = [old.add("util-linux-2.38-bin", 1), old.add("util-linux-2.38-man", 1)]
    pkgs_new = [new.add("util-linux-2.39-bin", 1), new.add("util-linux-2.39-man", 1)]
    split = split_components(old.system(pkgs_old), new.system(pkgs_new))
    assert {c.name for c in split.components} == {"util-linux-bin", "util-linux-man"}


def test_kernel_modules_and_initrd_are_coupled():
    old, new = SystemBuilder("o"), SystemBuilder("n")
    o = [
        old.add("linux-6.6.1", 100),
        old.add("initrd-linux-6.6.1", 10),
        old.add("zfs-kernel-2.2.0-6.6.1", 5),
        old.add("git-2.40", 3),
    ]
    n = [
        new.add("linux-6.6.2", 100),
        new.add("initrd-linux-6.6.2", 10),
        new.add("zfs-kernel-2.2.0-6.6.2", 5),
        new.add("git-2.41", 3),
    ]
    split = split_components(old.system(o), new.system(n))
    names = {c.name for c in split.components}
    assert names == {"git", "initrd-linux+linux+zfs-kernel"}
    kernel = split.by_name()["initrd-linux+linux+zfs-kernel"]
    assert len(kernel.old) == len(kernel.new) == 3
    assert set(kernel.members) == {"initrd-linux", "linux", "zfs-kernel"}


def test_user_coupling_and_unknown_names():
    old, new = user_story()
    split = split_components(old, new, couple=[["bigPackageA", "bigPackageB"]])
    assert [c.name for c in split.components] == ["bigPackageA+bigPackageB"]
    with pytest.raises(InputError, match="unknown component 'nope'"):
        split_components(old, new, couple=[["bigPackageA", "nope"]])
    with pytest.raises(InputError, match="unknown non-vital component 'nope'"):
        split_components(old, new, non_vital=["nope"])


def test_non_vital_flag():
    old, new = user_story(extra=100)
    split = split_components(old, new, non_vital=["games"])
    assert not split.by_name()["games"].vital
    assert split.by_name()["bigPackageA"].vital


def test_glue_descends_through_small_wrappers_and_units():
    old, new = SystemBuilder("o"), SystemBuilder("n")
    pkg = old.add("nginx-1.24", 1000)
    unit = old.add("unit-nginx.service", 2000, (pkg,))
    etc = old.add("etc", 3000, (unit,))
    new_pkg = new.add("nginx-1.25", 1000)
    new_unit = new.add("unit-nginx.service", 2000, (new_pkg,), salt="n")
    new_etc = new.add("etc", 3000, (new_unit,), salt="n")
    split = split_components(old.system([etc]), new.system([new_etc]))
    assert [c.name for c in split.components] == ["nginx"]
    assert unit in split.old_glue and etc in split.old_glue


def test_glue_reachable_from_a_package_belongs_to_it():
    # A versionless small path that a package references is part of that package.
    helper = PathInfo(fake_path("wrapper"), 10, ())
    pkg = PathInfo(fake_path("tool-1.0"), 100, (helper.path,))
    top = PathInfo(fake_path("nixos-system-x"), 10, (pkg.path,))
    closure = Closure([helper, pkg, top], [top.path])
    split = split_components(closure, closure)
    assert helper.path not in split.old_glue
