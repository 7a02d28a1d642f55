"""Capacity planning for a fleet: which hosts can take an update, in how many steps, and
how big their disks must be.

    name: web fleet
    update:                      # changes, as in a scenario
      - bump: openssl
        grow: 3%
    overhead: 1.5G               # disk used outside the store; store budget = disk - overhead
    reserve: 200M
    max_steps: 3                 # the disk-size table covers 1..max_steps steps
    profiles:                    # closures shared by many hosts
      web: examples/nixos-current.json
      db: {generate: {paths: 1500, components: 90, seed: 3}}
    hosts:
      - {name: web-01, disk: 10G, profile: web, ssh: root@web-01}
      - {name: db-01, disk: 20G, current: db-01.json}
    apply:                       # for `fleet --apply`: what each host with `ssh:` gets
      profile: /nix/var/nix/profiles/per-user/root/env
      target: /nix/store/...-env # read here; a host may name its own `target:`

Hosts with identical closures (and the same update) are solved once; the distinct
closures are solved in parallel on local processes, or on a Dask cluster.

- `model`: the fleet (`Fleet`, `Host`, `Apply`) and the key of a distinct closure;
- `reading`: the study file, checked key by key (`load`);
- `solving`: the update on one distinct closure (`Task`, `Answer`, `solve`);
- `running`: every distinct closure solved, on local processes or Dask (`run`);
- `report`: per host, totals, disk sizes and the `fleet --json` document.
"""

from adapters.studies.fleet.model import Apply, Fleet, Host, fingerprint
from adapters.studies.fleet.reading import MAX_STEPS, load
from adapters.studies.fleet.report import FleetDocument, HostRow, Report, Totals, Verdict
from adapters.studies.fleet.running import FleetProgress, run
from adapters.studies.fleet.solving import Answer, Task, solve, tasks

__all__ = [
    "MAX_STEPS",
    "Answer",
    "Apply",
    "Fleet",
    "FleetDocument",
    "FleetProgress",
    "Host",
    "HostRow",
    "Report",
    "Task",
    "Totals",
    "Verdict",
    "fingerprint",
    "load",
    "run",
    "solve",
    "tasks",
]
