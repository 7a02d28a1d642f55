# `nixos-config` for classic (channel) systems: the user's configuration plus the step module.
let
  step = builtins.fromJSON (builtins.readFile (builtins.getEnv "BUDGET_SOLVE_STEP"));
in
{
  imports = [ (/. + step.configuration) ./nixos-step.nix ];
}
