# Import this module in a NixOS configuration to tag packages that an upgrade may hold
# back for a while when the disk is short (`budget-solve apply --nixos` reads the list):
#
#   imports = [ /path/to/budget-solve/adapters/apply/nixos-module.nix ];
#   budgetSolve.nonVital = [ "firefox" "libreoffice" ];
#
# Names are nixpkgs attribute names of packages in environment.systemPackages that nothing
# else depends on. `--non-vital NAME` on the command line adds more.
{ lib, ... }:
{
  options.budgetSolve.nonVital = lib.mkOption {
    type = lib.types.listOf lib.types.str;
    default = [ ];
    description = "Packages an upgrade on a small disk may leave out of intermediate generations.";
  };
}
