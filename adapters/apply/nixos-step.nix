# The NixOS module of one intermediate generation.
#
# Packages the plan has not upgraded yet are taken from the old nixpkgs revision, so they
# are the very store paths the running system has (and stay substitutable); only the glue
# (top-level, system-path, etc) is built. The step is described by a JSON file named by
# $BUDGET_SOLVE_STEP, read at (impure) evaluation time:
#   { "oldNixpkgs": "/path" or { fetchTree attributes from flake.lock },
#     "keepOld": [ "attribute", ... ],
#     "configuration": "/etc/nixos/configuration.nix" (classic mode only) }
let
  step = builtins.fromJSON (builtins.readFile (builtins.getEnv "BUDGET_SOLVE_STEP"));
  oldSrc =
    if builtins.isAttrs step.oldNixpkgs
    then builtins.fetchTree step.oldNixpkgs
    else /. + step.oldNixpkgs;
in
{ ... }:
{
  nixpkgs.overlays = [
    (final: prev:
      let
        old = import oldSrc { system = prev.stdenv.hostPlatform.system or prev.system; };
        # Only attributes this nixpkgs has: a package added since is new by definition.
        kept = builtins.filter (name: builtins.hasAttr name prev) step.keepOld;
      in
      builtins.listToAttrs (map (name: { inherit name; value = old.${name}; }) kept))
  ];
}
