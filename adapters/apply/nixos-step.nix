# The NixOS module of one intermediate generation.
#
# Packages the plan has not upgraded yet are taken from the old nixpkgs revision, so they
# are the very store paths the running system has (and stay substitutable); only the glue
# (top-level, system-path, etc) is built. Packages the plan holds back for the step (its
# non-vital ones) are replaced by a placeholder of a few bytes, built locally; they come
# back with the step that restores them. The step is described by a JSON file named by
# $BUDGET_SOLVE_STEP, read at (impure) evaluation time:
#   { "oldNixpkgs": "/path" or { fetchTree attributes from flake.lock },
#     "keepOld": [ "attribute", ... ],
#     "drop": [ "attribute", ... ],
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
        system = prev.stdenv.hostPlatform.system or prev.system;
        old = import oldSrc { inherit system; };
        # Only attributes this nixpkgs has: a package added since is new by definition.
        has = names: builtins.filter (name: builtins.hasAttr name prev) names;
        # A held-back package: an empty file under the package's name, so that what
        # refers to it still evaluates. Only leaves (what nothing else in the system
        # depends on) should be held back: a dependent would be rebuilt against this.
        placeholder = name: derivation {
          name = "${name}-held-back";
          inherit system;
          builder = "/bin/sh";
          args = [ "-c" "echo held back by budget-solve > $out" ];
        };
      in
      builtins.listToAttrs (
        map (name: { inherit name; value = old.${name}; }) (has step.keepOld)
        ++ map (name: { inherit name; value = placeholder name; }) (has (step.drop or [ ]))))
  ];
}
