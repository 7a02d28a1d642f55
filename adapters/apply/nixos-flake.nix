# The top-level of a flake's NixOS configuration, extended with the step module.
# Built with `nix build --impure -f nixos-flake.nix --argstr flake REF --argstr host HOST`.
{ flake, host }:
let
  system = (builtins.getFlake flake).nixosConfigurations.${host};
in
(system.extendModules { modules = [ ./nixos-step.nix ]; }).config.system.build.toplevel
