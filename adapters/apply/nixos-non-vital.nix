# `budgetSolve.nonVital` of the user's configuration (nixos-module.nix), [] when the
# configuration does not import that module. A flake's configuration with
# `--argstr flake REF --argstr host HOST`; else <nixpkgs/nixos> with <nixos-config>.
{ flake ? null, host ? null }:
let
  system =
    if flake != null
    then (builtins.getFlake flake).nixosConfigurations.${host}
    else import <nixpkgs/nixos> { };
in
system.config.budgetSolve.nonVital or [ ]
